"""``WebBackend``: the live web as a ``ToolBackend`` (search with a provider, browse pages).

Everything that can go wrong on the network comes back as a value: a single
"search failed: ..." hit for a failed search (so the model can tell an outage
from "No results found."), ``PageResult(error=...)`` for a page that could not
be read. Only bad configuration raises, and it does so at construction.

One backend (pool, cache, rate limit) can serve many envs; each env talks to
it through its own ``WebEpisode``, which keeps that env's seen-URL list.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from deepresearch.envs.documents import Document
from deepresearch.envs.tools import PageResult, ToolBackend
from deepresearch.envs.web.cache import WebCache, default_cache_path, page_key, search_key
from deepresearch.envs.web.extract import ExtractionError, extract_text
from deepresearch.envs.web.fetch import FetchConfig, FetchError, PageFetcher
from deepresearch.envs.web.llm_reader import LLMReader, LLMReaderConfig, LLMReaderError
from deepresearch.envs.web.providers import ProviderError, SearchProvider, make_provider
from deepresearch.envs.web.reading import ReadingConfig, select_passages
from deepresearch.envs.web.retry import RetryPolicy
from deepresearch.envs.web.safety import UrlPolicy, redact

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebConfig:
    """Everything the web backend needs that is not a secret (keys come from env vars)."""

    provider: str | None = None  # serper | searxng | brave | tavily; default $DEEPRESEARCH_SEARCH_PROVIDER
    provider_base_url: str | None = None  # override, e.g. a local test server or a proxy
    top_k: int = 10  # the most results asked of the provider per query
    search_timeout_s: tuple[float, float] = (5.0, 15.0)  # (connect, read)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rate_per_s: float | None = 5.0  # provider requests per second, shared by all threads; None = unlimited
    burst: int = 5
    fetch: FetchConfig = field(default_factory=FetchConfig)
    reading: ReadingConfig = field(default_factory=ReadingConfig)
    reader: LLMReaderConfig | None = None  # None: BM25 passage selection (no LLM calls)
    use_cache: bool = True
    cache_path: str | None = None  # default $DEEPRESEARCH_CACHE/web.sqlite or ~/.cache/deepresearch/web.sqlite
    cache_ttl_s: float = 7 * 86400
    cache_max_entries: int = 100_000
    allow_private: bool = False
    allowlist: tuple[str, ...] = ()  # hosts or IP networks that may be browsed although not public
    browse_only_seen_urls: bool = False  # refuse URLs no earlier search (this episode) returned
    max_workers: int = 16

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {self.max_workers}")
        if any(t <= 0 for t in self.search_timeout_s) or len(self.search_timeout_s) != 2:
            raise ValueError(f"search_timeout_s must be two positive numbers, got {self.search_timeout_s}")
        if isinstance(self.allowlist, str):
            raise ValueError("allowlist must be a tuple of hosts/networks, not a string")


def failure_document(reason: str) -> Document:
    """A failed search as the one hit the model reads: an outage must not look like "No results found."."""
    message = reason if reason.startswith("search failed") else f"search failed: {reason}"
    return Document(id="", title=message, text="", contents=message)  # every protocol shows the whole message


class SeenUrls:
    """The URLs one episode's searches returned, for ``browse_only_seen_urls``; safe across threads."""

    def __init__(self) -> None:
        self._urls: set[str] = set()
        self._lock = threading.Lock()

    def add(self, results: list[list[Document]]) -> None:
        with self._lock:
            self._urls.update(doc.id for docs in results for doc in docs if doc.id)

    def __contains__(self, url: object) -> bool:
        with self._lock:
            return url in self._urls

    def clear(self) -> None:
        with self._lock:
            self._urls.clear()


