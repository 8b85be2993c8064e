"""16 concurrent clients: the retrieval server over HTTP vs the same search in process; prints JSON.

Dense retrieval (all-MiniLM-L6-v2, exact search) over the cached wiki18_sample index
that ``bench_search.py`` writes to ``.cache/bench/dense-minilm-9654``. The server is
``deepresearch serve-retriever`` in a subprocess on 127.0.0.1; the clients are threads
with one shared ``RemoteRetriever``. In process, the same threads call a
``CoalescingRetriever`` over the same index (what the server does behind HTTP). Each
client sends single-question searches (k=3, real questions) back to back; rounds
alternate between the two so load from other users falls on both.

    nice -n 19 .venv/bin/python benchmarks/bench_server.py [--clients 16] [--requests 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench_search import read_questions, shared_data_dir  # this folder is on sys.path when run as a script

from deepresearch.envs.retrieval import CoalescingRetriever, DenseRetriever, RemoteConfig, RemoteRetriever, RemoteRetrieverError, Retriever

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHED_INDEX = REPO_ROOT / ".cache" / "bench" / "dense-minilm-9654"
K = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "deepresearch.cli", "serve-retriever", "--index", str(CACHED_INDEX), "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    remote = RemoteRetriever(f"http://127.0.0.1:{port}", RemoteConfig(retries=0))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("serve-retriever exited during start-up")
        try:
            remote.health()
            return server
        except RemoteRetrieverError:
            time.sleep(0.5)
    raise RuntimeError("serve-retriever did not start")


def one_round(retriever: Retriever, questions: list[str], clients: int, per_client: int) -> tuple[float, list[float]]:
    """Wall seconds for ``clients`` threads sending ``per_client`` searches each, and every latency."""

    def client(offset: int) -> list[float]:
        latencies = []
        for index in range(per_client):
            start = time.perf_counter()
            retriever.search([questions[(offset * per_client + index) % len(questions)]], K)
            latencies.append(time.perf_counter() - start)
        return latencies

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        latencies = [value for values in pool.map(client, range(clients)) for value in values]
    return time.perf_counter() - start, latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=16, help="searches per client per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for torch/faiss (all processes)")
    args = parser.parse_args()
    if args.threads:  # torch is imported later (lazily), so it still reads this
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if not (CACHED_INDEX / "manifest.json").is_file():
        raise SystemExit(f"run benchmarks/bench_search.py first: it caches the dense index in {CACHED_INDEX}")

    questions = read_questions(shared_data_dir() / "qa")[: args.clients * args.requests]
    port = free_port()
    server = start_server(port)
    try:
        contenders: dict[str, Retriever] = {
            "in_process": CoalescingRetriever(DenseRetriever.load(CACHED_INDEX)),
            "http_server": RemoteRetriever(f"http://127.0.0.1:{port}"),
        }
        for retriever in contenders.values():
            retriever.search(questions[:8], K)  # warm-up
        walls: dict[str, list[float]] = {name: [] for name in contenders}
        latencies: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, retriever in contenders.items():
                wall, round_latencies = one_round(retriever, questions, args.clients, args.requests)
                walls[name].append(wall)
                latencies[name] += round_latencies
    finally:
        server.terminate()
        server.wait(timeout=30)
    searches = args.clients * args.requests
    qps = {name: searches / statistics.median(values) for name, values in walls.items()}
    print(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "shared": True, "load_average": [round(load, 2) for load in os.getloadavg()]},
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "default"),
                "index": str(CACHED_INDEX.relative_to(REPO_ROOT)),
                "clients": args.clients,
                "searches_per_round": searches,
                "rounds": args.rounds,
                "qps_median": {name: round(value, 1) for name, value in qps.items()},
                "server_over_in_process": round(qps["http_server"] / qps["in_process"], 3),
                "latency_ms": {
                    name: {"p50": round(1000 * percentile(values, 0.5), 1), "p99": round(1000 * percentile(values, 0.99), 1)}
                    for name, values in latencies.items()
                },
                "all_rounds_s": {name: [round(value, 3) for value in values] for name, values in walls.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
