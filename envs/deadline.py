"""One total deadline per env step, shared by everything the step does.

A step that searches or browses may queue for a worker, wait for the rate
limiter, try a request several times, back off, follow redirects and extract
text. Timeouts on each of those alone add up (a hanging provider used to cost
46 s a step); a ``Deadline`` made when the step starts is handed down instead,
and every stage takes only what is left of it.
"""

from __future__ import annotations

import time

DEFAULT_DEADLINE_S = 30.0


class DeadlineExceeded(Exception):
    """The step's deadline passed before this piece of work could run or finish."""


class Deadline:
    """An instant on the monotonic clock; ``remaining()`` is what is left of it (never negative)."""

    __slots__ = ("seconds", "end")

    def __init__(self, seconds: float = DEFAULT_DEADLINE_S) -> None:
        if not seconds > 0:
            raise ValueError(f"a deadline must be > 0 seconds, got {seconds}")
        self.seconds = float(seconds)
        self.end = time.monotonic() + self.seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def describe(self) -> str:
        """Words for the model: which limit ran out."""
        return f"the {self.seconds:g} s deadline for this step passed"
