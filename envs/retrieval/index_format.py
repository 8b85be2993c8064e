"""The on-disk index formats: the manifest, its versions, and reading and writing them safely.

Two versions. Version 1 is a saved in-memory retriever (``InMemoryRetriever.save``):
``manifest.json`` (kind, settings, passage count and sha256, library versions),
``passages.jsonl`` (the corpus in the wiki-18 convention) and the backend's own
files. Version 2 is an index written by ``index_builder`` (see ``disk_index`` for its
layout): passages stay in the corpus file. Reading checks everything, because an
index that silently answers with the wrong passages would poison a training run
without any error; writing replaces a directory only once the new one is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from deepresearch.envs.documents import Document, read_corpus

MANIFEST_NAME = "manifest.json"
PASSAGES_NAME = "passages.jsonl"
FORMAT_VERSION = 1
# Version 2: an index built by ``index_builder`` (streamed embeddings, passages read from
# the corpus file through byte offsets); see ``disk_index``.
BUILT_FORMAT_VERSION = 2
_REQUIRED_MANIFEST_KEYS = {
    FORMAT_VERSION: ("format_version", "kind", "count", "passages_sha256"),
    BUILT_FORMAT_VERSION: ("format_version", "kind", "count", "corpus", "params"),
}

T = TypeVar("T")


class IndexDirError(ValueError):
    """A saved index directory that is missing, incomplete, corrupted or of another kind."""


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a saved index, checked for the fields every kind needs."""
    directory = Path(directory)
    if not directory.is_dir():
        raise IndexDirError(f"saved index directory not found: {directory}")
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise IndexDirError(f"{directory} has no {MANIFEST_NAME}: it is not a saved retriever index")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise IndexDirError(f"{manifest_path} is corrupted (not valid JSON: {error})") from None
    if not isinstance(manifest, dict):
        raise IndexDirError(f"{manifest_path} is corrupted (expected a JSON object)")
    version = manifest.get("format_version")
    if version not in _REQUIRED_MANIFEST_KEYS:
        raise IndexDirError(
            f"{manifest_path} has format version {version}, this library reads versions "
            f"{sorted(_REQUIRED_MANIFEST_KEYS)}; rebuild the index"
        )
    missing = [key for key in _REQUIRED_MANIFEST_KEYS[version] if key not in manifest]
    if missing:
        raise IndexDirError(f"{manifest_path} is missing {', '.join(missing)}")
    return manifest


def manifest_section(manifest: dict[str, Any], key: str) -> Any:
    """A kind-specific manifest entry, with an error naming it when absent."""
    if key not in manifest:
        raise IndexDirError(f"{MANIFEST_NAME} of this {manifest['kind']!r} index is missing {key!r}")
    return manifest[key]


def config_from_manifest(directory: Path, manifest: dict[str, Any], config_class: type, **overrides: Any) -> Any:
    """Rebuild the dataclass config a manifest recorded (plus runtime ``overrides``)."""
    try:
        return config_class(**manifest_section(manifest, "config"), **overrides)
    except (TypeError, ValueError) as error:
        raise IndexDirError(f"{directory}: unreadable {config_class.__name__} in {MANIFEST_NAME} ({error})") from None


def required_file(directory: Path, name: str) -> Path:
    """A file of a saved index, with an error naming it when absent."""
    path = directory / name
    if not path.exists():
        raise IndexDirError(f"{directory} is incomplete: {name} is missing")
    return path


def read_index_file(directory: Path, name: str, reader: Callable[[Path], T]) -> T:
    """``reader(path)`` for a backend file, turning a damaged file into a clear error."""
    path = required_file(directory, name)
    try:
        return reader(path)
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise IndexDirError(f"{path} is unreadable ({type(error).__name__}: {error})") from None


def write_passages(path: Path, passages: Sequence[Document]) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for passage in passages:
            line = (json.dumps(passage.to_record(), ensure_ascii=False) + "\n").encode("utf-8")
            digest.update(line)
            handle.write(line)
    return digest.hexdigest()


def read_passages(directory: Path, manifest: dict[str, Any]) -> list[Document]:
    path = required_file(directory, PASSAGES_NAME)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != manifest["passages_sha256"]:
        raise IndexDirError(f"{path} does not match the sha256 in {MANIFEST_NAME}: the passages changed")
    passages = list(read_corpus(path))
    if len(passages) != manifest["count"]:
        raise IndexDirError(f"{path} holds {len(passages)} passages, the manifest says {manifest['count']}")
    return passages


def refuse_to_replace_foreign_dir(directory: Path) -> None:
    """Only an earlier saved index (or nothing) may be replaced; never a user's other files."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise IndexDirError(f"cannot save an index to {directory}: it is a file")
    if any(directory.iterdir()) and not (directory / MANIFEST_NAME).is_file():
        raise IndexDirError(f"refusing to overwrite {directory}: it is not empty and not a saved index")


def fresh_sibling(directory: Path, label: str) -> Path:
    """An empty hidden directory beside ``directory``, created with the user's umask
    (``tempfile.mkdtemp`` would make it owner-only, and the saved index with it)."""
    sibling = directory.parent / f".{directory.name}.{label}-{uuid.uuid4().hex[:12]}"
    sibling.mkdir()
    return sibling


def swap_into_place(staging: Path, directory: Path) -> None:
    if not directory.exists():
        os.replace(staging, directory)
        return
    retired = fresh_sibling(directory, "old")
    os.replace(directory, retired / directory.name)
    os.replace(staging, directory)
    shutil.rmtree(retired, ignore_errors=True)
