"""Many rollout processes sharing one real Redis cache: nothing lost, nothing double-counted."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from web_servers import LoopbackServer, ProviderBehaviour, provider_routes, redis_server_or_skip

from deepresearch.envs.web import WebCache
from deepresearch.envs.web.storage.cache import search_key
from deepresearch.envs.web.storage.store import ENTRY_OVERHEAD_BYTES

KEY = "serper-redis-key-1f2e"
WORKER = textwrap.dedent(
    """
    import json, sys
    from deepresearch.envs.web import make_web_backend
    provider_url, cache, worker, count, shared = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    backend = make_web_backend(provider="serper", provider_base_url=provider_url, cache_path=cache, rate_per_s=None)
    queries = [f"shared query {i}" for i in range(shared)] + [f"worker {worker} query {i}" for i in range(count - shared)]
    answered = 0
    for start in range(0, len(queries), 4):
        for docs in backend.search(queries[start:start + 4], 3):
            answered += bool(docs) and not docs[0].contents.startswith("search")
    print(json.dumps({"answered": answered, **backend.stats.as_dict()}))
    """
)


@pytest.fixture(scope="module")
def redis_server():
    yield from redis_server_or_skip()


def run_workers(provider_url: str, cache: str, workers: int, count: int, shared: int) -> list[dict]:
    processes = [
        subprocess.Popen([sys.executable, "-c", WORKER, provider_url, cache, str(w), str(count), str(shared)],
                         stdout=subprocess.PIPE, text=True, env={"SERPER_API_KEY": KEY, "PATH": ""})
        for w in range(workers)
    ]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert [process.returncode for process in processes] == [0] * workers
    return [json.loads(output) for output in outputs]


@pytest.mark.slow
def test_four_processes_times_two_hundred_searches_lose_nothing(redis_server):
    cache = f"{redis_server.url}#four-processes"
    with LoopbackServer(provider_routes("serper", ProviderBehaviour(KEY))) as provider:
        reports = run_workers(provider.url, cache, workers=4, count=200, shared=50)
        first_pass = len(provider.requests)
        again = run_workers(provider.url, cache, workers=4, count=200, shared=50)
        assert len(provider.requests) == first_pass  # every one of the 800 searches was found in Redis
    assert [r["answered"] for r in reports] == [200] * 4 and [r["answered"] for r in again] == [200] * 4
    assert all(r["search_cache_hits"] == 200 for r in again)
    distinct = 50 + 4 * 150
    assert distinct <= first_pass <= distinct + 3 * 50  # a shared query may race to the provider, no more
    store = WebCache(cache).store
    assert store.usage()["entries"] == distinct and store.usage()["values"] == distinct
    cache_reader = WebCache(cache)
    for worker in range(4):
        docs = cache_reader.get(search_key("serper", f"worker {worker} query 149", 3))["documents"]
        assert docs[0]["title"] == f"worker {worker} query 149 - result 0"
    import redis

    client = redis.Redis.from_url(redis_server.url)
    prefix = "deepresearch:web:cache:four-processes:"
    stored = sum(client.hstrlen(key, "data") for key in client.scan_iter(match=f"{prefix}b:*"))
    entries = [key for key in client.scan_iter(match=f"{prefix}e:*")]
    overhead = sum(len(key) - len(f"{prefix}e:") + len(client.hget(key, "meta")) + ENTRY_OVERHEAD_BYTES for key in entries)
    assert int(client.get(f"{prefix}bytes")) == stored + overhead  # the byte total survived 4 concurrent writers
    assert all(int(client.hget(key, "refs")) == 1 for key in client.scan_iter(match=f"{prefix}b:*"))
