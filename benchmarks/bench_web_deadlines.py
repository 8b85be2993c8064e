"""Step time against hostile servers: does every step end by its deadline + 1 s? (issue #16)

Prints JSON. Three scenarios, all on loopback servers:
* a search provider that hangs (answers after 10 minutes), and one that trickles
  a byte every 0.5 s: env steps through ``gym.make("DeepResearch-Web-v0")``;
* 50 envs sharing one ``WebBackend``, all browsing at once, each one page that
  drips a byte every 0.2 s (never finishing) and one normal page: the step times,
  and how many normal pages were read, with the default worker count and with
  16 workers (the old pool size) to show what fair scheduling does under contention;
* a Redis web cache that accepts connections and never answers (a ``redis-server``
  stopped with SIGSTOP; issue #24): searches must still be answered by the provider
  within their deadline (skipped when ``redis-server`` is not installed).
Before issue #16: 46.5 s (hanging) and 61.6 s (trickling) per step, and browse
steps of up to 42.9 s in the shared-backend case, against a 20 s fetch deadline.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import gymnasium as gym  # noqa: E402
from web_servers import LoopbackServer, ProviderBehaviour, RedisServer, RedisUnavailable, drip_route, provider_routes, site_routes  # noqa: E402

import deepresearch  # noqa: E402,F401 - registers the env ids
from deepresearch.envs.web import FetchConfig, make_web_backend  # noqa: E402

KEY = "bench-key"
SEARCH = '<tool_call>{"name": "web_search", "arguments": {"query": ["%s"]}}</tool_call>'


def summary(times: list[float], deadline: float) -> dict[str, float]:
    return {"steps": len(times), "max_s": max(times), "mean_s": sum(times) / len(times),
            "max_over_deadline_s": max(times) - deadline, "all_within_deadline_plus_1s": max(times) <= deadline + 1.0}


def provider_steps(routes: dict, deadline: float, steps: int, tmp: str) -> dict[str, float]:
    with LoopbackServer(routes) as provider:
        env = gym.make("DeepResearch-Web-v0", provider="serper", provider_base_url=provider.url, max_turns=steps + 1,
                       cache_path=str(Path(tmp) / "c.sqlite"), search_deadline_s=deadline, rate_per_s=None)
        env.reset(options={"question": "q", "golden_answers": ["a"]})
        times = []
        for i in range(steps):
            start = time.monotonic()
            observation, *_ = env.step(SEARCH % f"query {i}")
            times.append(time.monotonic() - start)
            assert "search failed" in observation, observation
        env.close()
    return summary(times, deadline)


def shared_backend_steps(site_url: str, provider_url: str, deadline: float, envs: int, tmp: str, **overrides) -> dict:
    backend = make_web_backend(provider="serper", provider_base_url=provider_url, allowlist=("127.0.0.1",),
                               use_cache=False, rate_per_s=None, browse_deadline_s=deadline,
                               fetch=FetchConfig(read_timeout_s=deadline * 2), **overrides)
    episodes = [backend.episode() for _ in range(envs)]

    def step(index: int):
        urls = [f"{site_url}/slow/{index}", f"{site_url}/wiki/Marie_Curie?env={index}"]
        start = time.monotonic()
        pages = episodes[index].browse(urls, "Where was Marie Curie born?", None)
        return time.monotonic() - start, pages[1].error is None

    with ThreadPoolExecutor(envs) as pool:
        outcomes = list(pool.map(step, range(envs)))
    backend.close()
    return {**summary([t for t, _ in outcomes], deadline), "normal_pages_read": sum(ok for _, ok in outcomes),
            "workers": backend.config.max_workers}


def silent_cache_steps(provider_url: str, deadline: float, steps: int) -> dict:
    """Env steps whose Redis cache went silent after the first one; each must come back with results."""
    try:
        server = RedisServer().__enter__()
    except RedisUnavailable as error:
        return {"skipped": str(error)}
    try:
        env = gym.make("DeepResearch-Web-v0", provider="serper", provider_base_url=provider_url, max_turns=steps + 2,
                       cache_path=f"{server.url}#bench-silent", search_deadline_s=deadline, rate_per_s=None)
        env.reset(options={"question": "q", "golden_answers": ["a"]})
        env.step(SEARCH % "before")
        os.kill(server._process.pid, signal.SIGSTOP)
        times, answered = [], 0
        try:
            for i in range(steps):
                start = time.monotonic()
                observation, *_ = env.step(SEARCH % f"silent {i}")
                times.append(time.monotonic() - start)
                answered += "result 0" in observation
        finally:
            os.kill(server._process.pid, signal.SIGCONT)
        env.close()
    finally:
        server.__exit__()
    return {**summary(times, deadline), "answered_with_results": answered}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deadline", type=float, default=5.0, help="search/browse deadline in seconds (default 30 in use)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--envs", type=int, default=50)
    args = parser.parse_args()
    results: dict = {"machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg()}, "deadline_s": args.deadline}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SERPER_API_KEY"] = KEY
        hanging = provider_routes("serper", ProviderBehaviour(KEY, delay_s=600.0))
        results["hanging_provider"] = provider_steps(hanging, args.deadline, args.steps, tmp)
        trickling = {"/search": drip_route("application/json", interval_s=0.5, count=10_000)}
        results["trickling_provider"] = provider_steps(trickling, args.deadline, args.steps, tmp)
        routes = {**site_routes(), "/slow/*": drip_route("text/html", interval_s=0.2, count=10_000)}
        with LoopbackServer(routes) as site, LoopbackServer(provider_routes("serper", ProviderBehaviour(KEY))) as provider:
            results["shared_backend_default_workers"] = shared_backend_steps(site.url, provider.url, args.deadline, args.envs, tmp)
            results["shared_backend_16_workers"] = shared_backend_steps(
                site.url, provider.url, args.deadline, args.envs, tmp, max_workers=16)
            results["silent_redis_cache"] = silent_cache_steps(provider.url, args.deadline, args.steps)
    results["machine"]["load_avg_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
