"""The web as a ``ToolBackend``: search and browse under one deadline, on worker threads shared by envs."""
