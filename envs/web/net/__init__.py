"""HTTP plumbing shared by the search providers, page fetching and the LLM reader: JSON calls,
retries with backoff, rate limits, deadline-bound sessions, API keys and rate-limited logs."""
