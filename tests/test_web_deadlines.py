"""Deadlines that hold: hanging and trickling providers, retries and backoff, 50 envs sharing one backend.

Bounds here are correctness bounds (a step must come back), kept generous for
a loaded machine; the benchmark measures how close steps get to their deadline.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import gymnasium as gym
import pytest
from web_servers import LoopbackServer, ProviderBehaviour, drip_route, provider_routes, site_routes

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.envs.web import Deadline, DeadlineExceeded, FetchConfig, RetryPolicy, make_web_backend
from deepresearch.envs.web.backend.scheduler import FairScheduler

KEY = "serper-deadline-key-9a0b"
SLACK_S = 2.0  # what a loaded shared machine may add to a deadline before a step is wrong


@pytest.fixture(scope="module")
def site():
    routes = {**site_routes(), "/slow/*": drip_route("text/html", interval_s=0.2, count=100)}
    with LoopbackServer(routes) as running:
        yield running


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("SERPER_API_KEY", KEY)


def backend_for(url: str, tmp_path, **overrides):
    settings = dict(provider="serper", provider_base_url=url, cache_path=str(tmp_path / "c.sqlite"),
                    allowlist=("127.0.0.1",), rate_per_s=None)
    return make_web_backend(**{**settings, **overrides})


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


@pytest.mark.parametrize("behaviour", ["hang", "trickle"])
def test_a_hanging_or_trickling_provider_costs_one_deadline_per_step(tmp_path, behaviour):
    routes = (provider_routes("serper", ProviderBehaviour(KEY, delay_s=30.0)) if behaviour == "hang"
              else {"/search": drip_route("application/json", interval_s=0.3)})
    with LoopbackServer(routes) as provider:
        env = gym.make("DeepResearch-Web-v0", provider="serper", provider_base_url=provider.url,
                       cache_path=str(tmp_path / "c.sqlite"), search_deadline_s=1.5, rate_per_s=None,
                       retry=RetryPolicy(max_attempts=3, base_delay_s=0.1))  # three 20 s attempts without the deadline
        env.reset(options={"question": "q", "golden_answers": ["a"]})
        (observation, *_, info), elapsed = timed(lambda: env.step(
            '<tool_call>{"name": "web_search", "arguments": {"query": ["anything"]}}</tool_call>'))
    assert elapsed < 1.5 + SLACK_S
    assert "search failed: serper timed out" in observation
    assert info["web"]["provider_failures"] + info["web"]["deadline_exceeded"] >= 1


def test_backoff_that_would_outlast_the_deadline_is_not_waited_for(tmp_path):
    with LoopbackServer(provider_routes("serper", ProviderBehaviour(KEY, fail_status=503, retry_after="20"))) as provider:
        backend = backend_for(provider.url, tmp_path, search_deadline_s=3.0, retry=RetryPolicy(max_attempts=3))
        (results,), elapsed = timed(lambda: backend.search(["q"], 3))
    assert results[0].contents == "search failed: serper answered HTTP 503"
    assert len(provider.requests) == 1 and elapsed < 3.0  # Retry-After: 20 > what is left: give up now


def test_retries_take_their_turn_at_the_rate_limiter(tmp_path):
    with LoopbackServer(provider_routes("serper", ProviderBehaviour(KEY, fail_status=500))) as provider:
        backend = backend_for(provider.url, tmp_path, rate_per_s=2.0, burst=1, search_deadline_s=2.5,
                              retry=RetryPolicy(max_attempts=3, base_delay_s=0.01))
        backend.search([f"query {i}" for i in range(8)], 3)
        time.sleep(0.3)  # anything still running after the step is past its deadline and must stop
        sent = len(provider.requests)
    # 1 token at once, then 2 a second for 2.5 s: at most 6 requests, retries included (16 went out before).
    assert 3 <= sent <= 6


def test_fifty_envs_sharing_a_backend_each_get_their_pages_by_the_deadline(site, tmp_path):
    with LoopbackServer(provider_routes("serper", ProviderBehaviour(KEY))) as provider:
        backend = backend_for(provider.url, tmp_path, use_cache=False, browse_deadline_s=2.0,
                              fetch=FetchConfig(read_timeout_s=5.0))
        episodes = [backend.episode() for _ in range(50)]
        question = "Where was Marie Curie born?"

        def step(index):
            urls = [f"{site.url}/slow/{index}", f"{site.url}/wiki/Marie_Curie?env={index}"]
            return timed(lambda: episodes[index].browse(urls, question, None))

        with ThreadPoolExecutor(50) as pool:
            outcomes = list(pool.map(step, range(50)))
    assert max(elapsed for _, elapsed in outcomes) < 2.0 + SLACK_S
    assert all(slow.error.startswith("timed out") for (slow, _), _ in outcomes)
    assert all("Warsaw" in fast.text for (_, fast), _ in outcomes)  # the slow pages starved no one


def test_one_envs_slow_pages_do_not_starve_anothers(site, tmp_path):
    with LoopbackServer(provider_routes("serper", ProviderBehaviour(KEY))) as provider:
        backend = backend_for(provider.url, tmp_path, use_cache=False, browse_deadline_s=3.0, max_workers=2)
        greedy, modest = backend.episode(), backend.episode()
        started = threading.Event()

        def greedy_step():
            started.set()
            return greedy.browse([f"{site.url}/slow/{i}" for i in range(8)], "q", None)

        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(greedy_step)
            started.wait()
            time.sleep(0.2)  # the greedy env's eight pages are queued first
            (page,), elapsed = timed(lambda: modest.browse([site.url + "/tides.txt"], "When is high tide?", None))
            slow.result()
    assert "06:42" in page.text  # served in turn; first come, first served would time it out behind eight slow pages
    assert elapsed < 3.0


def test_queued_work_past_its_deadline_is_dropped_unrun():
    scheduler = FairScheduler(max_workers=1)
    ran = []
    blocker = scheduler.submit("a", lambda: time.sleep(0.5), Deadline(5.0))
    late = scheduler.submit("b", lambda: ran.append("late"), Deadline(0.1))
    blocker.result()
    with pytest.raises(DeadlineExceeded, match="waited for a worker"):
        late.result(timeout=5)
    assert ran == []
    scheduler.shutdown()
    with pytest.raises(RuntimeError, match="closed"):
        scheduler.submit("a", lambda: None, Deadline(1.0))


def test_the_scheduler_serves_clients_in_turn():
    scheduler = FairScheduler(max_workers=1)
    order: list[str] = []
    gate = threading.Event()
    scheduler.submit("first", gate.wait, Deadline(5.0))  # holds the only worker while the queues fill
    futures = [scheduler.submit("a", lambda i=i: order.append(f"a{i}"), Deadline(5.0)) for i in range(3)]
    futures += [scheduler.submit("b", lambda i=i: order.append(f"b{i}"), Deadline(5.0)) for i in range(2)]
    gate.set()
    for future in futures:
        future.result(timeout=5)
    assert order == ["a0", "b0", "a1", "b1", "a2"]
    scheduler.shutdown()


@pytest.mark.slow
def test_extraction_in_a_process_pool_gives_the_same_text(site, tmp_path):
    with LoopbackServer(provider_routes("serper", ProviderBehaviour(KEY))) as provider:
        urls = [site.url + path for path in ("/wiki/Marie_Curie", "/cafe", "/tides.txt")]
        inline = backend_for(provider.url, tmp_path, use_cache=False).browse(urls, "Where?", None)
        pooled = backend_for(provider.url, tmp_path, use_cache=False, extract_processes=2, browse_deadline_s=60.0)
        assert pooled.browse(urls, "Where?", None) == inline and all(r.error is None for r in inline)
