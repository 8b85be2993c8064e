"""The storage under the web cache and snapshots: content-addressed, bounded in bytes, evicted LRU.

A store maps request keys (a normalised search, a page URL) to JSON values.
Values are stored once per content (the SHA-256 of their canonical JSON), so
the same page reached by ten URLs, or recorded by ten runs, takes its bytes
once. The store is bounded by the bytes it holds (values compressed, plus keys
and metadata), not by rows: one row used to be a 2 MB page, and 100,000 rows
200 GB. Past the bound, least recently used entries go first, down to 90% of it.

Two implementations share these semantics: ``SqliteStore`` for one machine and
``RedisStore`` for many processes and nodes (``open_store`` picks by location).
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Iterator

FORMAT_NAME = "deepresearch-web-store"
FORMAT_VERSION = 1
LOW_WATER = 0.9  # eviction goes down to this share of max_bytes, so it does not run on every write
TOUCH_RESOLUTION_S = 60.0  # a hit refreshes an entry's LRU time at most this often (reads stay reads)
ENTRY_OVERHEAD_BYTES = 32


def canonical_json(value: Any) -> bytes:
    """One byte string per JSON value: sorted keys, no spaces, ASCII (lone surrogates survive)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("ascii")


def encode_value(value: Any) -> tuple[str, bytes]:
    """``(content hash, stored bytes)``: the hash is over the canonical JSON, the bytes are compressed."""
    raw = canonical_json(value)
    return hashlib.sha256(raw).hexdigest(), zlib.compress(raw, 1)


def decode_value(data: bytes) -> Any:
    return json.loads(zlib.decompress(data))


@dataclass(frozen=True)
class Hit:
    value: Any
    meta: dict[str, Any]
    created: float


@dataclass(frozen=True)
class StoredEntry:
    key: str
    hash: str
    meta: dict[str, Any]
    created: float
    used: float


class WebStore(ABC):
    """Key -> (value, metadata, creation time). ``location`` names the store in messages and holds no secret."""

    location: str
    max_bytes: int

    @abstractmethod
    def get(self, key: str) -> Hit | None:
        """The entry (its LRU time refreshed), or ``None``."""

    @abstractmethod
    def put(self, key: str, value: Any, meta: dict[str, Any], created: float | None = None) -> None:
        """Insert or replace, then evict LRU entries while the store is over ``max_bytes``."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove an entry (and its value, when no other entry shares it); whether it was there."""

    @abstractmethod
    def entries(self) -> Iterator[StoredEntry]:
        """Every entry, least recently used first."""

    @abstractmethod
    def value(self, content_hash: str) -> Any | None:
        """The value stored under a content hash, or ``None``."""

    @abstractmethod
    def evict_to(self, max_bytes: int) -> int:
        """Remove LRU entries until the store holds at most ``max_bytes``; how many went."""

    @abstractmethod
    def usage(self) -> dict[str, int]:
        """``entries``, ``values`` (distinct contents), ``bytes``, ``max_bytes``."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def prune(self, older_than_s: float | None = None, max_bytes: int | None = None) -> int:
        """Remove entries created more than ``older_than_s`` ago, then evict down to ``max_bytes``."""
        removed = 0
        if older_than_s is not None:
            cutoff = time.time() - older_than_s
            stale = [entry.key for entry in self.entries() if entry.created < cutoff]
            removed += sum(self.delete(key) for key in stale)
        if max_bytes is not None:
            removed += self.evict_to(max_bytes)
        return removed


def check_max_bytes(max_bytes: int) -> int:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 4096:
        raise ValueError(f"max_bytes must be an integer >= 4096, got {max_bytes!r}")
    return max_bytes


def is_redis_location(location: str) -> bool:
    return location.startswith(("redis://", "rediss://", "unix://"))


# Each Redis call's timeout for tools (export, import, stats: one call may list a large store);
# the web backend passes ``WebConfig.store_timeout_s``, short enough to fit inside a step's deadline.
DEFAULT_STORE_TIMEOUT_S = 5.0


def open_store(
    location: str, max_bytes: int, kind: str, timeout_s: float = DEFAULT_STORE_TIMEOUT_S, repair: bool = True
) -> WebStore:
    """A ``RedisStore`` for ``redis://``/``rediss://``/``unix://`` URLs, else a ``SqliteStore`` at the path.

    In Redis, stores live under ``deepresearch:web:<kind>`` (``kind`` is ``cache`` or
    ``snapshot``), and a URL fragment names one of several: ``redis://host:6379/0#eval-june``
    is ``deepresearch:web:snapshot:eval-june``. ``timeout_s`` bounds each Redis call (a
    server that accepts connections and then goes silent must not eat a step's deadline);
    ``repair=False`` leaves a damaged SQLite file alone instead of starting an empty one.
    """
    if is_redis_location(location):
        from deepresearch.envs.web.storage.redis_store import RedisStore

        url, _, name = location.partition("#")
        namespace = f"deepresearch:web:{kind}" + (f":{name}" if name else "")
        return RedisStore(url, max_bytes=max_bytes, namespace=namespace, socket_timeout_s=timeout_s)
    from deepresearch.envs.web.storage.sqlite_store import SqliteStore

    return SqliteStore(location, max_bytes=max_bytes, repair=repair)
