"""Record / replay snapshots of the web, and moving them between machines as files."""
