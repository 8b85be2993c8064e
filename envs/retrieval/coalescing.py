"""Merge concurrent ``search`` calls into one batched search.

64 envs stepping in threads each ask for one or two queries; a dense retriever answers
256 queries in one encoder pass nearly as fast as one. ``CoalescingRetriever`` queues
the calls, and one worker thread takes everything queued, runs one ``search`` with the
largest ``k`` asked, and hands each caller its own rows cut to its own ``k``.

How long to wait for company: the callers of a batch come back together once answered,
so as many requests as recent batches held are expected (the last batch's size, or half
the previous expectation if larger, so one straggler does not split the next rounds),
for at most ``max_wait_s``, up to ``max_batch`` queries. A lone caller never waits once
the expectation has decayed to one; 16 clients that resubmit within a millisecond of
their answers meet again in one batch instead of a batch of the first arrival and a
batch of the rest.

``submit`` returns a ``concurrent.futures.Future``, so an event loop (the HTTP server)
awaits answers without parking one thread per request; ``search`` waits on it.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from deepresearch.envs.documents import Document
from deepresearch.envs.retrieval.base import Retriever, check_search_arguments


@dataclass(frozen=True)
class CoalescingConfig:
    """``max_wait_s`` bounds the latency a lone caller can lose waiting for company."""

    max_wait_s: float = 0.005
    max_batch: int = 256

    def __post_init__(self) -> None:
        if self.max_wait_s < 0 or self.max_batch <= 0:
            raise ValueError(f"need max_wait_s >= 0 and max_batch > 0, got {self.max_wait_s}, {self.max_batch}")


@dataclass
class _Request:
    queries: list[str]
    k: int
    answer: Future = field(default_factory=Future)


class CoalescingRetriever:
    """A ``Retriever`` that batches the calls of many threads into ``inner.search``."""

    def __init__(self, inner: Retriever, config: CoalescingConfig | None = None) -> None:
        self.inner = inner
        self.config = config or CoalescingConfig()
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._expected = 1  # requests to wait for (see the module docstring)
        self._closed = False
        self._worker = threading.Thread(target=self._serve, name="coalescing-retriever", daemon=True)
        self._worker.start()
        self.batches_run = 0  # merged searches so far (for benchmarks and tests)

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def search(self, queries: list[str], k: int) -> list[list[Document]]:
        """Same contract as ``inner.search``; arguments are checked here, so one caller's
        bad input fails that caller alone, never the batch it would have joined."""
        return self.submit(queries, k).result()

    def submit(self, queries: list[str], k: int) -> Future:
        """Queue a search; the future holds its rows (or the batch's error)."""
        check_search_arguments(queries, k)
        request = _Request(list(queries), k)
        if not queries:
            request.answer.set_result([])
            return request.answer
        if self._closed:
            raise RuntimeError("this CoalescingRetriever is closed")
        self._queue.put(request)
        return request.answer

    def close(self) -> None:
        """Stop the worker after the queued calls are answered."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._worker.join()

    def __enter__(self) -> "CoalescingRetriever":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._gather(first)
            self._run(batch)
            if stop:
                return

    def _gather(self, first: _Request) -> tuple[list[_Request], bool]:
        """``first`` plus what arrives within ``max_wait_s``, up to ``max_batch`` queries."""
        batch, size = [first], len(first.queries)
        deadline = time.monotonic() + self.config.max_wait_s
        while size < self.config.max_batch:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or len(batch) >= self._expected:
                    break
                try:
                    request = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if request is None:
                return batch, True
            batch.append(request)
            size += len(request.queries)
        self._expected = max(len(batch), self._expected // 2)
        return batch, False

    def _run(self, batch: list[_Request]) -> None:
        batch = [request for request in batch if request.answer.set_running_or_notify_cancel()]  # drop cancelled ones
        if not batch:
            return
        queries = [query for request in batch for query in request.queries]
        try:
            rows = self.inner.search(queries, max(request.k for request in batch))
        except BaseException as error:  # every caller of the batch learns why
            for request in batch:
                request.answer.set_exception(error)
            return
        self.batches_run += 1
        start = 0
        for request in batch:
            request.answer.set_result([row[: request.k] for row in rows[start : start + len(request.queries)]])
            start += len(request.queries)

