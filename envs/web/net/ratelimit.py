"""A thread-safe token bucket: at most ``rate`` calls a second, bursts up to ``burst``.

Paid search APIs ban or bill bursts; many env workers searching at once must
share one budget per provider.
"""

from __future__ import annotations

import threading
import time


class TokenBucket:
    """``acquire()`` blocks until a token is free or ``timeout_s`` passes (then returns False)."""

    def __init__(self, rate_per_s: float, burst: int = 1, clock=time.monotonic, sleep=time.sleep) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be > 0, got {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate = float(rate_per_s)
        self.burst = int(burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def _reserve(self) -> float:
        """Take a token if one is there (returns 0) or say how long until one is."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate

    def acquire(self, timeout_s: float | None = None) -> bool:
        deadline = None if timeout_s is None else self._clock() + timeout_s
        while True:
            wait = self._reserve()
            if wait == 0:
                return True
            if deadline is not None and self._clock() + wait > deadline:
                return False
            self._sleep(wait)


_SHARED: dict[tuple[str, float, int], TokenBucket] = {}
_SHARED_LOCK = threading.Lock()


def shared_bucket(name: str, rate_per_s: float, burst: int = 1) -> TokenBucket:
    """The process-wide bucket for ``name``: many envs built in one process share one provider budget."""
    with _SHARED_LOCK:
        key = (name, float(rate_per_s), int(burst))
        if key not in _SHARED:
            _SHARED[key] = TokenBucket(rate_per_s, burst)
        return _SHARED[key]
