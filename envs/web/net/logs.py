"""Warnings that say what happened once, not once per query.

A provider outage during training fails every search; logging each one buried
real messages (10,823 lines in 10,000 fuzz steps). A ``RateLimitedLog`` emits a
message for a given cause at most once per interval and reports how many it held back.
"""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedLog:
    """``warning(cause, message)``: at most one record per ``cause`` every ``interval_s`` seconds."""

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, cause: str, message: str) -> bool:
        """Log ``message`` unless ``cause`` was logged within the interval; returns whether it was logged."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(cause)
            if last is not None and now - last < self.interval_s:
                self._held[cause] = self._held.get(cause, 0) + 1
                return False
            self._last[cause] = now
            held = self._held.pop(cause, 0)
        suffix = f" ({held} similar message{'s' if held != 1 else ''} held back)" if held else ""
        self.logger.warning("%s%s", message, suffix)
        return True
