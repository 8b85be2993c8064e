"""Web search on the backend's workers: replayed, cached, shared with identical calls in flight, or paid
for from the budgets and asked of the provider; every failure comes back as one hit the model reads."""

from __future__ import annotations

from concurrent.futures import Future, wait

from deepresearch.envs.deadline import Deadline, DeadlineExceeded
from deepresearch.envs.documents import Document
from deepresearch.envs.web.accounting.metrics import WebStats, add_to_all
from deepresearch.envs.web.backend.clients import WebClient
from deepresearch.envs.web.backend.flights import SingleFlight
from deepresearch.envs.web.backend.shared import SharedRun
from deepresearch.envs.web.pages.safety import shown_url
from deepresearch.envs.web.providers.results import query_problem
from deepresearch.envs.web.providers.search_apis import ProviderError, SearchProvider
from deepresearch.envs.web.storage.cache import search_key
from deepresearch.envs.web.storage.values import BadStoredValue, failure_value, recorded_failure, search_documents, search_value


def notice_document(message: str) -> Document:
    """A search that returned nothing usable, as the one hit the model reads (every protocol shows it whole)."""
    return Document(id="", title=message, text="", contents=message)


def failure_document(reason: str) -> Document:
    """A failed search: an outage must not look like "No results found."."""
    return notice_document(reason if reason.startswith("search failed") else f"search failed: {reason}")


class WebSearch:
    """``search`` of a ``WebBackend``; ``provider`` is None only when replaying without a live fallback."""

    def __init__(self, run: SharedRun, provider: SearchProvider | None, provider_name: str) -> None:
        self.run, self.provider, self.provider_name = run, provider, provider_name
        self._flights: SingleFlight[list[Document]] = SingleFlight()

    def search(self, queries: list[str], k: int, client: WebClient) -> list[list[Document]]:
        """Results per query by the search deadline; the URLs returned are added to ``client``'s seen list."""
        config = self.run.config
        deadline = Deadline(config.search_deadline_s)
        stats = self.run.counters(client)
        k = max(1, int(k) if config.max_results is None else min(int(k), config.max_results))
        # One lookup per distinct cache key: "Marie Curie" and "marie  curie" in one batch cost one call.
        keys = [search_key(self.provider_name, q, k) if isinstance(q, str) and q.strip() else None for q in queries]
        first_query: dict[str, str] = {}
        for key, query in zip(keys, queries):
            if key is not None:
                first_query.setdefault(key, query)
        add_to_all(stats, steps=1, searches=len(first_query))
        futures = {
            key: self.run.scheduler.submit(client, lambda key=key, query=query: self._one(key, query, k, deadline, client), deadline)
            for key, query in first_query.items()
        }
        wait(futures.values(), timeout=deadline.remaining())
        results = {key: self._outcome(future, deadline, stats) for key, future in futures.items()}
        answers = [results[key] if key is not None else [] for key in keys]
        client.seen.add(answers)
        return answers

    def _outcome(self, future: Future, deadline: Deadline, stats: tuple[WebStats, ...]) -> list[Document]:
        if future.cancelled():
            return [failure_document("search failed: the web backend was closed")]
        if not future.done() or isinstance(future.exception(), DeadlineExceeded):
            add_to_all(stats, deadline_exceeded=1)
            return [failure_document(f"search failed: {self.provider_name} timed out ({deadline.describe()})")]
        error = future.exception()
        if error is not None:  # a bug, not the network: say so without details that could hold a secret
            self.run.log.warning(f"search-bug:{type(error).__name__}", f"web search raised {type(error).__name__}")
            return [failure_document(f"search failed: internal error ({type(error).__name__})")]
        return future.result()

    def _one(self, key: str, query: str, k: int, deadline: Deadline, client: WebClient) -> list[Document]:
        """One distinct query, on a worker: replay, cache, or the provider (shared with identical calls in flight)."""
        stats = self.run.counters(client)
        problem = query_problem(query)
        if problem:
            add_to_all(stats, invalid_queries=1)
            return [failure_document(f"search failed: {problem}")]
        if self.run.config.web_mode == "replay":
            recorded = self.run.recorded(key)
            failure = recorded_failure(recorded)
            try:
                documents = [failure_document(failure)] if failure else None if recorded is None else search_documents(recorded)
            except BadStoredValue:
                documents = None  # a damaged entry is a miss
            if documents is not None:
                add_to_all(stats, search_replay_hits=1)
                return documents
            add_to_all(stats, replay_misses=1)
            if not self.run.config.replay_fallback_live:
                return [notice_document(f"search not available: {shown_url(query, 80)!r} is not in this snapshot (replay mode)")]
        documents, shared = self._flights.run(key, lambda: self._live(key, query, k, deadline, client), deadline)
        if shared:
            add_to_all(stats, search_shared=1)
        return documents

    def _live(self, key: str, query: str, k: int, deadline: Deadline, client: WebClient) -> list[Document]:
        run, stats = self.run, self.run.counters(client)
        meta = {"kind": "search", "provider": self.provider_name, "k": k, "settings": run.config.public_settings()}
        cached = run.cache_get(key)
        if cached is not None:
            try:
                documents = search_documents(cached)
            except BadStoredValue:
                documents = None  # a damaged row is a miss
            if documents is not None:
                add_to_all(stats, search_cache_hits=1)
                run.record(key, cached, meta)
                return documents
        price = run.prices.get(self.provider_name, 0.0)
        refusal = run.reserve(client, price, search=True)
        if refusal is not None:
            add_to_all(stats, budget_refusals=1)
            return [notice_document(f"search not run: {refusal}. Answer with what you have found so far.")]
        add_to_all(stats, provider_calls=1)
        assert self.provider is not None  # replay without fallback never gets here
        try:
            documents = self.provider.search_one(query, k, deadline)
        except ProviderError as error:  # already redacted and logged (rate-limited) by the provider
            run.refund(client, price, search=True)
            add_to_all(stats, provider_failures=1)
            run.record(key, failure_value(str(error)), meta)
            return [failure_document(str(error))]
        add_to_all(stats, cost_usd=price)
        value = search_value(documents)
        run.cache_put(key, value, meta)
        run.record(key, value, meta)
        return documents
