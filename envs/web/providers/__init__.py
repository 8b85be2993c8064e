"""Search providers (Serper, SearxNG, Brave, Tavily) and the checks their results pass before use."""
