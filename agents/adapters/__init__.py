"""Our envs inside other RL engines: TRL's ``rollout_func``, verl's agent loop, SkyRL-gym's text env and a verifiers taskset/env."""
