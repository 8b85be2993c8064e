"""What every search and browse call of one backend shares: settings, the run's budget and counters,
the worker threads, and the stored results (cache and snapshot) read and written without failing a step."""

from __future__ import annotations

import logging
from typing import Any

from deepresearch.envs.web.accounting.budget import Ledger, reserve_all
from deepresearch.envs.web.accounting.metrics import WebStats
from deepresearch.envs.web.backend.clients import WebClient
from deepresearch.envs.web.backend.scheduler import FairScheduler
from deepresearch.envs.web.config import WebConfig
from deepresearch.envs.web.net.logs import RateLimitedLog
from deepresearch.envs.web.pages.safety import redact
from deepresearch.envs.web.snapshots.snapshot import Snapshot
from deepresearch.envs.web.storage.cache import WebCache

logger = logging.getLogger("deepresearch.envs.web.backend")


class SharedRun:
    """One backend's shared state; ``search`` and ``browse`` each take what they need from it."""

    def __init__(self, config: WebConfig, cache: WebCache | None, snapshot: Snapshot | None) -> None:
        self.config = config
        self.cache = cache
        self.snapshot = snapshot
        self.prices = config.prices()
        self.budget = Ledger(config.run_limits(), "this run")
        self.stats = WebStats()  # the run's counters: every env of this backend
        self.scheduler = FairScheduler(config.max_workers)
        self.log = RateLimitedLog(logger)  # one message per cause a minute, for this backend

    def counters(self, client: WebClient) -> tuple[WebStats, ...]:
        """The run's, the env's and the episode's counters: every call adds to all three."""
        return (self.stats, client.env_stats, client.episode_stats)

    def reserve(self, client: WebClient, price: float, search: bool) -> str | None:
        """Pay ``price`` from the run's and the env's budgets, or neither; the refusal's words when one is spent."""
        return reserve_all([self.budget, client.ledger], price, search=search)

    def refund(self, client: WebClient, price: float, search: bool = False) -> None:
        """A failed call costs nothing and does not count against the call caps."""
        self.budget.unreserve(price, search)
        client.ledger.unreserve(price, search)

    # ------------------------------------------------------------------ cache and snapshot
    def cache_get(self, key: str) -> Any | None:
        if self.cache is None:
            return None
        try:
            return self.cache.get(key)
        except Exception as error:  # noqa: BLE001 - a locked or unreachable cache is a miss, not a crash
            self.log.warning("cache-read", redact(f"web cache read failed: {type(error).__name__}: {error}"))
            return None

    def cache_put(self, key: str, value: Any, meta: dict[str, Any]) -> None:
        if self.cache is None:
            return
        try:
            self.cache.put(key, value, meta)
        except Exception as error:  # noqa: BLE001 - losing a cache write only costs a later refetch
            self.log.warning("cache-write", redact(f"web cache write failed: {type(error).__name__}: {error}"))

    def recorded(self, key: str) -> Any | None:
        assert self.snapshot is not None
        try:
            return self.snapshot.lookup(key)
        except Exception as error:  # noqa: BLE001 - an unreadable snapshot entry is a miss
            self.log.warning("snapshot-read", redact(f"snapshot read failed: {type(error).__name__}: {error}"))
            return None

    def record(self, key: str, value: Any, meta: dict[str, Any]) -> None:
        if self.config.web_mode != "record":
            return
        assert self.snapshot is not None
        try:
            self.snapshot.record(key, value, meta)
        except Exception as error:  # noqa: BLE001 - a failed snapshot write is reported, the step goes on
            self.log.warning("snapshot-write", redact(f"snapshot write failed: {type(error).__name__}: {error}"))

    def close(self) -> None:
        self.scheduler.shutdown()
