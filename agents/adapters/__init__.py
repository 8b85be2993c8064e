"""Our envs inside other RL engines: TRL's ``rollout_func`` and verl's agent loop."""
