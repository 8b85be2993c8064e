"""Browsing on the backend's workers: each URL vetted, its text replayed, cached (with the redirects it
was reached through) or fetched and extracted, then cut to the passages that answer the question (BM25,
or the optional LLM reader's notes); every failure comes back as ``PageResult(error=...)``."""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, wait
from typing import Any

from deepresearch.envs.deadline import Deadline, DeadlineExceeded
from deepresearch.envs.tools import PageResult
from deepresearch.envs.web.accounting.metrics import WebStats, add_to_all
from deepresearch.envs.web.backend.clients import WebClient
from deepresearch.envs.web.backend.flights import SingleFlight
from deepresearch.envs.web.backend.shared import SharedRun
from deepresearch.envs.web.pages.extract import ExtractionError
from deepresearch.envs.web.pages.extraction import Extractor
from deepresearch.envs.web.pages.fetch import FetchError, PageFetcher
from deepresearch.envs.web.pages.llm_reader import LLMReader, LLMReaderError
from deepresearch.envs.web.pages.reading import select_passages
from deepresearch.envs.web.pages.safety import shown_url
from deepresearch.envs.web.providers.results import MAX_URL_CHARS
from deepresearch.envs.web.storage.cache import page_key
from deepresearch.envs.web.storage.values import (
    BadStoredValue,
    failure_value,
    notes_text,
    notes_value,
    page_parts,
    page_value,
    recorded_failure,
)


class PageUnavailable(Exception):
    """A page the backend will not read now (not in the snapshot, budget spent); the message is for the model."""