class WebBackend:
    """Search through a ``SearchProvider``, browse through a ``PageFetcher``, cache both.

    Used directly it is one env's backend (``reset()`` clears its seen-URL list);
    envs that share it each take an ``episode()`` so their lists stay apart.
    """

    supports_browse = True

    def __init__(
        self,
        provider: SearchProvider,
        browser: PageFetcher,
        cache: WebCache | None,
        config: WebConfig,
    ) -> None:
        self.provider = provider
        self.browser = browser
        self.cache = cache
        self.config = config
        self.reader = LLMReader(config.reader) if config.reader else None
        self._pool = ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="web")
        self._seen = SeenUrls()

    def episode(self, owns_backend: bool = False) -> "WebEpisode":
        """A view for one env: its own seen-URL list over this backend's pool, cache and pacing."""
        return WebEpisode(self, owns_backend)

    def reset(self) -> None:
        """Forget the URLs searches returned (direct use by one env): call at the start of each episode."""
        self._seen.clear()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def search(self, queries: list[str], k: int, seen: SeenUrls | None = None) -> list[list[Document]]:
        """Results per query; the URLs returned are added to ``seen`` (default: this backend's own list)."""
        k = max(1, min(int(k), self.config.top_k))
        # One provider request per distinct cache key, so "Marie Curie" and "marie  curie" in one batch
        # cost one call whatever the thread timing.
        keys = [search_key(self.provider.name, q, k) if q and q.strip() else None for q in queries]
        first_query: dict[str, str] = {}
        for key, query in zip(keys, queries):
            if key is not None:
                first_query.setdefault(key, query)
        results = dict(zip(first_query, self._pool.map(lambda item: self._search_one(*item, k), first_query.items())))
        answers = [results[key] if key is not None else [] for key in keys]
        (self._seen if seen is None else seen).add(answers)
        return answers

    def _search_one(self, key: str, query: str, k: int) -> list[Document]:
        cached = self._cache_get(key)
        if cached is not None:
            return [Document(**record) for record in cached]
        try:
            documents = self.provider.search_one(query, k)
        except ProviderError as error:  # already redacted and logged by the provider; never cached
            return [failure_document(str(error))]
        except Exception as error:  # noqa: BLE001 - a provider bug must not stop training
            logger.exception("search provider raised %s", redact(type(error).__name__))
            return [failure_document(f"{self.provider.name} raised {redact(type(error).__name__)}")]
        self._cache_put(key, [{**doc.to_record(), "score": doc.score} for doc in documents])
        return documents

    def browse(
        self, urls: list[str], question: str, query: str | None, seen: SeenUrls | None = None
    ) -> list[PageResult]:
        """One result per URL; with ``browse_only_seen_urls`` only URLs in ``seen`` (default: own list)."""
        allowed = self._seen if seen is None else seen
        return list(self._pool.map(lambda url: self._browse_one(url, question, query, allowed), urls))

    def _browse_one(self, url: str, question: str, query: str | None, seen: SeenUrls) -> PageResult:
        url = (url or "").strip()
        if self.config.browse_only_seen_urls and url not in seen:
            return PageResult(url=url, error=f"could not fetch {url}: only URLs from earlier search results can be browsed")
        try:
            text = self._page_text(url)
            return PageResult(url=url, text=self._select(text, question, query))
        except (FetchError, ExtractionError) as error:
            message = str(error) if isinstance(error, FetchError) else f"could not read {url}: {error}"
            return PageResult(url=url, error=message)
        except Exception as error:  # noqa: BLE001 - e.g. a parser bug on a hostile page
            logger.exception("browsing %s failed", redact(url))
            return PageResult(url=url, error=f"could not read {url}: {type(error).__name__}")

    def _page_text(self, url: str) -> str:
        """The page's text; the policy is applied before the cache, which other policies may have filled.

        A cached record keeps the redirects the page was reached through, and each
        is vetted again, so a page that a lax policy fetched via a private hop is
        not served to a strict one. Records without them (older caches) are refetched.
        """
        self.browser.check(url)
        key = page_key(url)
        cached = self._cache_get(key)
        record = cached if isinstance(cached, dict) else {}
        if isinstance(record.get("text"), str) and isinstance(record.get("redirects"), list):
            for hop in record["redirects"]:
                self.browser.check(str(hop), origin=url)
            return record["text"]
        page = self.browser.fetch(url)
        text = extract_text(page)
        self._cache_put(key, {"text": text, "redirects": list(page.redirects)})
        return text

    def _select(self, text: str, question: str, query: str | None) -> str:
        budget = self.config.reading.char_budget
        if self.reader is not None:
            try:
                notes = self.reader.read(text, question, query, budget)
                if notes:
                    return notes
            except LLMReaderError as error:
                logger.warning("%s; falling back to BM25 passages", error)
        return select_passages(text, question, query, self.config.reading)

    def _cache_get(self, key: str):
        if self.cache is None:
            return None
        try:
            return self.cache.get(key)
        except Exception as error:  # noqa: BLE001 - a locked or broken cache is a miss, not a crash
            logger.warning("web cache read failed: %s", error)
            return None

    def _cache_put(self, key: str, value) -> None:
        if self.cache is None:
            return
        try:
            self.cache.put(key, value)
        except Exception as error:  # noqa: BLE001 - losing a cache write only costs a later refetch
            logger.warning("web cache write failed: %s", error)


class WebEpisode(ToolBackend):
    """One env's ``ToolBackend`` over a ``WebBackend`` that several envs may share.

    The seen-URL list lives here, not in the shared backend, so one env's
    ``reset()`` or searches never change what another env may browse.
    """

    supports_browse = True

    def __init__(self, backend: WebBackend, owns_backend: bool = False) -> None:
        self.backend = backend
        self.owns_backend = owns_backend
        self.seen = SeenUrls()

    def reset(self) -> None:
        """A new episode: forget the URLs this env's searches returned."""
        self.seen.clear()

    def search(self, queries: list[str], k: int) -> list[list[Document]]:
        return self.backend.search(queries, k, self.seen)

    def browse(self, urls: list[str], question: str, query: str | None) -> list[PageResult]:
        return self.backend.browse(urls, question, query, self.seen)

    def close(self) -> None:
        """Close the backend only if this env built it: closing one env must not break the others."""
        if self.owns_backend:
            self.backend.close()


def make_web_backend(config: WebConfig | None = None, **overrides) -> WebBackend:
    """Build a ``WebBackend`` from a ``WebConfig`` and/or its fields as keyword arguments."""
    if config is None:
        config = WebConfig(**overrides)
    elif overrides:
        from dataclasses import replace

        config = replace(config, **overrides)
    provider = make_provider(
        config.provider,
        base_url=config.provider_base_url,
        timeout_s=config.search_timeout_s,
        retry=config.retry,
        rate_per_s=config.rate_per_s,
        burst=config.burst,
    )
    policy = UrlPolicy(allow_private=config.allow_private, allowlist=tuple(config.allowlist))
    cache = None
    if config.use_cache:
        path = Path(config.cache_path) if config.cache_path else default_cache_path()
        cache = WebCache(path, ttl_s=config.cache_ttl_s, max_entries=config.cache_max_entries)
    return WebBackend(provider, PageFetcher(policy, config.fetch), cache, config)
