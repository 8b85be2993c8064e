"""``WebBackend``: the live web as a ``ToolBackend`` (search with a provider, browse pages).

Every search and browse call has one deadline, made when the env step calls
in; the step waits for its work until then and not a moment longer, so a
hanging provider or a page dripping a byte a second costs at most the
deadline. Work runs on threads shared fairly by every env of the backend
(``FairScheduler``), identical requests in flight are made once
(``SingleFlight``), provider calls are paid for from the run's and the env's
budgets, results are cached (failures never), and with ``web_mode`` a snapshot
is recorded or replayed.

Everything that can go wrong on the network comes back as a value: a single
"search failed: ..." (or "search not run: ...") hit, so the model can tell an
outage from "No results found.", and ``PageResult(error=...)`` for a page that
could not be read. Only bad configuration raises, and it does so at construction.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from concurrent.futures import Future, wait
from typing import Any

from deepresearch.envs.documents import Document
from deepresearch.envs.tools import PageResult, ToolBackend
from deepresearch.envs.web.budget import Ledger, reserve_all
from deepresearch.envs.web.cache import WebCache, page_key, search_key
from deepresearch.envs.web.config import WebConfig
from deepresearch.envs.web.deadline import Deadline, DeadlineExceeded
from deepresearch.envs.web.extract import ExtractionError
from deepresearch.envs.web.extraction import Extractor
from deepresearch.envs.web.fetch import FetchError, PageFetcher
from deepresearch.envs.web.flights import SingleFlight
from deepresearch.envs.web.llm_reader import LLMReader, LLMReaderError
from deepresearch.envs.web.logs import RateLimitedLog
from deepresearch.envs.web.metrics import WebStats, add_to_all
from deepresearch.envs.web.providers import ProviderError, SearchProvider
from deepresearch.envs.web.reading import select_passages
from deepresearch.envs.web.results import MAX_URL_CHARS, query_problem
from deepresearch.envs.web.safety import redact, shown_url
from deepresearch.envs.web.scheduler import FairScheduler
from deepresearch.envs.web.snapshot import Snapshot
from deepresearch.envs.web.values import (
    BadStoredValue,
    failure_value,
    notes_text,
    notes_value,
    page_parts,
    page_value,
    recorded_failure,
    search_documents,
    search_value,
)

logger = logging.getLogger(__name__)


def notice_document(message: str) -> Document:
    """A search that returned nothing usable, as the one hit the model reads (every protocol shows it whole)."""
    return Document(id="", title=message, text="", contents=message)


def failure_document(reason: str) -> Document:
    """A failed search: an outage must not look like "No results found."."""
    return notice_document(reason if reason.startswith("search failed") else f"search failed: {reason}")


class PageUnavailable(Exception):
    """A page the backend will not read now (not in the snapshot, budget spent); the message is for the model."""


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


class WebClient:
    """One env as the backend sees it: its seen URLs, its budget, its counters, its turn at the workers."""

    def __init__(self, config: WebConfig) -> None:
        self.seen = SeenUrls()
        self.ledger = Ledger(config.env_limits(), "this env")
        self.env_stats = WebStats()  # the env's lifetime
        self.episode_stats = WebStats()  # since the last reset

    def new_episode(self) -> None:
        self.seen.clear()
        self.episode_stats.reset()


class WebBackend:
    """Search through a ``SearchProvider``, browse through a ``PageFetcher``, cache, budget, record, replay.

    Used directly it is one env's backend (``reset()`` starts a new episode);
    envs that share it each take an ``episode()`` so their seen URLs, budgets
    and counters stay apart. ``provider`` may be ``None`` only when replaying
    without a live fallback; ``provider_name`` then says which provider's
    results to replay.
    """

    supports_browse = True

    def __init__(
        self,
        provider: SearchProvider | None,
        browser: PageFetcher,
        cache: WebCache | None,
        config: WebConfig,
        snapshot: Snapshot | None = None,
        provider_name: str | None = None,
    ) -> None:
        if provider is None and (config.web_mode != "replay" or config.replay_fallback_live):
            raise ValueError("a search provider is needed unless replaying without a live fallback")
        if config.web_mode != "live" and snapshot is None:
            raise ValueError(f"web_mode={config.web_mode!r} needs a snapshot")
        self.provider = provider
        self.provider_name = provider.name if provider is not None else str(provider_name)
        self.browser = browser
        self.cache = cache
        self.snapshot = snapshot
        self.config = config
        self.reader = LLMReader(config.reader) if config.reader else None
        self.extractor = Extractor(config.extract_processes)
        self.prices = config.prices()
        self.budget = Ledger(config.run_limits(), "this run")
        self.stats = WebStats()  # the run's counters: every env of this backend
        self._scheduler = FairScheduler(config.max_workers)
        self._searches: SingleFlight[list[Document]] = SingleFlight()
        self._pages: SingleFlight[tuple[str, list[str]]] = SingleFlight()
        self._own = WebClient(config)
        self._log = RateLimitedLog(logger)  # one message per cause a minute, for this backend

    # ------------------------------------------------------------------ envs
    def episode(self, owns_backend: bool = False) -> "WebEpisode":
        """A view for one env: its own seen URLs, budget and counters over this backend's workers and cache."""
        return WebEpisode(self, owns_backend)

    def reset(self) -> None:
        """A new episode for direct use by one env: forget the URLs searches returned."""
        self._own.new_episode()

    def close(self) -> None:
        self._scheduler.shutdown()

    # ------------------------------------------------------------------ search
    def search(self, queries: list[str], k: int, client: WebClient | None = None) -> list[list[Document]]:
        """Results per query by the search deadline; the URLs returned are added to ``client``'s seen list."""
        client = client or self._own
        deadline = Deadline(self.config.search_deadline_s)
        stats = (self.stats, client.env_stats, client.episode_stats)
        k = max(1, min(int(k), self.config.top_k))
        # One lookup per distinct cache key: "Marie Curie" and "marie  curie" in one batch cost one call.
        keys = [search_key(self.provider_name, q, k) if isinstance(q, str) and q.strip() else None for q in queries]
        first_query: dict[str, str] = {}
        for key, query in zip(keys, queries):
            if key is not None:
                first_query.setdefault(key, query)
        add_to_all(stats, steps=1, searches=len(first_query))
        futures = {
            key: self._scheduler.submit(client, lambda key=key, query=query: self._search(key, query, k, deadline, client), deadline)
            for key, query in first_query.items()
        }
        wait(futures.values(), timeout=deadline.remaining())
        results = {key: self._search_outcome(future, deadline, stats) for key, future in futures.items()}
        answers = [results[key] if key is not None else [] for key in keys]
        client.seen.add(answers)
        return answers

    def _search_outcome(self, future: Future, deadline: Deadline, stats: tuple[WebStats, ...]) -> list[Document]:
        if future.cancelled():
            return [failure_document("search failed: the web backend was closed")]
        if not future.done() or isinstance(future.exception(), DeadlineExceeded):
            add_to_all(stats, deadline_exceeded=1)
            return [failure_document(f"search failed: {self.provider_name} timed out ({deadline.describe()})")]
        error = future.exception()
        if error is not None:  # a bug, not the network: say so without details that could hold a secret
            self._log.warning(f"search-bug:{type(error).__name__}", f"web search raised {type(error).__name__}")
            return [failure_document(f"search failed: internal error ({type(error).__name__})")]
        return future.result()

    def _search(self, key: str, query: str, k: int, deadline: Deadline, client: WebClient) -> list[Document]:
        """One distinct query, on a worker: replay, cache, or the provider (shared with identical calls in flight)."""
        stats = (self.stats, client.env_stats, client.episode_stats)
        problem = query_problem(query)
        if problem:
            add_to_all(stats, invalid_queries=1)
            return [failure_document(f"search failed: {problem}")]
        if self.config.web_mode == "replay":
            recorded = self._recorded(key)
            failure = recorded_failure(recorded)
            try:
                documents = [failure_document(failure)] if failure else None if recorded is None else search_documents(recorded)
            except BadStoredValue:
                documents = None  # a damaged entry is a miss
            if documents is not None:
                add_to_all(stats, search_replay_hits=1)
                return documents
            add_to_all(stats, replay_misses=1)
            if not self.config.replay_fallback_live:
                return [notice_document(f"search not available: {shown_url(query, 80)!r} is not in this snapshot (replay mode)")]
        documents, shared = self._searches.run(key, lambda: self._search_live(key, query, k, deadline, client), deadline)
        if shared:
            add_to_all(stats, search_shared=1)
        return documents

    def _search_live(self, key: str, query: str, k: int, deadline: Deadline, client: WebClient) -> list[Document]:
        stats = (self.stats, client.env_stats, client.episode_stats)
        meta = {"kind": "search", "provider": self.provider_name, "k": k, "settings": self.config.public_settings()}
        cached = self._cache_get(key)
        if cached is not None:
            try:
                documents = search_documents(cached)
            except BadStoredValue:
                documents = None  # a damaged row is a miss
            if documents is not None:
                add_to_all(stats, search_cache_hits=1)
                self._record(key, cached, meta)
                return documents
        price = self.prices.get(self.provider_name, 0.0)
        refusal = reserve_all([self.budget, client.ledger], price, search=True)
        if refusal is not None:
            add_to_all(stats, budget_refusals=1)
            return [notice_document(f"search not run: {refusal}. Answer with what you have found so far.")]
        add_to_all(stats, provider_calls=1)
        assert self.provider is not None  # replay without fallback never gets here
        try:
            documents = self.provider.search_one(query, k, deadline)
        except ProviderError as error:  # already redacted and logged (rate-limited) by the provider
            self._refund(client, price, search=True)
            add_to_all(stats, provider_failures=1)
            self._record(key, failure_value(str(error)), meta)
            return [failure_document(str(error))]
        add_to_all(stats, cost_usd=price)
        value = search_value(documents)
        self._cache_put(key, value, meta)
        self._record(key, value, meta)
        return documents

    def _refund(self, client: WebClient, price: float, search: bool = False) -> None:
        """A failed call costs nothing and does not count against the call caps."""
        self.budget.unreserve(price, search)
        client.ledger.unreserve(price, search)

    # ------------------------------------------------------------------ browse
    def browse(self, urls: list[str], question: str, query: str | None, client: WebClient | None = None) -> list[PageResult]:
        """One result per URL by the browse deadline; with ``browse_only_seen_urls`` only URLs ``client``'s searches returned."""
        client = client or self._own
        deadline = Deadline(self.config.browse_deadline_s)
        stats = (self.stats, client.env_stats, client.episode_stats)
        add_to_all(stats, steps=1, pages=len(urls))
        slots: list[PageResult | Future] = []
        for raw in urls:
            url = raw.strip() if isinstance(raw, str) else ""
            refusal = self._refuse_url(url, client)
            if refusal is not None:
                add_to_all(stats, page_failures=1)
                slots.append(PageResult(url=shown_url(url), error=refusal))
                continue
            work = lambda url=url: self._browse_one(url, question, query, deadline, client)  # noqa: E731
            slots.append(self._scheduler.submit(client, work, deadline))
        wait([slot for slot in slots if isinstance(slot, Future)], timeout=deadline.remaining())
        return [slot if isinstance(slot, PageResult) else self._page_outcome(slot, url, deadline, stats)
                for slot, url in zip(slots, urls)]

    def _refuse_url(self, url: str, client: WebClient) -> str | None:
        if not url:
            return "no URL was given"
        if len(url) > MAX_URL_CHARS:
            return f"the URL is too long ({len(url)} characters; the limit is {MAX_URL_CHARS})"
        if self.config.browse_only_seen_urls and url not in client.seen:
            return "only URLs from earlier search results can be browsed"
        return None

    def _page_outcome(self, future: Future, url: Any, deadline: Deadline, stats: tuple[WebStats, ...]) -> PageResult:
        shown = shown_url(url.strip() if isinstance(url, str) else "")
        if future.cancelled():
            return PageResult(url=shown, error="the web backend was closed")
        if not future.done() or isinstance(future.exception(), DeadlineExceeded):
            add_to_all(stats, deadline_exceeded=1)
            return PageResult(url=shown, error=f"timed out ({deadline.describe()})")
        error = future.exception()
        if error is not None:
            self._log.warning(f"browse-bug:{type(error).__name__}", f"browsing raised {type(error).__name__}")
            return PageResult(url=shown, error=f"internal error ({type(error).__name__})")
        return future.result()

    def _browse_one(self, url: str, question: str, query: str | None, deadline: Deadline, client: WebClient) -> PageResult:
        """One URL, on a worker: its text (replayed, cached or fetched), reduced to what answers the question."""
        stats = (self.stats, client.env_stats, client.episode_stats)
        try:
            text = self._page_text(url, deadline, client)
            return PageResult(url=shown_url(url), text=self._select(text, question, query, deadline))
        except FetchError as error:
            add_to_all(stats, page_failures=1)
            return PageResult(url=shown_url(url), error=error.reason)
        except (ExtractionError, PageUnavailable) as error:
            add_to_all(stats, page_failures=1)
            return PageResult(url=shown_url(url), error=str(error))

    def _page_text(self, url: str, deadline: Deadline, client: WebClient) -> str:
        key = page_key(url)
        stats = (self.stats, client.env_stats, client.episode_stats)
        if self.config.web_mode == "replay":  # no policy check either: it resolves names, and nothing is fetched
            recorded = self._recorded(key)
            failure = recorded_failure(recorded)
            try:
                text = None if failure or recorded is None else page_parts(recorded)[0]
            except BadStoredValue:
                recorded = None  # a damaged entry is a miss
            if recorded is not None:
                add_to_all(stats, page_replay_hits=1)
                if failure:
                    raise PageUnavailable(failure)
                return text
            add_to_all(stats, replay_misses=1)
            if not self.config.replay_fallback_live:
                raise PageUnavailable("not in this snapshot (replay mode)")
        self.browser.check(url)  # before the cache, which a laxer policy may have filled
        (text, _), shared = self._pages.run(key, lambda: self._page_live(key, url, deadline, client), deadline)
        if shared:
            add_to_all(stats, page_shared=1)
        return text

    def _page_live(self, key: str, url: str, deadline: Deadline, client: WebClient) -> tuple[str, list[str]]:
        """A cached record keeps the redirects the page was reached through, and each is vetted again, so a
        page that a lax policy fetched via a private hop is not served to a strict one."""
        stats = (self.stats, client.env_stats, client.episode_stats)
        meta = {"kind": "page", "settings": self.config.public_settings()}
        cached = self._cache_get(key)
        if cached is not None:
            try:
                text, redirects = page_parts(cached)
            except BadStoredValue:
                text = None
            if text is not None:
                for hop in redirects:
                    self.browser.check(hop, origin=url)
                add_to_all(stats, page_cache_hits=1)
                self._record(key, cached, meta)
                return text, redirects
        price = self.prices.get("page", 0.0)
        refusal = reserve_all([self.budget, client.ledger], price, search=False)
        if refusal is not None:
            add_to_all(stats, budget_refusals=1)
            raise PageUnavailable(f"not read: {refusal}")
        add_to_all(stats, page_fetches=1)
        try:
            page = self.browser.fetch(url, deadline)
            text = self.extractor.extract(page, deadline)
        except FetchError as error:
            self._refund(client, price)
            self._record(key, failure_value(error.reason), meta)
            raise
        except ExtractionError as error:
            self._refund(client, price)
            self._record(key, failure_value(str(error)), meta)
            raise
        add_to_all(stats, cost_usd=price)
        value = page_value(text, list(page.redirects))
        self._cache_put(key, value, meta)
        self._record(key, value, meta)
        return text, list(page.redirects)

    def _select(self, text: str, question: str, query: str | None, deadline: Deadline) -> str:
        budget = self.config.reading.char_budget
        if self.reader is not None:
            key = "read\x1f" + "\x1f".join(
                [self.config.reader.model, hashlib.sha256(text.encode("utf-8", "replace")).hexdigest(), question, query or ""]
            )
            notes = self._read_notes(key, text, question, query, budget, deadline)
            if notes:
                return notes
        return select_passages(text, question, query, self.config.reading)

    def _read_notes(self, key: str, text: str, question: str, query: str | None, budget: int, deadline: Deadline) -> str:
        """The reader's notes; replayed from the snapshot, or asked for live (and recorded). "" = use BM25."""
        if self.config.web_mode == "replay":
            try:
                return notes_text(self._recorded(key))
            except BadStoredValue:  # not recorded (or damaged)
                pass
            if not self.config.replay_fallback_live:
                return ""
        assert self.reader is not None
        try:
            notes = self.reader.read(text, question, query, budget, deadline)
        except LLMReaderError as error:
            self._log.warning("reader", f"{error}; falling back to BM25 passages")
            return ""
        if notes:
            self._record(key, notes_value(notes), {"kind": "read", "model": self.config.reader.model})
        return notes

    # ------------------------------------------------------------------ cache and snapshot
    def _cache_get(self, key: str) -> Any | None:
        if self.cache is None:
            return None
        try:
            return self.cache.get(key)
        except Exception as error:  # noqa: BLE001 - a locked or unreachable cache is a miss, not a crash
            self._log.warning("cache-read", redact(f"web cache read failed: {type(error).__name__}: {error}"))
            return None

    def _cache_put(self, key: str, value: Any, meta: dict[str, Any]) -> None:
        if self.cache is None:
            return
        try:
            self.cache.put(key, value, meta)
        except Exception as error:  # noqa: BLE001 - losing a cache write only costs a later refetch
            self._log.warning("cache-write", redact(f"web cache write failed: {type(error).__name__}: {error}"))

    def _recorded(self, key: str) -> Any | None:
        assert self.snapshot is not None
        try:
            return self.snapshot.lookup(key)
        except Exception as error:  # noqa: BLE001 - an unreadable snapshot entry is a miss
            self._log.warning("snapshot-read", redact(f"snapshot read failed: {type(error).__name__}: {error}"))
            return None

    def _record(self, key: str, value: Any, meta: dict[str, Any]) -> None:
        if self.config.web_mode != "record":
            return
        assert self.snapshot is not None
        try:
            self.snapshot.record(key, value, meta)
        except Exception as error:  # noqa: BLE001 - a failed snapshot write is reported, the step goes on
            self._log.warning("snapshot-write", redact(f"snapshot write failed: {type(error).__name__}: {error}"))


class WebEpisode(ToolBackend):
    """One env's ``ToolBackend`` over a ``WebBackend`` that several envs may share.

    Seen URLs, the env's budget and its counters live here, not in the shared
    backend, so one env's ``reset()`` or searches never change another's.
    ``stats`` counts this episode, ``env_stats`` the env's lifetime, and
    ``backend.stats`` the whole run.
    """

    supports_browse = True

    def __init__(self, backend: WebBackend, owns_backend: bool = False) -> None:
        self.backend = backend
        self.owns_backend = owns_backend
        self.client = WebClient(backend.config)

    @property
    def stats(self) -> WebStats:
        return self.client.episode_stats

    @property
    def env_stats(self) -> WebStats:
        return self.client.env_stats

    def reset(self) -> None:
        """A new episode: forget the URLs this env's searches returned and start the episode's counters."""
        self.client.new_episode()

    def search(self, queries: list[str], k: int) -> list[list[Document]]:
        return self.backend.search(queries, k, self.client)

    def browse(self, urls: list[str], question: str, query: str | None) -> list[PageResult]:
        return self.backend.browse(urls, question, query, self.client)

    def close(self) -> None:
        """Close the backend only if this env built it: closing one env must not break the others."""
        if self.owns_backend:
            self.backend.close()

