"""JSON-lines files we write and read back: results, metrics, episodes.

Written one record per line, flushed (and fsynced where losing a record matters), so
a process killed mid-write leaves at most a torn last line. Reading skips exactly
that line; any other line that is not JSON is an error naming its file and line,
never silently dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def read_jsonl(path: str | Path) -> list[Any]:
    """Every record of ``path`` ([] when it does not exist); a torn last line is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if line.endswith("\n"):
                    raise ValueError(f"{path}:{number}: not a JSON line") from None
                # The last line, without its newline: the writer died mid-line.
    return records


def append_jsonl(path: str | Path, records: Iterable[Any], durable: bool = True) -> None:
    """Append one line per record; ``durable`` fsyncs before returning."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_torn_tail(path)
    with path.open("a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        if durable:
            os.fsync(handle.fileno())


def repair_torn_tail(path: Path) -> None:
    """Make the file end on a line boundary before appending: a complete last record
    missing its newline gets one, a torn one (not JSON) is cut off."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    start = data.rfind(b"\n") + 1
    try:
        json.loads(data[start:])
    except (json.JSONDecodeError, UnicodeDecodeError):
        path.write_bytes(data[:start])
        return
    with path.open("ab") as handle:
        handle.write(b"\n")
