"""What the in-process retrievers (BM25, dense) share: passages held in memory, a
batched ``search`` that never raises on an empty query, and ``save``/``load`` of a
version-1 index directory (see ``index_format``)."""

from __future__ import annotations

import json
import shutil
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Iterable

from deepresearch.envs.documents import Document, read_corpus
from deepresearch.envs.retrieval.base import Hit, as_passages, search_batch
from deepresearch.envs.retrieval.index_format import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    PASSAGES_NAME,
    IndexDirError,
    fresh_sibling,
    read_manifest,
    read_passages,
    refuse_to_replace_foreign_dir,
    swap_into_place,
    write_passages,
)


class InMemoryRetriever(ABC):
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
    def from_jsonl(cls, path: str | Path, *args: Any, **kwargs: Any) -> "InMemoryRetriever":
        """Index a wiki-18 style corpus file (``contents`` or ``title``/``text`` records)."""
        return cls.from_documents(list(read_corpus(path)), *args, **kwargs)

    @classmethod
    @abstractmethod
    def from_documents(cls, documents: Iterable[Document], *args: Any, **kwargs: Any) -> "InMemoryRetriever":
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
        refuse_to_replace_foreign_dir(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = fresh_sibling(directory, "new")
        try:
            passages_sha256 = write_passages(staging / PASSAGES_NAME, self._passages)
            self._save_index(staging)
            manifest = {
                "format_version": FORMAT_VERSION,
                "kind": self.kind,
                "count": len(self),
                "passages_sha256": passages_sha256,
                **self._manifest_fields(),
            }
            (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            swap_into_place(staging, directory)
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
    def load(cls, directory: str | Path, **overrides: Any) -> "InMemoryRetriever":
        """Open a directory written by ``save``; ``overrides`` are runtime settings (device...)."""
        directory = Path(directory)
        manifest = read_manifest(directory)
        if manifest["kind"] != cls.kind or manifest["format_version"] != FORMAT_VERSION:
            raise IndexDirError(
                f"{directory} holds a {manifest['kind']!r} index, not {cls.kind!r}; "
                "load_retriever(directory) picks the right class from the manifest"
            )
        passages = read_passages(directory, manifest)
        return cls._from_saved(directory, manifest, passages, **overrides)

    @classmethod
    @abstractmethod
    def _from_saved(
        cls, directory: Path, manifest: dict[str, Any], passages: list[Document], **overrides: Any
    ) -> "InMemoryRetriever":
        """Rebuild from checked passages and the backend's files."""
