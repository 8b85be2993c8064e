"""FlatSearcher: exact top-k by blocks over float32/float16 and memory-mapped matrices,
equal to a plain numpy argsort of the full score matrix, on either of faiss' kernels
(its scan for a few queries, BLAS for batches, as the compute thread's threshold picks),
without changing faiss' global state per search."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from deepresearch.envs.retrieval.compute_thread import compute_thread
from deepresearch.envs.retrieval.flat_search import SCAN_MAX_QUERY_FLOATS, FlatSearchConfig, FlatSearcher, merge_top_k, rerank_exact


def unit_rows(rows: int, dimension: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def exact_top_k(queries: np.ndarray, matrix: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ matrix.astype(np.float32).T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("block_rows", [97, 1000, 65536])
@pytest.mark.parametrize(("batch", "kernel"), [(1, "scan"), (3, "scan"), (64, "blas")])
def test_blocked_search_equals_numpy_argsort(block_rows: int, batch: int, kernel: str) -> None:
    matrix, queries = unit_rows(1000, 48, 0), unit_rows(batch, 48, 1)
    searcher = FlatSearcher(matrix, FlatSearchConfig(block_rows=block_rows))
    assert compute_thread().run(searcher.kernel, batch) == kernel  # 48 floats a query; BLAS from 2048
    scores, indices = compute_thread().run(searcher.search, queries, 10)
    assert np.array_equal(indices, exact_top_k(queries, matrix, 10))
    assert np.allclose(scores, np.take_along_axis(queries @ matrix.T, indices, axis=1), atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_the_compute_thread_sets_the_crossover_once_and_both_kernels_agree() -> None:
    matrix, queries = unit_rows(500, 32, 9), unit_rows(64, 32, 10)
    searcher = FlatSearcher(matrix)
    assert compute_thread().run(lambda: faiss.cvar.distance_compute_blas_threshold) == SCAN_MAX_QUERY_FLOATS
    assert [searcher.kernel(batch) for batch in (1, 63, 64)] == ["scan", "scan", "blas"]  # 32 floats a query
    blas = compute_thread().run(searcher.search, queries, 7)
    scan = compute_thread().run(searcher.search, queries[:63], 7)
    assert np.array_equal(scan[1], blas[1][:63]) and np.allclose(scan[0], blas[0][:63], atol=1e-5)


def test_float16_memory_map_and_k_beyond_the_matrix(tmp_path: Path) -> None:
    matrix = unit_rows(300, 32, 2).astype(np.float16)
    path = tmp_path / "embeddings.f16"
    matrix.tofile(path)
    mapped = np.memmap(path, dtype=np.float16, mode="r", shape=matrix.shape)
    queries = unit_rows(5, 32, 3)
    scores, indices = FlatSearcher(mapped, FlatSearchConfig(block_rows=64)).search(queries, 500)
    assert indices.shape == (5, 300) and sorted(indices[0]) == list(range(300))
    assert np.array_equal(indices[:, :10], exact_top_k(queries, matrix, 10))


def test_no_search_changes_faiss_thread_count_or_blas_threshold() -> None:
    """Process-wide settings changed per call would race with other threads' searches."""
    settings = lambda: (faiss.omp_get_max_threads(), faiss.cvar.distance_compute_blas_threshold)  # noqa: E731
    before = compute_thread().run(settings)
    searcher = FlatSearcher(unit_rows(200, 16, 4))
    for batch in (1, 200):
        compute_thread().run(searcher.search, unit_rows(batch, 16, 5), 3)
    assert compute_thread().run(settings) == before


def test_merge_prefers_higher_scores_then_lower_positions() -> None:
    scores = np.array([[0.5, 0.75, 0.5, 0.25]], dtype=np.float32)
    indices = np.array([[7, 3, 2, 9]])
    merged_scores, merged_indices = merge_top_k(scores, indices, 3)
    assert merged_indices.tolist() == [[3, 2, 7]] and merged_scores.tolist() == [[0.75, 0.5, 0.5]]


def test_rerank_scores_candidates_exactly_and_keeps_missing_ones_last() -> None:
    matrix, queries = unit_rows(200, 16, 6), unit_rows(3, 16, 7)
    exact = exact_top_k(queries, matrix, 4)
    shuffled = np.random.default_rng(8).permuted(np.hstack([exact, exact_top_k(queries, matrix, 12)[:, 8:]]), axis=1)
    scores, indices = rerank_exact(matrix, queries, shuffled, 4)
    assert np.array_equal(indices, exact)
    sparse = np.array([[exact[0, 1], -1, exact[0, 0]]])
    _, indices = rerank_exact(matrix, queries[:1], sparse, 3)
    assert indices.tolist() == [[exact[0, 0], exact[0, 1], -1]]


def test_a_matrix_must_be_two_dimensional() -> None:
    with pytest.raises(ValueError, match="2-d"):
        FlatSearcher(np.zeros(10, dtype=np.float32))
