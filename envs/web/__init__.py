"""Live-web tools for ``DeepResearch-Web-v0``: search providers, safe browsing, cache and pacing.

Importing this package is cheap: ``requests``, ``trafilatura`` and ``bs4`` (the
``web`` extra) are imported only when a request is made or a page is parsed.
"""

from deepresearch.envs.web.backend import WebBackend, WebConfig, WebEpisode, make_web_backend
from deepresearch.envs.web.cache import WebCache, default_cache_path
from deepresearch.envs.web.fetch import FetchConfig, FetchedPage, FetchError, PageFetcher
from deepresearch.envs.web.llm_reader import LLMReader, LLMReaderConfig
from deepresearch.envs.web.providers import (
    PROVIDERS,
    BraveProvider,
    ProviderError,
    SearchProvider,
    SearxngProvider,
    SerperProvider,
    TavilyProvider,
    make_provider,
)
from deepresearch.envs.web.ratelimit import TokenBucket
from deepresearch.envs.web.reading import ReadingConfig, select_passages, split_chunks
from deepresearch.envs.web.retry import RetryPolicy, parse_retry_after
from deepresearch.envs.web.safety import UnsafeUrlError, UrlPolicy, redact

__all__ = [
    "PROVIDERS",
    "BraveProvider",
    "FetchConfig",
    "FetchError",
    "FetchedPage",
    "LLMReader",
    "LLMReaderConfig",
    "PageFetcher",
    "ProviderError",
    "ReadingConfig",
    "RetryPolicy",
    "SearchProvider",
    "SearxngProvider",
    "SerperProvider",
    "TavilyProvider",
    "TokenBucket",
    "UnsafeUrlError",
    "UrlPolicy",
    "WebBackend",
    "WebCache",
    "WebConfig",
    "WebEpisode",
    "default_cache_path",
    "make_provider",
    "make_web_backend",
    "parse_retry_after",
    "redact",
    "select_passages",
    "split_chunks",
]
