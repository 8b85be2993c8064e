"""Model folders built once on this machine and reused: the tiny model, converted GGUF files.

A build runs into a temporary sibling folder and is renamed into place only when it is
complete, with a small JSON file recording the key it was built for; a folder whose key
does not match (stale, or left half-written at an explicit path) is rebuilt. Two processes
building the same key at once both succeed: the second rename loses and its copy is
dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def default_cache_root() -> Path:
    """``$DEEPRESEARCH_CACHE`` or ``~/.cache/deepresearch``."""
    configured = os.environ.get("DEEPRESEARCH_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "deepresearch"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded_key(directory: Path, info_file: str) -> str | None:
    """The key a finished build in ``directory`` recorded, None when there is none."""
    try:
        return json.loads((directory / info_file).read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return None


def build_once(target: Path, key: str, info_file: str, build: Callable[[Path], dict[str, Any]]) -> Path:
    """``target`` built by ``build(staging_dir)`` (which returns extra info to record), unless
    it already holds a finished build for ``key``."""
    if recorded_key(target, info_file) == key:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        info = build(staging)
        (staging / info_file).write_text(json.dumps({"key": key, **info}))
        _publish(staging, target, key, info_file)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _publish(staging: Path, target: Path, key: str, info_file: str) -> None:
    """Move the finished build into place; a concurrent identical build may win the race."""
    if target.exists():
        if recorded_key(target, info_file) == key:
            return
        # A stale or half-written directory at an explicit path: replace it.
        shutil.rmtree(target)
    try:
        os.replace(staging, target)
    except OSError:
        if recorded_key(target, info_file) != key:
            raise
