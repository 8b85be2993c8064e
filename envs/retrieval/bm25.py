"""Lexical retrieval with bm25s: no model, no GPU, an index of wiki-18 size in minutes.

Passages are indexed by ``contents`` (title line + text), as Pyserini's BM25 index used
by Search-R1 / FlashRAG does. Defaults k1=0.9, b=0.4 are Pyserini's, for the same reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import bm25s
import numpy as np
import Stemmer

from deepresearch.envs.documents import Document
from deepresearch.envs.retrieval.base import Hit, as_passages
from deepresearch.envs.retrieval.in_memory import InMemoryRetriever
from deepresearch.envs.retrieval.index_format import IndexDirError, config_from_manifest, read_index_file

BM25_METHODS = ("robertson", "lucene", "atire", "bm25l", "bm25+")
# Below this many passages an index builds in seconds: no progress bars.
PROGRESS_FROM_PASSAGES = 100_000
_INDEX_SUBDIR = "bm25s"


@dataclass(frozen=True)
class BM25Config:
    """Scoring and tokenisation; stored in the manifest so a loaded index tokenises alike."""

    k1: float = 0.9
    b: float = 0.4
    method: str = "lucene"
    stemmer: bool = True  # PyStemmer english (Snowball)
    stopwords: bool = True  # bm25s' English list

    def __post_init__(self) -> None:
        if self.method not in BM25_METHODS:
            raise ValueError(f"unknown BM25 method {self.method!r}; choose one of {BM25_METHODS}")
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={self.k1}, b={self.b}")


class BM25Retriever(InMemoryRetriever):
    """bm25s over passages in memory; ``search`` is safe to call from many threads."""

    kind = "bm25"

    def __init__(self, passages: list[Document], index: bm25s.BM25, config: BM25Config) -> None:
        super().__init__(passages)
        self.config = config
        self._index = index
        self._stemmer = stemmer_for(config)

    @classmethod
    def from_documents(
        cls, documents: Iterable[Document], config: BM25Config | None = None, show_progress: bool | None = None
    ) -> "BM25Retriever":
        """Index ``documents``; ``show_progress`` defaults to on for corpora that take a while."""
        config = config or BM25Config()
        passages = as_passages(documents)
        if show_progress is None:
            show_progress = len(passages) >= PROGRESS_FROM_PASSAGES
        tokens = _tokenize([passage.contents for passage in passages], config, stemmer_for(config), show_progress)
        index = bm25s.BM25(k1=config.k1, b=config.b, method=config.method)
        index.index(tokens, show_progress=show_progress)
        return cls(passages, index, config)

    def _top_k(self, queries: list[str], k: int) -> list[list[Hit]]:
        return bm25_hits(self._index, queries, k, self.config, self._stemmer)

    def _save_index(self, directory: Path) -> None:
        self._index.save(directory / _INDEX_SUBDIR, show_progress=False)

    def _manifest_fields(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "library": {"bm25s": bm25s.__version__}}

    @classmethod
    def _from_saved(
        cls, directory: Path, manifest: dict[str, Any], passages: list[Document], **overrides: Any
    ) -> "BM25Retriever":
        if overrides:
            raise TypeError(f"a BM25 index takes no load-time settings, got {sorted(overrides)}")
        config = config_from_manifest(directory, manifest, BM25Config)
        index = read_index_file(directory, _INDEX_SUBDIR, lambda path: bm25s.BM25.load(path, show_progress=False))
        if index.scores["num_docs"] != len(passages):
            raise IndexDirError(
                f"{directory}: the BM25 index covers {index.scores['num_docs']} passages, "
                f"passages.jsonl holds {len(passages)}"
            )
        return cls(passages, index, config)


def bm25_hits(
    index: bm25s.BM25, queries: list[str], k: int, config: BM25Config, stemmer: Stemmer.Stemmer | None
) -> list[list[Hit]]:
    """Rank with ``index``; ``k`` must not exceed the number of indexed passages."""
    tokens = _tokenize(queries, config, stemmer, show_progress=False, return_ids=False)
    found = index.retrieve(tokens, k=k, show_progress=False)
    # A passage sharing no term with the query scores 0: it is not a match, so it is
    # dropped (as Lucene does) instead of padding the list with arbitrary passages.
    return [
        [(int(position), float(score)) for position, score in zip(row_indices, row_scores) if score > 0]
        for row_indices, row_scores in zip(np.asarray(found.documents), np.asarray(found.scores))
    ]


def index_text_chunks(chunks: Iterable[list[str]], config: BM25Config, show_progress: bool) -> bm25s.BM25:
    """A BM25 index over texts arriving chunk by chunk, so the corpus text is never in
    memory whole (the token ids are: bm25s builds its sparse matrix from all of them).
    Tokenises exactly as ``bm25s.tokenize`` does for the queries."""
    tokenizer = bm25s.tokenization.Tokenizer(
        stopwords="en" if config.stopwords else [], stemmer=stemmer_for(config)
    )
    ids: list[list[int]] = []
    for texts in chunks:
        ids.extend(tokenizer.tokenize(texts, update_vocab=True, return_as="ids", show_progress=False))
    index = bm25s.BM25(k1=config.k1, b=config.b, method=config.method)
    index.index(bm25s.tokenization.Tokenized(ids=ids, vocab=tokenizer.get_vocab_dict()), show_progress=show_progress)
    return index


def stemmer_for(config: BM25Config) -> Stemmer.Stemmer | None:
    return Stemmer.Stemmer("english") if config.stemmer else None


def _tokenize(
    texts: list[str], config: BM25Config, stemmer: Stemmer.Stemmer | None, show_progress: bool, return_ids: bool = True
) -> Any:
    """Corpus and queries must go through the same tokeniser, or terms stop matching."""
    stopwords = "en" if config.stopwords else None
    return bm25s.tokenize(texts, stopwords=stopwords, stemmer=stemmer, show_progress=show_progress, return_ids=return_ids)
