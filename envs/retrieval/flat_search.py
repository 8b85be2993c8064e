"""Exact inner-product top-k over a (memory-mapped) embedding matrix: faiss' own SIMD
scan for a few queries, its BLAS path (one matrix product) for batches.

faiss picks between the two itself, by a process-wide threshold: the scan while
``nq * d < distance_compute_blas_threshold`` (faiss >= 1.15; before, ``nq < threshold``).
Its default, 128,000, sends 256 MiniLM queries (98,304) to the per-query scan, which
streams the whole matrix once per query and thread: ~8x slower than one product. The
measured crossover on 2 CPU cores is a handful of queries (``bench_flat_search.py``:
the scan wins up to 4 MiniLM queries, BLAS from 8, for 3,000 and 200,000 rows alike, as
faiss' own analysis in PR #5109 found: the database size does not move it). So the
compute thread sets the threshold once, to ``SCAN_MAX_QUERY_FLOATS``, when it starts
(``set_scan_threshold``); nothing here changes it, or faiss' thread count, per call —
this module once did both around every search, racing other threads' searches.

faiss' BLAS path runs OpenBLAS on faiss' own OpenMP runtime with the compute thread's
thread count: 2.5-3x faster on these AMD cores than the same product in torch (MKL).

The matrix is read block by block, so a float16 matrix memory-mapped from disk is
converted to float32 one block at a time and never held in RAM whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Batches with fewer query floats (queries x dimension) than this take faiss' scan:
# up to 5 queries of 384 dimensions, 2 of 768.
SCAN_MAX_QUERY_FLOATS = 2048
_REFERENCE_DIMENSION = 384  # for faiss < 1.15, whose threshold counts queries


def set_scan_threshold(max_query_floats: int = SCAN_MAX_QUERY_FLOATS) -> None:
    """Set faiss' process-wide scan/BLAS threshold once (the compute thread does, as it
    starts), in the unit the installed faiss compares against."""
    import faiss

    threshold = max_query_floats if _threshold_counts_floats() else -(-max_query_floats // _REFERENCE_DIMENSION)
    faiss.cvar.distance_compute_blas_threshold = threshold


def _threshold_counts_floats() -> bool:
    """faiss >= 1.15 compares ``nq * d`` with its threshold (PR #5022); older ones ``nq``."""
    import faiss

    major, minor = (int(part) for part in faiss.__version__.split(".")[:2])
    return (major, minor) >= (1, 15)


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

    def kernel(self, batch: int) -> str:
        """``"scan"`` or ``"blas"``: what faiss, with its current threshold, runs for a
        batch of ``batch`` queries."""
        import faiss

        work = batch * int(self.matrix.shape[1]) if _threshold_counts_floats() else batch
        return "scan" if work < faiss.cvar.distance_compute_blas_threshold else "blas"

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, indices)``, each ``(len(queries), min(k, len(self)))``, best first."""
        import faiss

        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, len(self))
        partial_scores, partial_indices = [], []
        for start in range(0, len(self), self.config.block_rows):
            block = np.ascontiguousarray(self.matrix[start : start + self.config.block_rows], dtype=np.float32)
            scores, indices = faiss.knn(queries, block, min(k, len(block)), metric=faiss.METRIC_INNER_PRODUCT)
            partial_scores.append(scores)
            partial_indices.append(indices + start)
        if len(partial_scores) == 1:
            return partial_scores[0], partial_indices[0]
        return merge_top_k(np.hstack(partial_scores), np.hstack(partial_indices), k)


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
    on faiss' OpenMP threads, sized once by the compute thread."""
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
