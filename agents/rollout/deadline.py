"""A blocking call bounded by a deadline, for engine calls that may hang.

The call runs in a daemon thread and the caller waits for it at most ``deadline_s``: past
that it gets a ``DeadlineExceeded`` and goes on (dropping the episodes the call was for), and a
call that never returns is left behind in its thread instead of stalling the run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceeded(TimeoutError):
    """The call had not returned by its deadline (it may still be running, in its own thread)."""


def call_with_deadline(call: Callable[[], T], deadline_s: float | None) -> T:
    """``call()``'s result or exception; ``DeadlineExceeded`` when it has not returned after ``deadline_s``
    (None: no deadline, called in this thread)."""
    if deadline_s is None:
        return call()
    outcome: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            outcome.append((False, error))

    worker = threading.Thread(target=run, name="engine-call", daemon=True)
    worker.start()
    worker.join(deadline_s)
    if not outcome:
        raise DeadlineExceeded(f"no answer after {deadline_s:g} s")
    succeeded, value = outcome[0]
    if not succeeded:
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]
