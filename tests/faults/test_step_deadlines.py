"""Through every web fault, each env step ends within its deadline + 1 s, and no request reaches a refused address.

The scenarios are the web faults of this suite, one env each on loopback servers: a provider
that hangs, one that answers 503 with retries to spend, one that trickles a byte at a time, a
Redis cache that goes silent (``SIGSTOP``), and a browse step over a page that never ends, a
normal page and the addresses the probes found (6to4, NAT64, site-local, mapped, metadata).
Every socket connect is recorded: only the loopback servers may be reached.

A step's time is its wall time less the time this process's threads waited for a CPU
(``/proc/self/task/*/schedstat``). A deadline bounds waiting on the outside world (sleeping
in a socket read, a backoff, a queue), which still counts in full; what a loaded shared
machine adds by not scheduling us does not, so the test neither fails on a busy machine nor
hides a step that blocks past its deadline.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import gymnasium as gym
import pytest
from web_servers import LoopbackServer, ProviderBehaviour, RedisServer, RedisUnavailable, drip_route, provider_routes, site_routes

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.envs.web import RetryPolicy

KEY = "serper-step-deadline-key-3e5a"
DEADLINE_S = 5.0  # far above a healthy loopback call; every outage below would run far past it
SLACK_S = 1.0  # the bound: deadline + 1 s
LOOPBACK = "127.0.0.1"
SEARCH = '<tool_call>{"name": "web_search", "arguments": {"query": ["%s"]}}</tool_call>'
BROWSE = '<tool_call>{"name": "web_browse", "arguments": {"url": [%s]}}</tool_call>'
REFUSED_URLS = [
    "http://[2002:c0a8:101::]/",  # 6to4 of 192.168.1.1
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 of the metadata address
    "http://[fec0::1]/",  # site-local
    "http://[::ffff:10.0.0.1]/",  # IPv4-mapped 10.0.0.1
    "http://169.254.169.254/latest/meta-data/",
]


def cpu_waits() -> dict[str, int]:
    """Nanoseconds each live thread of this process has spent runnable but not running."""
    waits = {}
    for stat in Path("/proc/self/task").glob("*/schedstat"):
        try:
            waits[stat.parent.name] = int(stat.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the thread ended meanwhile
    return waits


@pytest.fixture(scope="module", autouse=True)
def schedstat() -> None:
    if not Path("/proc/self/schedstat").is_file():
        pytest.skip("the kernel does not report CPU waits (/proc/self/schedstat): step times would depend on load")


def unstarved_seconds(call: Callable[[], object]) -> tuple[object, float]:
    """``call()``'s result and its wall time less what its threads waited for a CPU meanwhile
    (threads started during the call count from 0; a thread that ended is left out, which only
    makes the bound stricter)."""
    before, started = cpu_waits(), time.monotonic()
    result = call()
    elapsed, after = time.monotonic() - started, cpu_waits()
    waited_ns = sum(ns - before.get(thread, 0) for thread, ns in after.items())
    return result, elapsed - waited_ns / 1e9


@pytest.fixture(autouse=True)
def api_key(monkeypatch) -> None:
    monkeypatch.setenv("SERPER_API_KEY", KEY)


def web_env(provider_url: str, tmp_path: Path, **overrides):
    settings = dict(
        provider="serper", provider_base_url=provider_url, cache_path=str(tmp_path / "cache.sqlite"), rate_per_s=None,
        search_deadline_s=DEADLINE_S, browse_deadline_s=DEADLINE_S, max_turns=10, allowlist=(LOOPBACK,),
    )
    env = gym.make("DeepResearch-Web-v0", **{**settings, **overrides})
    env.reset(options={"question": "Where was Marie Curie born?", "golden_answers": ["Warsaw"]})
    return env


def timed_step(env, action: str) -> tuple[str, float]:
    (observation, *_), seconds = unstarved_seconds(lambda: env.step(action))
    return observation, seconds


@contextmanager
def silent_redis() -> Iterator[tuple[str, Callable[[], None]]]:
    """A real ``redis-server`` and a switch that stops it (the kernel still accepts connections)."""
    try:
        server = RedisServer().__enter__()
    except RedisUnavailable as error:
        pytest.skip(str(error))
    stopped = []

    def go_silent() -> None:
        os.kill(server._process.pid, signal.SIGSTOP)
        stopped.append(True)

    try:
        yield server.url, go_silent
    finally:
        if stopped:
            os.kill(server._process.pid, signal.SIGCONT)
        server.__exit__()


SEARCH_OUTAGES = {
    "provider_hangs": (lambda: provider_routes("serper", ProviderBehaviour(KEY, delay_s=30.0)), {}),
    "provider_503_with_retries": (
        lambda: provider_routes("serper", ProviderBehaviour(KEY, fail_status=503)),
        {"retry": RetryPolicy(max_attempts=6, base_delay_s=0.5)},  # 0.5 + 1 + 2 + ... s of backoff without the deadline
    ),
    "provider_trickles": (lambda: {"/search": drip_route("application/json", interval_s=0.3, count=1000)}, {}),
}


@pytest.mark.slow
@pytest.mark.parametrize("outage", sorted(SEARCH_OUTAGES))
def test_a_search_outage_costs_at_most_the_deadline_per_step(tmp_path, connections, outage):
    routes, overrides = SEARCH_OUTAGES[outage]
    with LoopbackServer(routes()) as provider:
        env = web_env(provider.url, tmp_path, **overrides)
        steps = [timed_step(env, SEARCH % f"query {index}") for index in range(2)]
        env.close()
    assert all("search failed: serper" in observation for observation, _ in steps)
    assert max(seconds for _, seconds in steps) <= DEADLINE_S + SLACK_S, steps
    assert connections and {address[0] for address in connections} == {LOOPBACK}


@pytest.mark.slow
def test_a_silent_redis_cache_keeps_every_search_step_within_its_deadline(tmp_path, connections):
    with silent_redis() as (redis_url, go_silent), LoopbackServer(provider_routes("serper", ProviderBehaviour(KEY))) as provider:
        env = web_env(provider.url, tmp_path, cache_path=f"{redis_url}#step-deadlines")
        timed_step(env, SEARCH % "before")
        go_silent()
        steps = [timed_step(env, SEARCH % f"silent {index}") for index in range(3)]
        env.close()
    assert all("result 0" in observation for observation, _ in steps)  # answered by the provider
    assert max(seconds for _, seconds in steps) <= DEADLINE_S + SLACK_S, steps
    assert {address[0] for address in connections} == {LOOPBACK}


@pytest.mark.slow
def test_a_browse_step_over_a_never_ending_page_and_refused_addresses_keeps_its_deadline(tmp_path, connections):
    routes = {**site_routes(), "/slow/*": drip_route("text/html", interval_s=0.2, count=1000)}
    with LoopbackServer(routes) as site, LoopbackServer(provider_routes("serper", ProviderBehaviour(KEY))) as provider:
        env = web_env(provider.url, tmp_path, max_queries_per_call=len(REFUSED_URLS) + 2)
        urls = [f"{site.url}/slow/page", f"{site.url}/wiki/Marie_Curie", *REFUSED_URLS]
        observation, seconds = timed_step(env, BROWSE % ", ".join(f'"{url}"' for url in urls))
        env.close()
    assert connections and {address[0] for address in connections} == {LOOPBACK}  # nothing reached the refused addresses
    assert seconds <= DEADLINE_S + SLACK_S, seconds
    for url in REFUSED_URLS:
        assert f"Could not read {url}: refused: " in observation
    assert "Warsaw" in observation  # the normal page was read
