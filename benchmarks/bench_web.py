"""Web backend speed: concurrent vs sequential browsing (text extracted in threads or in a process pool),
cache-hit and replay latency in SQLite and Redis, extraction throughput.

Prints JSON. Pages come from the loopback test site (``tests/web_servers.py``),
served by a separate process, with an artificial per-request latency standing in
for the network. Goals (issues #4, #16): 32 concurrent browses >= 20x faster than
sequential; cache-hit and replay latency <= 1 ms local, <= 5 ms Redis (medians).
Ratios are measured side by side in one run. Redis numbers need ``redis-server``
on this machine (a throwaway one is started on a free loopback port).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from web_servers import LoopbackServer, ProviderBehaviour, RedisServer, RedisUnavailable, provider_routes, site_routes  # noqa: E402

from deepresearch.envs.web import PageFetcher, UrlPolicy, WebBackend, WebCache, make_web_backend  # noqa: E402
from deepresearch.envs.web.pages.extract import extract_text  # noqa: E402
from deepresearch.envs.web.pages.extraction import Extractor  # noqa: E402

QUESTION = "Which prize did Marie Curie win in 1911?"
SITE_PATHS = ["/wiki/Marie_Curie", "/wiki/Mariana_Trench", "/tides.txt", "/cafe"]


def serve_site(port_pipe, stop_event, latency_s: float) -> None:
    """The site runs in its own process so its CPU does not compete with the client under test."""
    with LoopbackServer(site_routes(), latency_s=latency_s) as site:
        port_pipe.send(site.url)
        stop_event.wait()


def make_backend(search_url: str, tmp: str, **overrides) -> WebBackend:
    settings = dict(provider="searxng", provider_base_url=search_url, allowlist=("127.0.0.1",), rate_per_s=None,
                    use_cache=False, cache_path=str(Path(tmp) / "cache.sqlite"))
    return make_web_backend(**{**settings, **overrides})


def browse_speedup(backend: WebBackend, urls: list[str], rounds: int) -> dict[str, float]:
    """Best of ``rounds`` for each way (other users' load only ever slows a round down)."""
    backend.browse(urls[:4], QUESTION, None)  # warm-up: imports, first connections, the pool's processes
    sequential, concurrent = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for url in urls:
            backend.browse([url], QUESTION, None)
        sequential.append(time.perf_counter() - start)
        start = time.perf_counter()
        results = backend.browse(urls, QUESTION, None)
        concurrent.append(time.perf_counter() - start)
        assert all(r.error is None for r in results), [r.error for r in results if r.error][:3]
    return {"sequential_s": min(sequential), "concurrent_s": min(concurrent), "speedup": min(sequential) / min(concurrent)}


def fetch_speedup(fetcher: PageFetcher, urls: list[str]) -> dict[str, float]:
    """The network part alone (fetch, no extraction), to separate I/O overlap from CPU-bound parsing."""
    start = time.perf_counter()
    for url in urls:
        fetcher.fetch(url)
    sequential = time.perf_counter() - start
    with ThreadPoolExecutor(len(urls)) as pool:
        start = time.perf_counter()
        list(pool.map(fetcher.fetch, urls))
        concurrent = time.perf_counter() - start
    return {"sequential_s": sequential, "concurrent_s": concurrent, "speedup": sequential / concurrent}


def latencies_ms(call, keys: list[str]) -> dict[str, float]:
    samples = []
    for key in keys:
        start = time.perf_counter_ns()
        call(key)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return {"median_ms": statistics.median(samples), "p90_ms": statistics.quantiles(samples, n=10)[-1]}


def hit_latency(cache_at: str, snapshot_at: str, search_url: str, tmp: str, entries: int) -> dict[str, dict[str, float]]:
    """Cache ``get`` on a filled store; a backend search answered by that cache; a replayed search."""
    cache = WebCache(cache_at)
    value = {"documents": [{"url": f"https://e.org/{i}", "title": "t", "snippet": "x" * 300} for i in range(5)]}
    for i in range(entries):
        cache.put(f"search\x1fbench\x1f5\x1fquery {i}", value)
    keys = [f"search\x1fbench\x1f5\x1fquery {i}" for i in range(0, entries, max(1, entries // 1000))]
    results = {"cache_get": latencies_ms(cache.get, keys)}
    queries = [f"marie curie {i}" for i in range(200)]
    live = make_backend(search_url, tmp, use_cache=True, cache_path=cache_at)
    live.search(queries, 5)
    make_backend(search_url, tmp, web_mode="record", snapshot_path=snapshot_at).search(queries, 5)
    results["backend_search_cache_hit"] = latencies_ms(lambda q: live.search([q], 5), queries)
    replayer = make_backend(search_url, tmp, web_mode="replay", snapshot_path=snapshot_at)
    results["backend_search_replay_hit"] = latencies_ms(lambda q: replayer.search([q], 5), queries)
    results["entries"] = len(cache)
    return results


def extraction_throughput(fetcher: PageFetcher, urls: list[str]) -> dict[str, float]:
    pages = [fetcher.fetch(url) for url in urls]
    start = time.perf_counter()
    rounds = 5
    for _ in range(rounds):
        for page in pages:
            extract_text(page)
    elapsed = time.perf_counter() - start
    return {"pages_per_s": rounds * len(pages) / elapsed, "mean_page_bytes": statistics.mean(len(p.body) for p in pages)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the site waits before each answer")
    parser.add_argument("--processes", type=int, nargs="*", default=[2, 4], help="extraction pool sizes to compare")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--entries", type=int, default=10_000, help="rows in the store for the hit latencies")
    args = parser.parse_args()
    receive, send = multiprocessing.Pipe(duplex=False)
    stop = multiprocessing.Event()
    server = multiprocessing.Process(target=serve_site, args=(send, stop, args.latency), daemon=True)
    server.start()
    site_url = receive.recv()
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "latency_per_request_s": args.latency,
        "pages": args.pages,
    }
    with tempfile.TemporaryDirectory() as tmp:
        urls = [f"{site_url}{SITE_PATHS[i % len(SITE_PATHS)]}?page={i}" for i in range(args.pages)]
        behaviour = ProviderBehaviour(api_key="", urls=urls[:5])
        with LoopbackServer(provider_routes("searxng", behaviour)) as search:
            threads = make_backend(search.url, tmp)
            results["browse_threads"] = browse_speedup(threads, urls, args.rounds)
            for processes in args.processes:
                Extractor(processes).warm_up()
                pooled = make_backend(search.url, tmp, extract_processes=processes)
                results[f"browse_process_pool_{processes}"] = browse_speedup(pooled, urls, args.rounds)
            fetcher = PageFetcher(UrlPolicy(allowlist=("127.0.0.1",)))
            results["fetch_only"] = fetch_speedup(fetcher, urls)
            results["sqlite"] = hit_latency(str(Path(tmp) / "cache.sqlite"), str(Path(tmp) / "snapshot.sqlite"),
                                            search.url, tmp, args.entries)
            try:
                with RedisServer() as redis:
                    results["redis"] = hit_latency(f"{redis.url}#bench", f"{redis.url}#bench", search.url, tmp, args.entries)
            except RedisUnavailable as error:
                results["redis"] = {"skipped": str(error)}
            results["extraction"] = extraction_throughput(fetcher, urls[: len(SITE_PATHS)])
    results["machine"]["load_avg_after"] = os.getloadavg()
    stop.set()
    server.join(timeout=10)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
