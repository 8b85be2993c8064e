"""The retriever contract every backend (BM25, dense, remote, web) follows, and the
argument checks and result shaping every local index shares."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Callable, Iterable, Protocol, runtime_checkable

from deepresearch.envs.documents import Document

if TYPE_CHECKING:
    import numpy as np

# One hit: (passage position in the corpus, score).
Hit = tuple[int, float]


@runtime_checkable
class Retriever(Protocol):
    """Batched by design: one encoder pass and one index search for the whole batch."""

    def search(self, queries: list[str], k: int) -> list[list[Document]]:
        """Return, for each query, up to ``k`` documents, best first."""
        ...


class NullRetriever:
    """Returns no documents; measures env overhead without any search cost."""

    def search(self, queries: list[str], k: int) -> list[list[Document]]:
        return [[] for _ in queries]


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
