"""What the in-process retrievers (BM25, dense) share: passages held in memory, a
batched ``search`` that never raises on an empty query, and the saved-index directory.

A saved directory holds ``manifest.json`` (kind, settings, passage count and sha256,
library versions), ``passages.jsonl`` (the corpus in the wiki-18 convention) and the
backend's own index files. Loading checks all of it, because an index that silently
answers with the wrong passages would poison a training run without any error.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import shutil
import threading
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Sequence, TypeVar

import numpy as np

from deepresearch.envs.documents import Document, read_corpus

MANIFEST_NAME = "manifest.json"
PASSAGES_NAME = "passages.jsonl"
FORMAT_VERSION = 1
# Version 2: an index built by ``index_build`` (streamed embeddings, passages read from
# the corpus file through byte offsets); see ``built_index``.
BUILT_FORMAT_VERSION = 2
_REQUIRED_MANIFEST_KEYS = {
    FORMAT_VERSION: ("format_version", "kind", "count", "passages_sha256"),
    BUILT_FORMAT_VERSION: ("format_version", "kind", "count", "corpus", "params"),
}

T = TypeVar("T")
# One hit: (passage position in the corpus, score).
Hit = tuple[int, float]


class IndexDirError(ValueError):
    """A saved index directory that is missing, incomplete, corrupted or of another kind."""


class LocalRetriever(ABC):
    """A retriever whose passages live in this process; subclasses supply the ranking."""

    kind: ClassVar[str]

    def __init__(self, passages: Iterable[Document]) -> None:
        self._passages = as_passages(passages)
        # One search at a time: neither PyStemmer stemmers nor HF tokenizers may be
        # called concurrently, and a whole batch per call is the efficient shape anyway.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._passages)

    @classmethod
    def from_jsonl(cls, path: str | Path, *args: Any, **kwargs: Any) -> "LocalRetriever":
        """Index a wiki-18 style corpus file (``contents`` or ``title``/``text`` records)."""
        return cls.from_documents(list(read_corpus(path)), *args, **kwargs)

    @classmethod
    @abstractmethod
    def from_documents(cls, documents: Iterable[Document], *args: Any, **kwargs: Any) -> "LocalRetriever":
        """Index the given passages."""

    def search(self, queries: list[str], k: int) -> list[list[Document]]:
        """Up to ``k`` passages per query, best first; a blank query gets an empty list."""
        return search_batch(queries, k, len(self), self._locked_top_k, self._passages.__getitem__)

    def _locked_top_k(self, queries: list[str], k: int) -> list[list[Hit]]:
        with self._lock:
            return self._top_k(queries, k)

    @abstractmethod
    def _top_k(self, queries: list[str], k: int) -> list[list[Hit]]:
        """Rank the corpus for non-blank queries; ``k`` never exceeds ``len(self)``."""

    def save(self, directory: str | Path) -> Path:
        """Write the index to ``directory``, replacing an older saved index there.

        The files are written to a temporary sibling first and moved into place at the
        end, so an interrupted save never leaves a half-written index behind.
        """
        directory = Path(directory)
        _refuse_to_replace_foreign_dir(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = _fresh_sibling(directory, "new")
        try:
            passages_sha256 = _write_passages(staging / PASSAGES_NAME, self._passages)
            self._save_index(staging)
            manifest = {
                "format_version": FORMAT_VERSION,
                "kind": self.kind,
                "count": len(self),
                "passages_sha256": passages_sha256,
                **self._manifest_fields(),
            }
            (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            _swap_into_place(staging, directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return directory

    @abstractmethod
    def _save_index(self, directory: Path) -> None:
        """Write the backend's index files into ``directory``."""

    @abstractmethod
    def _manifest_fields(self) -> dict[str, Any]:
        """Settings and versions the manifest records, so ``load`` can rebuild and check."""

    @classmethod
    def load(cls, directory: str | Path, **overrides: Any) -> "LocalRetriever":
        """Open a directory written by ``save``; ``overrides`` are runtime settings (device...)."""
        directory = Path(directory)
        manifest = read_manifest(directory)
        if manifest["kind"] != cls.kind or manifest["format_version"] != FORMAT_VERSION:
            raise IndexDirError(
                f"{directory} holds a {manifest['kind']!r} index, not {cls.kind!r}; "
                "load_retriever(directory) picks the right class from the manifest"
            )
        passages = _read_passages(directory, manifest)
        return cls._from_saved(directory, manifest, passages, **overrides)

    @classmethod
    @abstractmethod
    def _from_saved(
        cls, directory: Path, manifest: dict[str, Any], passages: list[Document], **overrides: Any
    ) -> "LocalRetriever":
        """Rebuild from checked passages and the backend's files."""


