"""Exact inner-product top-k over a (memory-mapped) embedding matrix, with the kernel
picked by the shape of the work.

* Tiny batches over small matrices (``scan_max_queries`` queries and at most
  ``scan_max_rows`` rows): faiss' own SIMD scan (what ``faiss.IndexFlatIP`` runs for a
  handful of queries), with no matrix product to set up: 0.1-0.2 ms for one query over
  3,000 MiniLM vectors, where a product plus a top-k costs ~2x that.
* Everything else: one matrix product and ``torch.topk`` per block of rows, on torch's
  thread pool, the same pool the encoder uses. Not faiss' BLAS path: faiss runs OpenBLAS
  on its own OpenMP runtime (a second pool whose idle threads spin beside torch's) and
  picks it only when ``nq * d`` passes a global threshold (128,000 in faiss 1.15, so 256
  MiniLM queries took the per-query scan, ~8x slower). Setting faiss' thread count or
  threshold per call, as this module once did, changes process-wide state under other
  threads; nothing here changes either.

The crossover was measured with ``benchmarks/bench_flat_search.py`` (see RESULTS.md).
The matrix is read block by block, so a float16 matrix memory-mapped from disk is
converted to float32 one block at a time and never held in RAM whole. Callers run these
kernels on the compute thread (``compute_thread``), which sized both pools once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FlatSearchConfig:
    """``block_rows``: matrix rows converted/scored per step (64k x 768 x 4 B = 200 MB).
    ``scan_max_queries`` / ``scan_max_rows``: the largest batch and float32 matrix that
    faiss' scan answers (the measured crossover on 2 CPU cores); larger go to matmul."""

    block_rows: int = 65536
    scan_max_queries: int = 4
    scan_max_rows: int = 100_000

    def __post_init__(self) -> None:
        if self.block_rows <= 0:
            raise ValueError(f"block_rows must be positive, got {self.block_rows}")
        if self.scan_max_queries < 0 or self.scan_max_rows < 0:
            raise ValueError("scan_max_queries and scan_max_rows must be >= 0")


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
        """``"scan"`` or ``"matmul"``: the kernel a batch of ``batch`` queries runs on."""
        scannable = self.matrix.dtype == np.float32 and len(self) <= self.config.scan_max_rows
        return "scan" if scannable and batch <= self.config.scan_max_queries else "matmul"

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, indices)``, each ``(len(queries), min(k, len(self)))``, best first."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, len(self))
        if self.kernel(len(queries)) == "scan":
            return scan_inner_product(queries, self.matrix, k)
        partial_scores, partial_indices = [], []
        for start in range(0, len(self), self.config.block_rows):
            block = self.matrix[start : start + self.config.block_rows]
            scores, indices = matmul_top_k(queries, block, min(k, len(block)))
            partial_scores.append(scores)
            partial_indices.append(indices + start)
        if len(partial_scores) == 1:
            return partial_scores[0], partial_indices[0]
        return merge_top_k(np.hstack(partial_scores), np.hstack(partial_indices), k)


def scan_inner_product(queries: np.ndarray, matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss' exhaustive scan (its choice for few queries); ``matrix`` float32."""
    import faiss

    return faiss.knn(queries, np.ascontiguousarray(matrix), k, metric=faiss.METRIC_INNER_PRODUCT)


def matmul_top_k(queries: np.ndarray, block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One product and a top-k on torch's thread pool; ties go to the lower row."""
    import torch

    rows = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
    with torch.inference_mode():
        scores = torch.from_numpy(queries) @ rows.T
        top_scores, top_indices = torch.topk(scores, k, dim=1, largest=True, sorted=True)
    return merge_top_k(top_scores.numpy(), top_indices.numpy(), k)


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
