"""Live-web tools for ``DeepResearch-Web-v0``: providers, safe browsing, deadlines, budgets, cache, snapshots.

Importing this package is cheap: ``requests``, ``trafilatura``, ``bs4`` and
``redis`` (the ``web`` extra) are imported only when a request is made, a page
is parsed or a Redis store is opened.
"""

from deepresearch.envs.deadline import Deadline, DeadlineExceeded
from deepresearch.envs.web.accounting.budget import DEFAULT_PRICES_USD, BudgetLimits, Ledger
from deepresearch.envs.web.accounting.metrics import WebStats
from deepresearch.envs.web.backend.clients import WebClient, WebEpisode
from deepresearch.envs.web.backend.web_backend import WebBackend
from deepresearch.envs.web.build import make_web_backend
from deepresearch.envs.web.config import WebConfig
from deepresearch.envs.web.net.ratelimit import TokenBucket
from deepresearch.envs.web.net.retry import RetryPolicy, parse_retry_after
from deepresearch.envs.web.pages.fetch import FetchConfig, FetchedPage, FetchError, PageFetcher
from deepresearch.envs.web.pages.llm_reader import LLMReader, LLMReaderConfig
from deepresearch.envs.web.pages.reading import ReadingConfig, select_passages, split_chunks
from deepresearch.envs.web.pages.safety import UnsafeUrlError, UrlPolicy, redact
from deepresearch.envs.web.providers.search_apis import (
    PROVIDERS,
    BraveProvider,
    ProviderError,
    SearchProvider,
    SearxngProvider,
    SerperProvider,
    TavilyProvider,
    make_provider,
)
from deepresearch.envs.web.snapshots.snapshot import WEB_MODES, Snapshot
from deepresearch.envs.web.storage.cache import WebCache, default_cache_path
from deepresearch.envs.web.storage.store import WebStore, open_store

__all__ = [
    "DEFAULT_PRICES_USD",
    "PROVIDERS",
    "WEB_MODES",
    "BraveProvider",
    "BudgetLimits",
    "Deadline",
    "DeadlineExceeded",
    "FetchConfig",
    "FetchError",
    "FetchedPage",
    "LLMReader",
    "LLMReaderConfig",
    "Ledger",
    "PageFetcher",
    "ProviderError",
    "ReadingConfig",
    "RetryPolicy",
    "SearchProvider",
    "SearxngProvider",
    "SerperProvider",
    "Snapshot",
    "TavilyProvider",
    "TokenBucket",
    "UnsafeUrlError",
    "UrlPolicy",
    "WebBackend",
    "WebCache",
    "WebClient",
    "WebConfig",
    "WebEpisode",
    "WebStats",
    "WebStore",
    "default_cache_path",
    "make_provider",
    "make_web_backend",
    "open_store",
    "parse_retry_after",
    "redact",
    "select_passages",
    "split_chunks",
]
