"""Counters a trainer or an evaluation logs: calls, cache hit rate, cost per step.

The backend keeps one ``WebStats`` for the run, each env one for its lifetime
and one for its current episode; every event is added to all three. Counters
only grow (``reset`` starts an episode's afresh); rates are derived on read.
"""

from __future__ import annotations

import threading

COUNTERS = (
    "steps",  # search or browse calls (env steps that used the web)
    "searches",  # distinct queries asked
    "search_cache_hits",
    "search_replay_hits",
    "search_shared",  # answered by an identical search already in flight
    "provider_calls",  # requests for a search that reached the provider (retries not counted)
    "provider_failures",
    "invalid_queries",
    "pages",  # URLs asked for
    "page_cache_hits",
    "page_replay_hits",
    "page_shared",
    "page_fetches",
    "page_failures",
    "replay_misses",
    "budget_refusals",
    "deadline_exceeded",
)


class WebStats:
    """Thread-safe counters plus the money spent; ``as_dict()`` adds the derived rates."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._cost_usd = 0.0

    def add(self, cost_usd: float = 0.0, **counts: int) -> None:
        with self._lock:
            for name, amount in counts.items():
                self._counts[name] += amount  # an unknown name is a KeyError: a typo must not vanish
            self._cost_usd += cost_usd

    def reset(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(COUNTERS, 0)
            self._cost_usd = 0.0

    def as_dict(self) -> dict[str, float]:
        """Every counter, ``cost_usd``, ``cache_hit_rate`` (hits / lookups) and ``cost_per_step``."""
        with self._lock:
            counts: dict[str, float] = dict(self._counts)
            cost = self._cost_usd
        hits = sum(counts[f"{kind}_{how}"] for kind in ("search", "page") for how in ("cache_hits", "replay_hits", "shared"))
        lookups = counts["searches"] + counts["pages"]
        counts["cost_usd"] = round(cost, 9)
        counts["cache_hit_rate"] = hits / lookups if lookups else 0.0
        counts["cost_per_step"] = cost / counts["steps"] if counts["steps"] else 0.0
        return counts


def add_to_all(stats: tuple[WebStats, ...], cost_usd: float = 0.0, **counts: int) -> None:
    for one in stats:
        one.add(cost_usd, **counts)
