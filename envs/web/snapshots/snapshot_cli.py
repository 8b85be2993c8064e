"""``deepresearch web snapshot export|import|stats|prune``: snapshots from the shell.

A SNAPSHOT is a SQLite file or a ``redis://host:port/db#name`` URL, as in
``snapshot_path=``. Sizes accept K/M/G suffixes (powers of 1024).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

from deepresearch.envs.web.snapshots.snapshot import DEFAULT_SNAPSHOT_MAX_BYTES, Snapshot
from deepresearch.envs.web.snapshots.snapshot_io import check_export, export_snapshot, import_snapshot, snapshot_stats
from deepresearch.envs.web.storage.store import is_redis_location

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """``"2G"`` -> 2147483648; a plain number is bytes."""
    value = text.strip().upper().removesuffix("B")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    try:
        return int(float(value[: len(value) - len(unit)]) * _UNITS[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500M, 2G)") from None


def configure(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    groups = parser.add_subparsers(dest="web_command", required=True)
    snapshot = groups.add_parser("snapshot", help="record/replay snapshots: export, import (merge), stats, prune")
    actions = snapshot.add_subparsers(dest="action", required=True)
    stats = actions.add_parser("stats", help="entries by kind and provider, bytes, failures (JSON)")
    stats.add_argument("snapshot")
    export = actions.add_parser("export", help="write a snapshot to a shareable .jsonl.gz file")
    export.add_argument("snapshot")
    export.add_argument("file")
    into = actions.add_parser("import", help="merge exported files into a snapshot")
    into.add_argument("files", nargs="+")
    into.add_argument("--into", required=True, metavar="SNAPSHOT")
    into.add_argument("--replace", action="store_true", help="replace entries the snapshot already has")
    into.add_argument("--max-bytes", type=parse_size, default=DEFAULT_SNAPSHOT_MAX_BYTES)
    prune = actions.add_parser("prune", help="drop old entries and/or evict least recently used down to a size")
    prune.add_argument("snapshot")
    prune.add_argument("--max-bytes", type=parse_size)
    prune.add_argument("--older-than-days", type=float)
    return run


def run(args: argparse.Namespace) -> int:
    if args.action == "import":
        for file in args.files:  # every file whole and readable before anything is merged
            try:
                check_export(file)
            except (OSError, ValueError) as error:
                raise SystemExit(f"deepresearch web snapshot import: {error}; nothing was imported") from None
        target = Snapshot(args.into, args.max_bytes)
        report = {file: import_snapshot(file, target.store, replace=args.replace) for file in args.files}
        report["snapshot"] = snapshot_stats(target.store)
    else:
        if not is_redis_location(args.snapshot) and not Path(args.snapshot).is_file():
            raise SystemExit(f"no snapshot at {args.snapshot}")
        target = Snapshot(args.snapshot)
        if args.action == "stats":
            report = snapshot_stats(target.store)
        elif args.action == "export":
            report = {"file": args.file, **export_snapshot(target.store, args.file)}
        else:
            if args.max_bytes is None and args.older_than_days is None:
                raise SystemExit("prune: give --max-bytes and/or --older-than-days")
            older = None if args.older_than_days is None else args.older_than_days * 86400
            report = {"removed": target.store.prune(older_than_s=older, max_bytes=args.max_bytes)}
            report["snapshot"] = snapshot_stats(target.store)
    target.close()
    print(json.dumps(report, indent=2))
    return 0
