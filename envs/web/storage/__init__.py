"""Where web results are kept: a content-addressed, size-bounded store (SQLite or Redis), the cache over
it, and the JSON shapes both hold."""
