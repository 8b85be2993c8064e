"""Exact inner-product top-k over a (memory-mapped) embedding matrix at matmul speed.

Why not ``faiss.IndexFlatIP.search`` as is: faiss 1.15 picks its sequential SIMD scan
when ``nq * d < distance_compute_blas_threshold`` (128,000 by default since faiss PR
#5022; it used to be ``nq < 20``). 256 MiniLM queries are 256 * 384 = 98,304, so a
batch takes the per-query scan, which streams the whole matrix once per query and
thread: ~8x slower than one matrix product. Forcing the BLAS path is not enough either:
faiss then runs OpenBLAS (multi-threaded) inside its own OpenMP threads, and the two
thread pools oversubscribe the cores (faiss PR #5109, and the faiss wiki's "slow
brute-force search with OpenBLAS"). So this module calls the BLAS path with faiss'
OpenMP set to one thread and lets OpenBLAS use the cores.

The matrix is read block by block, so a float16 matrix memory-mapped from disk is
converted to float32 one block at a time and never held in RAM whole.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

# faiss' thread count is process-global: searches that change it go one at a time.
_faiss_threads = threading.Lock()


@dataclass(frozen=True)
class FlatSearchConfig:
    """``block_rows``: matrix rows converted/scored per step (64k x 768 x 4 B = 200 MB)."""

    block_rows: int = 65536

    def __post_init__(self) -> None:
        if self.block_rows <= 0:
            raise ValueError(f"block_rows must be positive, got {self.block_rows}")


class FlatSearcher:
    """Exact maximum inner product search over ``matrix`` (float16 or float32, any array
    numpy can slice, e.g. ``np.memmap``)."""

    def __init__(self, matrix: np.ndarray, config: FlatSearchConfig | None = None) -> None:
        if matrix.ndim != 2:
            raise ValueError(f"expected a 2-d embedding matrix, got shape {matrix.shape}")
        self.matrix = matrix
        self.config = config or FlatSearchConfig()

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, indices)``, each ``(len(queries), min(k, len(self)))``, best first."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, len(self))
        partial_scores, partial_indices = [], []
        for start in range(0, len(self), self.config.block_rows):
            block = np.ascontiguousarray(self.matrix[start : start + self.config.block_rows], dtype=np.float32)
            scores, indices = blas_knn_inner_product(queries, block, min(k, len(block)))
            partial_scores.append(scores)
            partial_indices.append(indices + start)
        return merge_top_k(np.hstack(partial_scores), np.hstack(partial_indices), k)


def blas_knn_inner_product(queries: np.ndarray, block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss' exhaustive search forced onto the BLAS path, one OpenMP thread."""
    import faiss

    with _faiss_threads:
        previous_threads = faiss.omp_get_max_threads()
        previous_threshold = faiss.cvar.distance_compute_blas_threshold
        faiss.omp_set_num_threads(1)
        faiss.cvar.distance_compute_blas_threshold = 0
        try:
            return faiss.knn(queries, block, k, metric=faiss.METRIC_INNER_PRODUCT)
        finally:
            faiss.cvar.distance_compute_blas_threshold = previous_threshold
            faiss.omp_set_num_threads(previous_threads)


def merge_top_k(scores: np.ndarray, indices: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of per-block candidates, best first (ties by lower index)."""
    order = np.lexsort((indices, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(indices, order, axis=1)


def rerank_exact(matrix: np.ndarray, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact scores for each query's ``candidates`` (rows of ``matrix``; -1 = none) and
    their best ``k``: compressed codes (IVF-PQ) shortlist, the stored vectors decide."""
    valid = candidates >= 0
    vectors = np.asarray(matrix[np.where(valid, candidates, 0)], dtype=np.float32)
    scores = np.einsum("qcd,qd->qc", vectors, np.asarray(queries, dtype=np.float32))
    scores[~valid] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    kept = np.take_along_axis(valid, order, axis=1)
    return np.take_along_axis(scores, order, axis=1), np.where(kept, np.take_along_axis(candidates, order, axis=1), -1)


def faiss_search(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Search an approximate faiss index (HNSW, IVF-PQ); these parallelise over queries
    with OpenMP and need no BLAS, so faiss keeps its own thread setting."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    with _faiss_threads:
        return index.search(queries, k)
