"""``deepresearch view``: a static HTML page of trajectories with env text marked as masked."""
