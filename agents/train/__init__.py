"""Training runs: the GRPO trainer and its config, checkpoints, metrics, plots,
the question sampler, supervised warm start and the CPU demo's settings."""
