"""Merge concurrent ``search`` calls into one batched search.

64 envs stepping in threads each ask for one or two queries; a dense retriever answers
256 queries in one encoder pass nearly as fast as one. ``CoalescingRetriever`` queues
the calls, and one worker thread takes everything queued (waiting at most
``max_wait_s`` for stragglers, up to ``max_batch`` queries), runs one ``search`` with
the largest ``k`` asked, and hands each caller its own rows cut to its own ``k``.
"""

from __future__ import annotations

import queue
import threading
import time
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
    done: threading.Event = field(default_factory=threading.Event)
    result: list[list[Document]] | None = None
    error: BaseException | None = None


class CoalescingRetriever:
    """A ``Retriever`` that batches the calls of many threads into ``inner.search``."""

    def __init__(self, inner: Retriever, config: CoalescingConfig | None = None) -> None:
        self.inner = inner
        self.config = config or CoalescingConfig()
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._active = 0  # callers inside search(): when all are queued, waiting gains nothing
        self._active_lock = threading.Lock()
        self._closed = False
        self._worker = threading.Thread(target=self._serve, name="coalescing-retriever", daemon=True)
        self._worker.start()
        self.batches_run = 0  # merged searches so far (for benchmarks and tests)

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def search(self, queries: list[str], k: int) -> list[list[Document]]:
        """Same contract as ``inner.search``; arguments are checked here, so one caller's
        bad input fails that caller alone, never the batch it would have joined."""
        check_search_arguments(queries, k)
        if not queries:
            return []
        if self._closed:
            raise RuntimeError("this CoalescingRetriever is closed")
        request = _Request(list(queries), k)
        with self._active_lock:
            self._active += 1
        try:
            self._queue.put(request)
            request.done.wait()
        finally:
            with self._active_lock:
                self._active -= 1
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

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
                with self._active_lock:
                    everyone_queued = self._active <= len(batch)
                if remaining <= 0 or everyone_queued:
                    break
                try:
                    request = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if request is None:
                return batch, True
            batch.append(request)
            size += len(request.queries)
        return batch, False

    def _run(self, batch: list[_Request]) -> None:
        queries = [query for request in batch for query in request.queries]
        try:
            rows = self.inner.search(queries, max(request.k for request in batch))
        except BaseException as error:  # every caller of the batch learns why
            for request in batch:
                request.error = error
                request.done.set()
            return
        self.batches_run += 1
        start = 0
        for request in batch:
            request.result = [row[: request.k] for row in rows[start : start + len(request.queries)]]
            start += len(request.queries)
            request.done.set()

