"""The web cache: search results and extracted pages kept for a while, in SQLite or Redis.

DeepResearcher rewrote one JSON file after every batch: slow, racy between
processes, and a crash mid-write lost the cache. Here a ``WebStore`` holds the
entries (SQLite in WAL mode for one machine, Redis for many; atomic writes,
bounded in bytes) and the cache adds a time to live. Only successful results
are put here; callers never put API keys in keys or values (keys are built from
the provider name, the query and the URL only).
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from deepresearch.envs.web.storage.store import DEFAULT_STORE_TIMEOUT_S, WebStore, open_store

DEFAULT_CACHE_MAX_BYTES = 2 * 1024**3
# After its store fails, the cache is off this long (then tried again): a Redis that went silent
# costs one store timeout and one warning, not a timeout on every call of every step.
CACHE_COOLOFF_S = 60.0


class CacheUnavailable(RuntimeError):
    """The cache's store failed; its message names the store, and the cache rests ``CACHE_COOLOFF_S``."""


def default_cache_path() -> Path:
    """``$DEEPRESEARCH_CACHE/web.sqlite`` or ``~/.cache/deepresearch/web.sqlite``."""
    root = os.environ.get("DEEPRESEARCH_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "deepresearch"
    return base / "web.sqlite"


def normalise_query(query: str) -> str:
    """Case and whitespace do not change a web search, so they do not split the cache."""
    return re.sub(r"\s+", " ", query).strip().lower()


def search_key(provider: str, query: str, k: int) -> str:
    return f"search\x1f{provider}\x1f{k}\x1f{normalise_query(query)}"


def page_key(url: str) -> str:
    return f"page\x1f{url}"


class WebCache:
    """Key -> JSON value with a time to live, over a byte-bounded ``WebStore``.

    ``location`` is a SQLite file path or a ``redis://host:port/db`` URL (a
    ``#name`` fragment keeps several caches apart in one Redis); ``timeout_s`` bounds each
    Redis call. A store call that fails raises ``CacheUnavailable`` once; for the next
    ``CACHE_COOLOFF_S`` the cache then answers misses and drops writes without touching the
    store (counted as ``skipped``), so the run goes on without a cache instead of waiting.
    """

    def __init__(
        self,
        location: str | Path,
        ttl_s: float = 7 * 86400,
        max_bytes: int = DEFAULT_CACHE_MAX_BYTES,
        timeout_s: float = DEFAULT_STORE_TIMEOUT_S,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"cache ttl_s must be > 0, got {ttl_s}")
        self.ttl_s = float(ttl_s)
        self.store: WebStore = open_store(str(location), max_bytes, "cache", timeout_s=timeout_s)
        self._counter_lock = threading.Lock()
        self._counts = {"hits": 0, "misses": 0, "writes": 0, "expired": 0, "skipped": 0}
        self._resting_until = 0.0

    @property
    def location(self) -> str:
        return self.store.location

    def _count(self, name: str) -> None:
        with self._counter_lock:
            self._counts[name] += 1

    def get(self, key: str) -> Any | None:
        """The cached value, or ``None`` when absent or older than the TTL (then it is removed)."""
        if self._resting():
            return None
        try:
            hit = self.store.get(key)
            if hit is not None and time.time() - hit.created > self.ttl_s:
                self.store.delete(key)
                self._count("expired")
                hit = None
        except Exception as error:  # noqa: BLE001 - any store failure: rest, and say which store failed
            raise self._failed(error) from None
        self._count("misses" if hit is None else "hits")
        return None if hit is None else hit.value

    def put(self, key: str, value: Any, meta: dict[str, Any] | None = None) -> None:
        if self._resting():
            return
        try:
            self.store.put(key, value, meta or {})
        except Exception as error:  # noqa: BLE001
            raise self._failed(error) from None
        self._count("writes")

    def _resting(self) -> bool:
        if time.monotonic() < self._resting_until:
            self._count("skipped")
            return True
        return False

    def _failed(self, error: Exception) -> CacheUnavailable:
        self._resting_until = time.monotonic() + CACHE_COOLOFF_S
        return CacheUnavailable(
            f"the web cache at {self.location} failed ({type(error).__name__}: {error}); "
            f"going on without it for {CACHE_COOLOFF_S:g} s"
        )

    def __len__(self) -> int:
        return self.store.usage()["entries"]

    def stats(self) -> dict[str, int]:
        """Hit/miss/write counters of this instance (not persisted) plus the store's entries and bytes."""
        with self._counter_lock:
            counts = dict(self._counts)
        return {**counts, **self.store.usage()}

    def close(self) -> None:
        self.store.close()