def search_batch(
    queries: list[str],
    k: int,
    size: int,
    top_k: Callable[[list[str], int], list[list[Hit]]],
    passage: Callable[[int], Document],
) -> list[list[Document]]:
    """The ``search`` contract shared by every index: arguments checked, blank queries
    answered with no passages (never an error mid-training), the rest ranked in one
    ``top_k`` call with ``k`` capped at the corpus ``size``."""
    check_search_arguments(queries, k)
    results: list[list[Document]] = [[] for _ in queries]
    live = [position for position, query in enumerate(queries) if query.strip()]
    if not live:
        return results
    hits = top_k([queries[position] for position in live], min(k, size))
    for position, row in zip(live, hits, strict=True):
        results[position] = [passage(index).with_score(score) for index, score in row]
    return results


def vector_hits(scores: np.ndarray, indices: np.ndarray) -> list[list[Hit]]:
    """``(scores, indices)`` matrices from a vector search as hits per query; faiss marks
    missing neighbours (an IVF probe that found too few) with -1, which are dropped."""
    return [
        [(int(index), float(score)) for index, score in zip(row_indices, row_scores) if index >= 0]
        for row_indices, row_scores in zip(indices, scores)
    ]


def check_search_arguments(queries: list[str], k: int) -> None:
    """The argument errors every ``search`` reports the same way."""
    if isinstance(queries, str):
        raise TypeError("search() takes a list of queries, not a single string")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k <= 0:
        raise ValueError(f"k must be a positive number of passages, got {k!r}")
    for position, query in enumerate(queries):
        if not isinstance(query, str):
            raise TypeError(f"query {position} is a {type(query).__name__}, expected str")


def as_passages(documents: Iterable[Document]) -> list[Document]:
    """The corpus as a list, refusing an empty one before any backend trips over it."""
    passages = list(documents)
    if not passages:
        raise ValueError("cannot build a retriever over an empty corpus")
    return passages


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


def _write_passages(path: Path, passages: Sequence[Document]) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for passage in passages:
            line = (json.dumps(passage.to_record(), ensure_ascii=False) + "\n").encode("utf-8")
            digest.update(line)
            handle.write(line)
    return digest.hexdigest()


def _read_passages(directory: Path, manifest: dict[str, Any]) -> list[Document]:
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


def _refuse_to_replace_foreign_dir(directory: Path) -> None:
    """Only an earlier saved index (or nothing) may be replaced; never a user's other files."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise IndexDirError(f"cannot save an index to {directory}: it is a file")
    if any(directory.iterdir()) and not (directory / MANIFEST_NAME).is_file():
        raise IndexDirError(f"refusing to overwrite {directory}: it is not empty and not a saved index")


def _fresh_sibling(directory: Path, label: str) -> Path:
    """An empty hidden directory beside ``directory``, created with the user's umask
    (``tempfile.mkdtemp`` would make it owner-only, and the saved index with it)."""
    sibling = directory.parent / f".{directory.name}.{label}-{uuid.uuid4().hex[:12]}"
    sibling.mkdir()
    return sibling


def _swap_into_place(staging: Path, directory: Path) -> None:
    if not directory.exists():
        os.replace(staging, directory)
        return
    retired = _fresh_sibling(directory, "old")
    os.replace(directory, retired / directory.name)
    os.replace(staging, directory)
    shutil.rmtree(retired, ignore_errors=True)
