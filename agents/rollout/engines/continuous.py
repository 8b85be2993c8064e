"""Requests one at a time, batched by the engine: what the asynchronous rollout talks to.

An episode that finishes its env step submits its next generation at once and waits
for that one result; it never waits for other episodes. Engines that batch
continuously (vLLM: a request joins the running batch at the next engine step)
implement :class:`RequestEngine` themselves. Any other engine — one batched
``generate`` call at a time, like the transformers engine — gets a
:class:`CallBatcher` in front: requests that arrive while a call runs are gathered
into the next call. The rollout driver depends only on ``submit``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import replace
from typing import Protocol, runtime_checkable

from deepresearch.agents.rollout.engines.base import Generation, RolloutEngine, SamplingConfig


@runtime_checkable
class RequestEngine(Protocol):
    """An engine that takes one request at a time and batches them itself.

    ``busy_seconds``: the total time it has spent computing (engine steps or calls), so
    a caller can report the engine-busy fraction of a run.
    """

    @property
    def busy_seconds(self) -> float: ...

    def submit(self, prompt: list[int], sampling: SamplingConfig) -> Future[Generation]:
        """Queue one completion; the future resolves to its ``Generation`` (or its error)."""
        ...


class CallBatcher:
    """``RequestEngine`` over a batched ``generate``: each call takes every request queued so far.

    Requests are grouped by their sampling settings without the seed (a batched call
    samples with one seed: the first request's). A call starts ``linger_seconds`` after
    the first request it will carry arrived, so requests submitted together (e.g. the
    first turn of every episode) share one call instead of the first going alone.
    """

    def __init__(self, engine: RolloutEngine, linger_seconds: float = 0.002) -> None:
        self.engine = engine
        self.linger_seconds = linger_seconds
        self._busy = 0.0
        self._pending: list[tuple[list[int], SamplingConfig, Future[Generation]]] = []
        self._condition = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._serve, name="call-batcher", daemon=True)
        self._worker.start()

    @property
    def busy_seconds(self) -> float:
        return self._busy

    def submit(self, prompt: list[int], sampling: SamplingConfig) -> Future[Generation]:
        future: Future[Generation] = Future()
        with self._condition:
            if self._closed:
                raise RuntimeError("the CallBatcher is closed")
            self._pending.append((prompt, sampling, future))
            self._condition.notify()
        return future

    def close(self, wait: bool = True) -> None:
        """Stop the worker once the queued requests are served. ``wait=False`` does not wait for
        it: a worker stuck in a hung engine call is left behind (a daemon thread)."""
        with self._condition:
            self._closed = True
            self._condition.notify()
        if wait:
            self._worker.join()

    def _serve(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending or self._closed)
                if not self._pending:
                    return
            time.sleep(self.linger_seconds)
            with self._condition:
                taken, self._pending = self._pending, []
            self._run(taken)

    def _run(self, taken: list[tuple[list[int], SamplingConfig, Future[Generation]]]) -> None:
        groups: dict[SamplingConfig, list[tuple[list[int], SamplingConfig, Future[Generation]]]] = {}
        for request in taken:
            groups.setdefault(replace(request[1], seed=None), []).append(request)
        for requests in groups.values():
            live = [(prompt, sampling, future) for prompt, sampling, future in requests if future.set_running_or_notify_cancel()]
            if not live:
                continue
            start = time.perf_counter()
            try:
                generations = self.engine.generate([prompt for prompt, _, _ in live], live[0][1])
            except Exception as error:  # noqa: BLE001 - the callers get the engine's error
                for _, _, future in live:
                    future.set_exception(error)
                continue
            finally:
                self._busy += time.perf_counter() - start
            for (_, _, future), generation in zip(live, generations):
                future.set_result(generation)


@contextmanager
def request_engine(engine: RolloutEngine | RequestEngine, stalled: Callable[[], bool] = lambda: False) -> Iterator[RequestEngine]:
    """The engine itself when it batches continuously, else a ``CallBatcher`` in front of it
    (closed when the block ends; not waited for when ``stalled()``: a request outlived its deadline)."""
    if isinstance(engine, RequestEngine):
        yield engine
        return
    batcher = CallBatcher(engine)
    try:
        yield batcher
    finally:
        batcher.close(wait=not stalled())
