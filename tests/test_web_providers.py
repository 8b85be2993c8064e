"""Search providers against loopback servers that speak each provider's documented JSON."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from web_servers import LoopbackServer, ProviderBehaviour, drip_route, provider_routes

from deepresearch.envs.web import PROVIDERS, ProviderError, RetryPolicy, TokenBucket, make_provider, parse_retry_after
from deepresearch.envs.web.net.retry import RetriesExhausted, call_with_retries

KEY = "test-key-5f1c9a77e2"
KEY_ENV = {"serper": "SERPER_API_KEY", "brave": "BRAVE_API_KEY", "tavily": "TAVILY_API_KEY"}
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05, retry_after_cap_s=1.5)


@pytest.fixture(autouse=True)
def api_keys(monkeypatch) -> None:
    for name in KEY_ENV.values():
        monkeypatch.setenv(name, KEY)
    monkeypatch.delenv("DEEPRESEARCH_SEARCH_PROVIDER", raising=False)
    monkeypatch.delenv("SEARXNG_URL", raising=False)


def provider_at(name: str, server: LoopbackServer, **kwargs):
    return make_provider(name, base_url=server.url, timeout_s=(1.0, 2.0), retry=FAST_RETRY, **kwargs)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_provider_request_and_response_shape(name: str) -> None:
    with LoopbackServer(provider_routes(name, ProviderBehaviour(KEY))) as server:
        documents = provider_at(name, server).search_one("Marie  Curie Nobel", 3)
    assert [d.id for d in documents] == [f"https://example.org/marie-curie-nobel/{i}" for i in range(3)]
    first = documents[0]
    assert first.title == "Marie Curie Nobel - result 0"
    assert first.text == "Snippet 0 about Marie Curie Nobel."
    assert first.contents == f'"{first.title}"\n{first.text}'
    (request,) = server.requests
    expected = {
        "serper": ("POST", "/search", "X-API-KEY", KEY),
        "brave": ("GET", "/res/v1/web/search", "X-Subscription-Token", KEY),
        "tavily": ("POST", "/search", "Authorization", f"Bearer {KEY}"),
        "searxng": ("GET", "/search", None, None),
    }[name]
    assert (request.method, request.path) == expected[:2]
    if expected[2]:
        assert request.headers[expected[2]] == expected[3]
    if name == "serper":
        assert request.json() == {"q": "Marie  Curie Nobel", "num": 3}
    if name == "tavily":
        assert request.json() == {"query": "Marie  Curie Nobel", "max_results": 3}
    if name == "brave":
        assert request.query == {"q": ["Marie  Curie Nobel"], "count": ["3"]}
    if name == "searxng":
        assert request.query == {"q": ["Marie  Curie Nobel"], "format": ["json"]}


def test_wrong_key_is_a_redacted_provider_error(monkeypatch, caplog) -> None:
    monkeypatch.setenv("SERPER_API_KEY", "wrong-secret-key-000")
    with LoopbackServer(provider_routes("serper", ProviderBehaviour(KEY))) as server:
        provider = provider_at("serper", server)
        with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as caught:
            provider.search_one("q", 2)
    assert str(caught.value) == "search failed: serper rejected the API key (HTTP 401)"
    assert len(server.requests) == 1  # 401 is final, not retried
    assert "wrong-secret-key-000" not in str(caught.value) + caplog.text + repr(provider)


@pytest.mark.parametrize(
    "behaviour, reason",
    [
        (ProviderBehaviour(KEY, fail_status=500), "answered HTTP 500 after 3 attempts"),
        (ProviderBehaviour(KEY, fail_status=429, retry_after="1"), "answered HTTP 429 after 3 attempts"),
        (ProviderBehaviour(KEY, reset=True), "could not be reached after 3 attempts"),
    ],
)
def test_storms_are_retried_a_bounded_number_of_times(behaviour, reason: str) -> None:
    with LoopbackServer(provider_routes("brave", behaviour)) as server:
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            provider_at("brave", server).search_one("q", 2)
        elapsed = time.monotonic() - started
    assert len(server.requests) == FAST_RETRY.max_attempts
    assert str(caught.value) == f"search failed: brave {reason}"
    assert elapsed < 8.0
    if behaviour.retry_after:
        assert elapsed >= 2 * 1.0 * 0.9  # Retry-After: 1 honoured between the three attempts


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"<html>Service Unavailable</html>", "returned malformed JSON"),
        (b'{"organic": [', "returned malformed JSON"),
        (b"[1, 2, 3]", "returned an unexpected response (a JSON list, not an object)"),
        (b'{"message": "Not enough credits"}', "returned an unexpected response (no 'organic' result list)"),
        (b'{"organic": [{"link": 123, "title": "t"}, {"link": "javascript:alert(1)"}]}',
         "returned 2 results without a usable http(s) URL"),
    ],
)
def test_garbled_answers_are_final_provider_errors_that_say_what_was_wrong(body: bytes, reason: str) -> None:
    with LoopbackServer(provider_routes("serper", ProviderBehaviour(KEY, body=body))) as server:
        with pytest.raises(ProviderError) as caught:
            provider_at("serper", server).search_one("q", 2)
    assert str(caught.value) == f"search failed: serper {reason}"
    assert len(server.requests) == 1  # a garbled answer is not retried


def test_configuration_errors_are_raised_at_construction(monkeypatch) -> None:
    with pytest.raises(ValueError, match="no search provider chosen"):
        make_provider()
    with pytest.raises(ValueError, match="unknown search provider 'bing'"):
        make_provider("bing")
    monkeypatch.delenv("TAVILY_API_KEY")
    with pytest.raises(ValueError, match="TAVILY_API_KEY"):
        make_provider("tavily")
    with pytest.raises(ValueError, match="SEARXNG_URL"):
        make_provider("searxng")
    monkeypatch.setenv("DEEPRESEARCH_SEARCH_PROVIDER", "searxng")
    monkeypatch.setenv("SEARXNG_URL", "http://127.0.0.1:8888/")
    provider = make_provider()
    assert (provider.name, provider.base_url) == ("searxng", "http://127.0.0.1:8888")


def test_parse_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_grows_caps_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=4.0, retry_after_cap_s=10.0, jitter=0.0)
    assert [policy.backoff(n) for n in range(4)] == [1.0, 2.0, 4.0, 4.0]
    assert policy.backoff(0, retry_after=3.0) == 3.0
    assert policy.backoff(0, retry_after=3600.0) == 10.0
    jittered = RetryPolicy(base_delay_s=1.0, jitter=0.25)
    assert all(0.75 <= jittered.backoff(0) <= 1.25 for _ in range(50))


def test_call_with_retries_stops_on_final_errors() -> None:
    sleeps: list[float] = []
    calls = []

    def flaky():
        calls.append(1)
        raise (TimeoutError("transient") if len(calls) < 3 else KeyError("final"))

    policy = RetryPolicy(max_attempts=5, base_delay_s=0.1, jitter=0.0)
    with pytest.raises(KeyError):
        call_with_retries(flaky, policy, lambda e: (isinstance(e, TimeoutError), None), sleep=sleeps.append)
    assert len(calls) == 3 and sleeps == [0.1, 0.2]


def test_call_with_retries_reports_exhaustion_with_the_last_error() -> None:
    sleeps: list[float] = []
    errors = [TimeoutError(f"attempt {n}") for n in range(3)]

    def failing():
        raise errors[len(sleeps)]  # a new error each attempt, so "the last one" is checkable

    policy = RetryPolicy(max_attempts=3, base_delay_s=0.1, jitter=0.0)
    with pytest.raises(RetriesExhausted) as caught:
        call_with_retries(failing, policy, lambda e: (True, None), sleep=sleeps.append)
    assert caught.value.last is errors[2] and caught.value.attempts == 3
    assert str(caught.value) == "attempt 2 (after 3 attempts)" and sleeps == [0.1, 0.2]


def test_token_bucket_paces_threads() -> None:
    bucket = TokenBucket(rate_per_s=50.0, burst=5)
    started = time.monotonic()
    threads = [threading.Thread(target=lambda: [bucket.acquire() for _ in range(5)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 20 tokens with a burst of 5 at 50/s need at least (20 - 5) / 50 = 0.3 s.
    assert time.monotonic() - started >= 0.3 * 0.9
    assert TokenBucket(rate_per_s=1.0, burst=1).acquire() is True
    exhausted = TokenBucket(rate_per_s=0.5, burst=1)
    exhausted.acquire()
    assert exhausted.acquire(timeout_s=0.05) is False


def test_providers_of_one_name_share_a_rate_limit() -> None:
    first = make_provider("serper", base_url="http://127.0.0.1:1", rate_per_s=3.0, burst=2)
    second = make_provider("serper", base_url="http://127.0.0.1:2", rate_per_s=3.0, burst=2)
    other = make_provider("brave", base_url="http://127.0.0.1:1", rate_per_s=3.0, burst=2)
    assert first.limiter is second.limiter and first.limiter is not other.limiter
    assert make_provider("serper", base_url="http://127.0.0.1:1").limiter is None


def test_a_provider_that_trickles_bytes_is_cut_off_by_the_deadline() -> None:
    with LoopbackServer({"/search": drip_route("application/json", interval_s=0.5)}) as server:
        provider = make_provider(
            "searxng", base_url=server.url, timeout_s=(0.5, 1.0), retry=RetryPolicy(max_attempts=2, base_delay_s=0.01)
        )
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            provider.search_one("q", 3)
    assert str(caught.value) == "search failed: searxng timed out after 2 attempts"
    assert time.monotonic() - started < 6.0  # two attempts of at most 1.5 s each
    assert len(server.requests) == 2
