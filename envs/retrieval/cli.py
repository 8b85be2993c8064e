"""``deepresearch index build`` and ``deepresearch serve-retriever``."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from deepresearch.envs.retrieval.index_builder import IndexBuildConfig

Handler = Callable[[argparse.Namespace], int]
# IndexBuildConfig's integer index parameters, each a flag; the defaults are the config's.
TUNING_FLAGS = {
    "hnsw_m": "HNSW: neighbours per node",
    "ef_construction": "HNSW: candidate list size while building",
    "ef_search": "HNSW: candidate list size while searching (recall vs speed)",
    "ivf_lists": "IVF-PQ: inverted lists (None: 4 * sqrt(count))",
    "pq_m": "IVF-PQ: sub-quantizers (None: dimension / 8)",
    "pq_bits": "IVF-PQ: bits per sub-quantizer code",
    "nprobe": "IVF-PQ: lists probed per query",
    "refine": "IVF-PQ: re-score refine*k candidates exactly (1 = off)",
    "train_size": "IVF-PQ: vectors sampled to train the quantizers",
}


def configure_index(parser: argparse.ArgumentParser) -> Handler:
    from deepresearch.envs.retrieval.index_builder import IndexBuildConfig

    commands = parser.add_subparsers(dest="index_command", required=True)
    build = commands.add_parser("build", help="build a flat/hnsw/ivfpq/bm25 index of a corpus .jsonl (resumable)")
    build.add_argument("--corpus", required=True, type=Path, help="wiki-18 style .jsonl (id + contents, or title/text)")
    build.add_argument("--out", required=True, type=Path, help="index directory (an unfinished build there is resumed)")
    build.add_argument("--kind", choices=("flat", "hnsw", "ivfpq", "bm25"), default="flat")
    build.add_argument("--model", help="sentence-transformers model name or folder (dense kinds)")
    build.add_argument("--query-prefix", default=None, help="default: 'query: ' for E5 models, '' otherwise")
    build.add_argument("--passage-prefix", default=None, help="default: 'passage: ' for E5 models, '' otherwise")
    build.add_argument("--fp16", action="store_true", help="store embeddings as float16")
    build.add_argument("--chunk-size", type=int, default=4096, help="passages encoded per resumable step")
    build.add_argument("--batch-size", type=int, default=64)
    build.add_argument("--device", default="cpu")
    defaults = {field.name: field.default for field in fields(IndexBuildConfig)}
    for name, help_text in TUNING_FLAGS.items():
        build.add_argument("--" + name.replace("_", "-"), type=int, default=defaults[name], help=f"{help_text} (default: %(default)s)")
    build.add_argument("--overwrite", action="store_true", help="discard an index of other settings in --out")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    return _build


def _build(args: argparse.Namespace) -> int:
    from deepresearch.envs.retrieval.index_builder import build_index

    print(build_index(build_config(args), overwrite=args.overwrite))
    return 0


def build_config(args: argparse.Namespace) -> "IndexBuildConfig":
    """The ``IndexBuildConfig`` that ``index build``'s arguments describe."""
    from deepresearch.envs.retrieval.index_builder import IndexBuildConfig

    return IndexBuildConfig(
        corpus=args.corpus,
        out=args.out,
        kind=args.kind,
        model=args.model,
        query_prefix=args.query_prefix,
        passage_prefix=args.passage_prefix,
        fp16=args.fp16,
        chunk_size=args.chunk_size,
        batch_size=args.batch_size,
        device=args.device,
        show_progress=not args.quiet,
        **{name: getattr(args, name) for name in TUNING_FLAGS},
    )


def configure_serve(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("--index", required=True, type=Path, help="an index directory (or a corpus .jsonl, indexed with BM25)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--topk", type=int, default=3, help="k for requests that do not say")
    parser.add_argument("--max-k", type=int, default=100)
    parser.add_argument("--max-queries", type=int, default=512, help="queries per request")
    parser.add_argument("--max-query-chars", type=int, default=4096)
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a search waits to join a batch")
    parser.add_argument("--max-batch", type=int, default=256, help="queries per coalesced search")
    parser.add_argument("--device", default=None, help="encoder device for dense indexes (e.g. cuda)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch/faiss threads of the compute thread (default: the available cores)"
    )
    parser.add_argument("--access-log", action="store_true", help="log every request (costs time at high request rates)")
    return _serve


def _serve(args: argparse.Namespace) -> int:
    from deepresearch.envs.retrieval.compute_thread import ThreadPolicy, configure_compute_thread, prepare_process

    policy = ThreadPolicy(compute_threads=args.threads)
    prepare_process(policy)  # before torch/faiss load: their OpenMP runtimes read it once
    import uvicorn

    from deepresearch.envs.retrieval.coalescing import CoalescingConfig
    from deepresearch.envs.retrieval.open_index import load_retriever
    from deepresearch.envs.retrieval.server import ServerConfig, create_app

    configure_compute_thread(policy)
    settings = {"device": args.device} if args.device else {}
    retriever = load_retriever(args.index, **settings)
    config = ServerConfig(
        default_k=args.topk,
        max_k=args.max_k,
        max_queries=args.max_queries,
        max_query_chars=args.max_query_chars,
        coalescing=CoalescingConfig(max_wait_s=args.max_wait_ms / 1000, max_batch=args.max_batch),
    )
    description = {"index": str(args.index), "kind": retriever.kind, "passages": len(retriever)}
    app = create_app(retriever, config, description)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=args.access_log)
    return 0