class WebBrowse:
    """``browse`` of a ``WebBackend``: ``fetcher`` reads pages, ``reader`` (optional) takes notes on them."""

    def __init__(self, run: SharedRun, fetcher: PageFetcher) -> None:
        self.run, self.fetcher = run, fetcher
        self.reader = LLMReader(run.config.reader) if run.config.reader else None
        self.extractor = Extractor(run.config.extract_processes)
        self._flights: SingleFlight[tuple[str, list[str]]] = SingleFlight()

    def browse(self, urls: list[str], question: str, query: str | None, client: WebClient) -> list[PageResult]:
        """One result per URL by the browse deadline; with ``browse_only_seen_urls`` only URLs ``client``'s searches returned."""
        deadline = Deadline(self.run.config.browse_deadline_s)
        stats = self.run.counters(client)
        add_to_all(stats, steps=1, pages=len(urls))
        slots: list[PageResult | Future] = []
        for raw in urls:
            url = raw.strip() if isinstance(raw, str) else ""
            refusal = self._refuse_url(url, client)
            if refusal is not None:
                add_to_all(stats, page_failures=1)
                slots.append(PageResult(url=shown_url(url), error=refusal))
                continue
            work = lambda url=url: self._one(url, question, query, deadline, client)  # noqa: E731
            slots.append(self.run.scheduler.submit(client, work, deadline))
        wait([slot for slot in slots if isinstance(slot, Future)], timeout=deadline.remaining())
        return [slot if isinstance(slot, PageResult) else self._outcome(slot, url, deadline, stats) for slot, url in zip(slots, urls)]

    def _refuse_url(self, url: str, client: WebClient) -> str | None:
        if not url:
            return "no URL was given"
        if len(url) > MAX_URL_CHARS:
            return f"the URL is too long ({len(url)} characters; the limit is {MAX_URL_CHARS})"
        if self.run.config.browse_only_seen_urls and url not in client.seen:
            return "only URLs from earlier search results can be browsed"
        return None

    def _outcome(self, future: Future, url: Any, deadline: Deadline, stats: tuple[WebStats, ...]) -> PageResult:
        shown = shown_url(url.strip() if isinstance(url, str) else "")
        if future.cancelled():
            return PageResult(url=shown, error="the web backend was closed")
        if not future.done() or isinstance(future.exception(), DeadlineExceeded):
            add_to_all(stats, deadline_exceeded=1)
            return PageResult(url=shown, error=f"timed out ({deadline.describe()})")
        error = future.exception()
        if error is not None:
            self.run.log.warning(f"browse-bug:{type(error).__name__}", f"browsing raised {type(error).__name__}")
            return PageResult(url=shown, error=f"internal error ({type(error).__name__})")
        return future.result()

    def _one(self, url: str, question: str, query: str | None, deadline: Deadline, client: WebClient) -> PageResult:
        """One URL, on a worker: its text (replayed, cached or fetched), reduced to what answers the question."""
        try:
            text = self._page_text(url, deadline, client)
            return PageResult(url=shown_url(url), text=self._select(text, question, query, deadline))
        except FetchError as error:
            add_to_all(self.run.counters(client), page_failures=1)
            return PageResult(url=shown_url(url), error=error.reason)
        except (ExtractionError, PageUnavailable) as error:
            add_to_all(self.run.counters(client), page_failures=1)
            return PageResult(url=shown_url(url), error=str(error))

    def _page_text(self, url: str, deadline: Deadline, client: WebClient) -> str:
        key = page_key(url)
        run, stats = self.run, self.run.counters(client)
        if run.config.web_mode == "replay":  # no policy check either: it resolves names, and nothing is fetched
            recorded = run.recorded(key)
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
            if not run.config.replay_fallback_live:
                raise PageUnavailable("not in this snapshot (replay mode)")
        self.fetcher.check(url)  # before the cache, which a laxer policy may have filled
        (text, _), shared = self._flights.run(key, lambda: self._live(key, url, deadline, client), deadline)
        if shared:
            add_to_all(stats, page_shared=1)
        return text

    def _live(self, key: str, url: str, deadline: Deadline, client: WebClient) -> tuple[str, list[str]]:
        """A cached record keeps the redirects the page was reached through, and each is vetted again, so a
        page that a lax policy fetched via a private hop is not served to a strict one."""
        run, stats = self.run, self.run.counters(client)
        meta = {"kind": "page", "settings": run.config.public_settings()}
        cached = run.cache_get(key)
        if cached is not None:
            try:
                text, redirects = page_parts(cached)
            except BadStoredValue:
                text = None
            if text is not None:
                for hop in redirects:
                    self.fetcher.check(hop, origin=url)
                add_to_all(stats, page_cache_hits=1)
                run.record(key, cached, meta)
                return text, redirects
        price = run.prices.get("page", 0.0)
        refusal = run.reserve(client, price, search=False)
        if refusal is not None:
            add_to_all(stats, budget_refusals=1)
            raise PageUnavailable(f"not read: {refusal}")
        add_to_all(stats, page_fetches=1)
        try:
            page = self.fetcher.fetch(url, deadline)
            text = self.extractor.extract(page, deadline)
        except FetchError as error:
            run.refund(client, price)
            run.record(key, failure_value(error.reason), meta)
            raise
        except ExtractionError as error:
            run.refund(client, price)
            run.record(key, failure_value(str(error)), meta)
            raise
        add_to_all(stats, cost_usd=price)
        value = page_value(text, list(page.redirects))
        run.cache_put(key, value, meta)
        run.record(key, value, meta)
        return text, list(page.redirects)

    def _select(self, text: str, question: str, query: str | None, deadline: Deadline) -> str:
        config = self.run.config
        if self.reader is not None:
            digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
            key = "read\x1f" + "\x1f".join([config.reader.model, digest, question, query or ""])
            notes = self._read_notes(key, text, question, query, config.reading.char_budget, deadline)
            if notes:
                return notes
        return select_passages(text, question, query, config.reading)

    def _read_notes(self, key: str, text: str, question: str, query: str | None, budget: int, deadline: Deadline) -> str:
        """The reader's notes; replayed from the snapshot, or asked for live (and recorded). "" = use BM25."""
        config = self.run.config
        if config.web_mode == "replay":
            try:
                return notes_text(self.run.recorded(key))
            except BadStoredValue:  # not recorded (or damaged)
                pass
            if not config.replay_fallback_live:
                return ""
        assert self.reader is not None
        try:
            notes = self.reader.read(text, question, query, budget, deadline)
        except LLMReaderError as error:
            self.run.log.warning("reader", f"{error}; falling back to BM25 passages")
            return ""
        if notes:
            self.run.record(key, notes_value(notes), {"kind": "read", "model": config.reader.model})
        return notes
