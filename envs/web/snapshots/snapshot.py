"""Record / replay snapshots: rerun an evaluation or an ablation on the web as it was, for free.

``web_mode="record"`` writes every search result and page a run sees (cache
hits included, with the provider, its settings and the time) into a snapshot;
``web_mode="replay"`` answers from the snapshot only and never touches the
network, so reruns are deterministic and cost nothing. Failures are recorded
too (a replay shows the model the same timeout), but never over a success.

A snapshot is a ``WebStore`` of its own (a SQLite file, or a namespace in
Redis): content-addressed, versioned, bounded in bytes with LRU eviction.
``snapshot_io`` exports, imports and merges them; ``deepresearch web snapshot``
does the same from the shell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepresearch.envs.web.storage.store import WebStore, open_store
from deepresearch.envs.web.storage.values import recorded_failure

WEB_MODES = ("live", "record", "replay")
DEFAULT_SNAPSHOT_MAX_BYTES = 8 * 1024**3


class Snapshot:
    """``lookup(key)`` -> the recorded value or ``None``; ``record(key, value, meta)`` keeps what a run saw."""

    def __init__(self, location: str | Path, max_bytes: int = DEFAULT_SNAPSHOT_MAX_BYTES) -> None:
        self.store: WebStore = open_store(str(location), max_bytes, "snapshot")

    @property
    def location(self) -> str:
        return self.store.location

    def lookup(self, key: str) -> Any | None:
        hit = self.store.get(key)
        return None if hit is None else hit.value

    def record(self, key: str, value: Any, meta: dict[str, Any]) -> None:
        """Keep ``value``; a failure (marked in its metadata) does not replace a success recorded earlier."""
        if recorded_failure(value) is not None:
            earlier = self.store.get(key)
            if earlier is not None and recorded_failure(earlier.value) is None:
                return
            meta = {**meta, "failure": True}
        self.store.put(key, value, meta)

    def close(self) -> None:
        self.store.close()
