"""Snapshots as files to share: export, import (merging), statistics.

An export is gzipped JSON lines, identical bytes for identical contents: a
header ``{"format": "deepresearch-web-snapshot", "version": 1}``, then for each
distinct value (by content hash) a line ``{"value": <sha256>, "data": ...}``
followed by the entries that hold it, ``{"key", "meta", "created"}``. Import
reads and checks the whole file first (a truncated or malformed export is an
error naming its file and line, and nothing is merged), checks every value
against its hash (a damaged one is skipped with the entries that hold it) and
merges: keys already in the target are kept unless ``replace=True``. Writes go to a temporary file renamed into place.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from deepresearch.envs.web.storage.store import WebStore, canonical_json, encode_value

EXPORT_FORMAT = "deepresearch-web-snapshot"
EXPORT_VERSION = 1


def _line(out: BinaryIO, record: dict[str, Any]) -> None:
    out.write(canonical_json(record) + b"\n")


def export_snapshot(store: WebStore, path: str | Path) -> dict[str, int]:
    """Write every entry of ``store`` to ``path``; returns how many entries and distinct values went out."""
    path = Path(path)
    groups: dict[str, list] = {}
    for entry in store.entries():
        groups.setdefault(entry.hash, []).append(entry)
    counts = {"entries": 0, "values": 0}
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as out:
        _line(out, {"format": EXPORT_FORMAT, "version": EXPORT_VERSION})
        for content_hash in sorted(groups):
            value = store.value(content_hash)
            if value is None:
                continue  # evicted while exporting
            _line(out, {"value": content_hash, "data": value})
            counts["values"] += 1
            for entry in sorted(groups[content_hash], key=lambda e: e.key):
                _line(out, {"key": entry.key, "meta": entry.meta, "created": entry.created})
                counts["entries"] += 1
        out.flush()
        raw.flush()
        os.fsync(raw.fileno())
    temporary.replace(path)
    return counts


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` after the header; any damage to the file (not gzip, cut short,
    a line that is not JSON or lacks a field) is a ``ValueError`` naming the file and line."""
    line_number = 0
    try:
        with gzip.open(path, "rb") as lines:
            line_number = 1
            header = json.loads(next(lines, b"{}"))
            if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
                raise ValueError(f"{path} is not a web snapshot export (no {EXPORT_FORMAT!r} header)")
            if int(header.get("version", 0)) > EXPORT_VERSION:
                raise ValueError(
                    f"{path} is snapshot export version {header['version']}; this version reads up to {EXPORT_VERSION}"
                )
            for line_number, line in enumerate(lines, start=2):
                yield line_number, _checked_record(json.loads(line), line_number == 2)
    except gzip.BadGzipFile:
        raise ValueError(f"{path} is not a gzip file (an export is .jsonl.gz)") from None
    except (EOFError, zlib.error) as error:
        raise ValueError(f"{path}: cut short or damaged after line {line_number} ({error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}:{line_number}: not JSON ({error})") from None
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}:{line_number}: not a snapshot record ({type(error).__name__}: {error})") from None


def _checked_record(record: Any, first: bool) -> dict[str, Any]:
    """A value line ``{"value", "data"}`` or an entry line ``{"key", "meta", "created"}`` with the right types."""
    if not isinstance(record, dict):
        raise TypeError(f"a line holds {type(record).__name__}, not an object")
    if "value" in record:
        if not isinstance(record["value"], str) or "data" not in record:
            raise KeyError("a value line needs a string 'value' and its 'data'")
        return record
    if first:
        raise KeyError("an entry comes before any value")
    if not isinstance(record["key"], str) or not isinstance(record.get("meta") or {}, dict):
        raise TypeError("'key' must be a string and 'meta' an object")
    try:
        record["created"] = float(record["created"])
    except ValueError:
        raise TypeError(f"'created' must be a number, not {record['created']!r}") from None
    return record


def check_export(path: str | Path) -> int:
    """Read a whole export without writing anything; its number of records, or a ``ValueError``."""
    return sum(1 for _ in _records(Path(path)))


def import_snapshot(path: str | Path, store: WebStore, replace: bool = False) -> dict[str, int]:
    """Merge an export into ``store``; returns ``added``, ``replaced``, ``unchanged``, ``kept`` (a different
    value was already there and ``replace`` is off) and ``damaged`` (entries whose value failed its hash).

    All or nothing: the whole file is read and checked first, so a truncated, non-gzip or
    malformed export raises a ``ValueError`` naming the file and line before any entry is merged.
    """
    check_export(path)
    counts = Counter(added=0, replaced=0, unchanged=0, kept=0, damaged=0)
    value: Any = None
    valid = False
    content_hash = ""
    for _, record in _records(Path(path)):
        if "value" in record:
            content_hash, value = record["value"], record["data"]
            valid = hashlib.sha256(canonical_json(value)).hexdigest() == content_hash
            continue
        if not valid:
            counts["damaged"] += 1
            continue
        existing = store.get(record["key"])
        if existing is not None and encode_value(existing.value)[0] == content_hash:
            counts["unchanged"] += 1
        elif existing is not None and not replace:
            counts["kept"] += 1
        else:
            store.put(record["key"], value, record.get("meta") or {}, created=record["created"])
            counts["replaced" if existing is not None else "added"] += 1
    return dict(counts)


def snapshot_stats(store: WebStore) -> dict[str, Any]:
    """Entries by kind and provider, recorded failures, distinct values, bytes, and the time span recorded."""
    kinds: Counter[str] = Counter()
    providers: Counter[str] = Counter()
    failures = 0
    times: list[float] = []
    for entry in store.entries():
        kinds[str(entry.meta.get("kind", "?"))] += 1
        if "provider" in entry.meta:
            providers[str(entry.meta["provider"])] += 1
        failures += bool(entry.meta.get("failure"))
        times.append(entry.created)
    return {
        "location": store.location,
        **store.usage(),
        "by_kind": dict(sorted(kinds.items())),
        "by_provider": dict(sorted(providers.items())),
        "failures": failures,
        "oldest": min(times, default=None),
        "newest": max(times, default=None),
    }
