"""Bounded retries with exponential backoff, jitter and ``Retry-After``.

DeepResearcher's client retried forever; a provider outage then freezes a whole
training run. Here every call has a fixed number of attempts and a total sleep
cap, and the server's ``Retry-After`` is honoured but never trusted beyond a cap.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

from deepresearch.envs.deadline import Deadline

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` counts the first try; delays grow ``base_delay_s * 2**n`` up to ``max_delay_s``."""

    max_attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    retry_after_cap_s: float = 30.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0 or self.retry_after_cap_s < 0:
            raise ValueError("retry delays must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap_s)
        delay = min(self.base_delay_s * (2**attempt), self.max_delay_s)
        return delay * (1 + self.jitter * (2 * random.random() - 1))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds or an HTTP date; ``None`` if absent or garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RetriesExhausted(Exception):
    """A transient failure that outlived every attempt; ``last`` is the final error.

    Callers tell "the provider kept failing" from "the request was refused" by
    type, and ``str()`` says how many attempts were made (never a secret).
    """

    def __init__(self, last: Exception, attempts: int) -> None:
        super().__init__(f"{last} (after {attempts} attempt{'s' if attempts != 1 else ''})")
        self.last = last
        self.attempts = attempts


def call_with_retries(
    attempt: Callable[[], Any],
    policy: RetryPolicy,
    is_transient: Callable[[Exception], tuple[bool, float | None]],
    sleep: Callable[[float], None] = time.sleep,
    deadline: Deadline | None = None,
) -> Any:
    """Run ``attempt`` until it returns; ``is_transient(error)`` says whether to retry and any ``Retry-After``.

    A non-transient error is re-raised at once; a transient one still failing
    after ``policy.max_attempts`` becomes ``RetriesExhausted``, and so does one
    whose next backoff would end after ``deadline``: retrying then cannot help.
    """
    for number in range(policy.max_attempts):
        try:
            return attempt()
        except Exception as error:  # noqa: BLE001 - classified just below
            transient, retry_after = is_transient(error)
            if not transient:
                raise
            delay = policy.backoff(number, retry_after)
            if number == policy.max_attempts - 1 or (deadline is not None and delay >= deadline.remaining()):
                raise RetriesExhausted(error, number + 1) from error
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
