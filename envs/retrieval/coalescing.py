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

The wait for company reads time from a ``Clock`` (``MonotonicClock`` by default), so a
test can decide when the bound has passed instead of racing the machine's load.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

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


class Clock(Protocol):
    """Where the worker reads the time and waits for new requests."""

    def now(self) -> float: ...

    def wait(self, condition: threading.Condition, timeout: float) -> None:
        """Wait on ``condition`` (held by the caller) until notified or ``timeout`` seconds pass."""


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    def wait(self, condition: threading.Condition, timeout: float) -> None:
        condition.wait(timeout)


@dataclass
class _Request:
    queries: list[str]
    k: int
    answer: Future = field(default_factory=Future)


class CoalescingRetriever:
    """A ``Retriever`` that batches the calls of many threads into ``inner.search``."""

    def __init__(self, inner: Retriever, config: CoalescingConfig | None = None, clock: Clock | None = None) -> None:
        self.inner = inner
        self.config = config or CoalescingConfig()
        self.clock = clock or MonotonicClock()
        self._condition = threading.Condition()
        self._pending: deque[_Request] = deque()
        self._expected = 1  # requests to wait for (see the module docstring)
        self._closed = False
        self.batches_run = 0  # merged searches so far (for benchmarks and tests)
        self._worker = threading.Thread(target=self._serve, name="coalescing-retriever", daemon=True)
        self._worker.start()

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
        with self._condition:
            if self._closed:
                raise RuntimeError("this CoalescingRetriever is closed")
            self._pending.append(request)
            self._condition.notify_all()
        return request.answer

    def close(self) -> None:
        """Stop the worker after the queued calls are answered."""
        with self._condition:
            if self._closed:
                return
            self._closed = True
            self._condition.notify_all()
        self._worker.join()

    def __enter__(self) -> "CoalescingRetriever":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _serve(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending or self._closed)
                if not self._pending:  # closed, and everything queued was answered
                    return
                batch = self._gather()
            self._run(batch)

    def _gather(self) -> list[_Request]:
        """The first queued request plus what arrives within ``max_wait_s``, up to ``max_batch``
        queries (called holding the condition; waiting releases it)."""
        batch = [self._pending.popleft()]
        size = len(batch[0].queries)
        deadline = self.clock.now() + self.config.max_wait_s
        while size < self.config.max_batch:
            if self._pending:
                request = self._pending.popleft()
                batch.append(request)
                size += len(request.queries)
                continue
            remaining = deadline - self.clock.now()
            if remaining <= 0 or len(batch) >= self._expected or self._closed:
                break
            self.clock.wait(self._condition, remaining)
        self._expected = max(len(batch), self._expected // 2)
        return batch

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

