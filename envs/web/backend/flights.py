"""One request per key at a time: envs asking for the same search or page together share one call.

A GRPO group puts one question to many envs at once, and their first searches
are often the same. Without this each would pay for its own provider call,
because none finds the others' result in the cache yet.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Callable, Generic, TypeVar

from deepresearch.envs.deadline import Deadline, DeadlineExceeded

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._flights: dict[str, Future] = {}
        self._lock = threading.Lock()

    def run(self, key: str, work: Callable[[], T], deadline: Deadline) -> tuple[T, bool]:
        """``(result, shared)``: runs ``work`` unless a call for ``key`` is in flight, then waits for that one
        (until ``deadline``; its exception is raised here too)."""
        with self._lock:
            flight = self._flights.get(key)
            owner = flight is None
            if owner:
                flight = self._flights[key] = Future()
        if not owner:
            try:
                return flight.result(timeout=deadline.remaining()), True
            except FutureTimeout:
                raise DeadlineExceeded(f"waited for the same request of another env until {deadline.describe()}") from None
        try:
            result = work()
        except BaseException as error:
            flight.set_exception(error)
            raise
        else:
            flight.set_result(result)
            return result, False
        finally:
            with self._lock:
                del self._flights[key]
