"""Continuous batching on vLLM's in-process engine: one thread steps it, requests join at the next step.

Why not ``vllm.AsyncLLM`` (``AsyncLLMEngine`` is an alias of it in vLLM 0.32)? It
always runs its EngineCore in a separate, *spawned* process —
``VLLM_ENABLE_V1_MULTIPROCESSING=0`` does not apply to it — so a script without an
``if __name__ == "__main__"`` guard cannot start it, every training process carries
a second copy of torch and the model, and the weights must cross a process
boundary at each sync (``collective_rpc("reload_weights", ...)`` with tensors
fails there: ``'list' object has no attribute 'dtype'``). The scheduler that does
the continuous batching is the same EngineCore either way; here it runs in this
process (``LLMEngine`` with ``VLLM_ENABLE_V1_MULTIPROCESSING=0``), stepped by one
thread, so weight sync stays an in-process copy.

Only the loop's thread touches the engine while it runs. ``exclusive()`` lets every
request submitted so far finish, holds later ones back (finish-then-swap), and gives
the caller the engine alone: for a weight sync or a batched ``LLM.generate``. A
request therefore runs entirely under the weights that were current when it was
submitted, or entirely under the next ones — never half and half.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

R = TypeVar("R")


class EngineStepLoop(Generic[R]):
    """Steps a vLLM ``LLMEngine`` in a daemon thread while it has requests.

    ``to_result`` turns a finished ``RequestOutput`` into what the request's future
    resolves to. ``busy_seconds`` adds up the time spent in ``engine.step()``.
    """

    def __init__(self, llm_engine: Any, to_result: Callable[[Any], R]) -> None:
        self._engine = llm_engine
        self._to_result = to_result
        self._condition = threading.Condition()
        self._exclusive = threading.Lock()  # one exclusive() block at a time
        self._incoming: list[tuple[str, Any, Any, Future[R]]] = []
        # Submitted before the current exclusive() block began: they run before it.
        self._before_hold: list[tuple[str, Any, Any, Future[R]]] = []
        self._in_flight: dict[str, Future[R]] = {}
        self._held = False
        self._stepping = False
        self._closed = False
        self._busy = 0.0
        self._ids = itertools.count()
        self._thread = threading.Thread(target=self._serve, name="vllm-step-loop", daemon=True)
        self._thread.start()

    @property
    def busy_seconds(self) -> float:
        return self._busy

    def submit(self, prompt: Any, params: Any) -> Future[R]:
        """Queue one request (a vLLM prompt and its ``SamplingParams``); it joins the next step."""
        future: Future[R] = Future()
        with self._condition:
            if self._closed:
                raise RuntimeError("the engine's step loop is closed")
            self._incoming.append((f"stream-{next(self._ids)}", prompt, params, future))
            self._condition.notify_all()
        return future

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Finish every request submitted so far, hold later ones back, and give the block the engine alone."""
        with self._exclusive:
            with self._condition:
                self._held = True
                self._before_hold, self._incoming = self._before_hold + self._incoming, []
                self._condition.notify_all()
                self._condition.wait_for(lambda: not (self._in_flight or self._before_hold or self._stepping))
            try:
                yield
            finally:
                with self._condition:
                    self._held = False
                    self._condition.notify_all()

    def close(self) -> None:
        """Finish the requests in flight and stop the thread; queued ones fail."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join()
        for _, _, _, future in self._before_hold + self._incoming:
            future.set_exception(RuntimeError("the engine's step loop was closed"))
        self._before_hold, self._incoming = [], []

    def _admissible(self) -> list[tuple[str, Any, Any, Future[R]]]:
        """What may join the next step (call with the condition held); taken off the queues."""
        if self._closed:
            return []
        admitted, self._before_hold = self._before_hold, []
        if not self._held:
            admitted, self._incoming = admitted + self._incoming, []
        return admitted

    def _serve(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(
                    lambda: self._closed or self._in_flight or self._before_hold or (self._incoming and not self._held)
                )
                if self._closed and not self._in_flight:
                    return
                admitted = self._admissible()
                self._stepping = True
            try:
                self._step(admitted)
            finally:
                with self._condition:
                    self._stepping = False
                    self._condition.notify_all()

    def _step(self, admitted: list[tuple[str, Any, Any, Future[R]]]) -> None:
        for request_id, prompt, params, future in admitted:
            if not future.set_running_or_notify_cancel():
                continue
            try:
                self._engine.add_request(request_id, prompt, params)
            except Exception as error:  # noqa: BLE001 - a bad request fails alone
                future.set_exception(error)
                continue
            self._in_flight[request_id] = future
        if not self._in_flight:
            return
        start = time.perf_counter()
        try:
            outputs = self._engine.step()
        except Exception as error:  # noqa: BLE001 - every request in flight gets the engine's error
            self._fail_in_flight(error)
            return
        finally:
            self._busy += time.perf_counter() - start
        for output in outputs:
            if output.finished and output.request_id in self._in_flight:
                future = self._in_flight.pop(output.request_id)
                try:
                    future.set_result(self._to_result(output))
                except Exception as error:  # noqa: BLE001 - a conversion error is this request's
                    future.set_exception(error)

    def _fail_in_flight(self, error: BaseException) -> None:
        failed = list(self._in_flight)
        self._engine.abort_request(failed)
        for request_id in failed:
            self._in_flight.pop(request_id).set_exception(error)
