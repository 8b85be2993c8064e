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

from deepresearch.envs.web.storage.store import DEFAULT_STORE_TIMEOUT_S, WebStore, is_redis_location, open_store
from deepresearch.envs.web.storage.values import recorded_failure

WEB_MODES = ("live", "record", "replay")
DEFAULT_SNAPSHOT_MAX_BYTES = 8 * 1024**3


class Snapshot:
    """``lookup(key)`` -> the recorded value or ``None``; ``record(key, value, meta)`` keeps what a run saw.

    ``replay=True``: the snapshot must exist and hold entries, and a damaged file is an
    error naming it. An empty snapshot (a typo in the path, a corrupt file replaced by an
    empty one) would answer every call with "not in this snapshot": an evaluation on no web
    data at all, that looks like a run.
    """

    def __init__(
        self,
        location: str | Path,
        max_bytes: int = DEFAULT_SNAPSHOT_MAX_BYTES,
        timeout_s: float = DEFAULT_STORE_TIMEOUT_S,
        replay: bool = False,
    ) -> None:
        location = str(location)
        if replay and not is_redis_location(location) and not Path(location).is_file():
            raise ValueError(f"web_mode='replay': no snapshot at {location} (record one with web_mode='record')")
        self.store: WebStore = open_store(location, max_bytes, "snapshot", timeout_s=timeout_s, repair=not replay)
        if replay and self.store.usage()["entries"] == 0:
            self.store.close()
            raise ValueError(f"web_mode='replay': the snapshot at {self.store.location} holds no entries")

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
