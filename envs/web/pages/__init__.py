"""Reading pages: which URLs may be fetched, fetching them safely, extracting their text, and
choosing the passages the model reads (BM25, or an optional LLM reader)."""
