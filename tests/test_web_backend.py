"""``WebBackend`` end to end: a fake provider and a site, both real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from web_servers import (
    LoopbackServer,
    ProviderBehaviour,
    fake_dns,
    reader_routes,
    serve_provider,
    serve_site_and_hostile_routes,
)

from deepresearch.envs.tools import ToolBackend
from deepresearch.envs.web import (
    FetchConfig,
    LLMReaderConfig,
    PageFetcher,
    ReadingConfig,
    RetryPolicy,
    UrlPolicy,
    WebBackend,
    make_web_backend,
)
from deepresearch.envs.web.storage.cache import page_key

KEY = "serper-secret-4d9e0b1f"
SITE_PATHS = ["/wiki/Marie_Curie", "/wiki/Mariana_Trench", "/tides.txt"]


site = pytest.fixture(serve_site_and_hostile_routes, scope="module", name="site")


@pytest.fixture
def provider(site):
    yield from serve_provider("serper", ProviderBehaviour(KEY, urls=[site.url + path for path in SITE_PATHS]))


@pytest.fixture(autouse=True)
def environment(monkeypatch) -> None:
    monkeypatch.setenv("SERPER_API_KEY", KEY)
    monkeypatch.delenv("DEEPRESEARCH_SEARCH_PROVIDER", raising=False)


def backend_for(provider_server: LoopbackServer, tmp_path: Path, **overrides) -> WebBackend:
    settings = dict(
        provider="serper",
        provider_base_url=provider_server.url,
        search_timeout_s=(1.0, 2.0),
        retry=RetryPolicy(max_attempts=2, base_delay_s=0.01),
        fetch=FetchConfig(connect_timeout_s=1.0, read_timeout_s=1.5),
        browse_deadline_s=3.0,
        reading=ReadingConfig(max_chunk_chars=400, char_budget=1200, max_chunks=3),
        cache_path=str(tmp_path / "web.sqlite"),
        allowlist=("127.0.0.1",),
    )
    return make_web_backend(**{**settings, **overrides})


def test_is_a_tool_backend(provider, tmp_path) -> None:
    backend = backend_for(provider, tmp_path)
    episode = backend.episode()
    assert isinstance(episode, ToolBackend) and episode.supports_browse


def test_batched_search_dedupes_caches_and_keeps_order(provider, site, tmp_path) -> None:
    backend = backend_for(provider, tmp_path)
    results = backend.search(["Marie Curie", "", "ocean trench", "marie  curie"], k=2)
    assert [len(r) for r in results] == [2, 0, 2, 2]
    assert [d.id for d in results[0]] == [site.url + p for p in SITE_PATHS[:2]]
    assert results[0][0].contents == '"Marie Curie - result 0"\nSnippet 0 about Marie Curie.'
    assert len(provider.requests) == 2  # "marie  curie" shares "Marie Curie"'s request: same cache key
    assert [d.id for d in results[3]] == [d.id for d in results[0]]
    again = backend.search(["MARIE CURIE", "ocean trench"], k=2)
    assert len(provider.requests) == 2 and [d.id for d in again[1]] == [d.id for d in results[2]]
    assert backend.cache.stats()["hits"] >= 2


@pytest.mark.parametrize(
    "failure, message",
    [
        (dict(fail_status=503), "search failed: serper answered HTTP 503 after 2 attempts"),
        (dict(delay_s=1.5), "search failed: serper timed out after 2 attempts"),
        (dict(body=b"<html>Bad gateway</html>"), "search failed: serper returned malformed JSON"),
        (dict(reset=True), "search failed: serper could not be reached after 2 attempts"),
        (dict(), "search failed: serper rejected the API key (HTTP 401)"),  # with a wrong key, below
    ],
)
def test_provider_failure_is_a_clear_uncached_result(provider, tmp_path, caplog, monkeypatch, failure, message) -> None:
    for name, value in failure.items():
        setattr(provider.behaviour, name, value)
    if not failure:
        monkeypatch.setenv("SERPER_API_KEY", "wrong-secret-key-31337")
    backend = backend_for(provider, tmp_path, search_timeout_s=(0.5, 0.5))
    with caplog.at_level(logging.WARNING):
        (results,) = backend.search(["anything"], k=3)
    assert [(doc.id, doc.contents) for doc in results] == [("", message)]  # not "No results found."
    assert len(backend.cache) == 0  # a failure is not cached as an empty result
    assert KEY not in message + caplog.text and "wrong-secret-key-31337" not in message + caplog.text
    provider.behaviour.heal()
    monkeypatch.setenv("SERPER_API_KEY", KEY)
    healed = backend_for(provider, tmp_path).search(["anything"], k=3)  # same cache file
    assert [len(docs) for docs in healed] == [3] and healed[0][0].id.startswith("http://127.0.0.1")


def test_browse_returns_relevant_passages_and_caches_pages(provider, site, tmp_path) -> None:
    backend = backend_for(provider, tmp_path)
    urls = [site.url + "/wiki/Marie_Curie", site.url + "/old/curie"]
    first = backend.browse(urls, "Which prize did Curie win in 1911?", "Curie 1911 Nobel Chemistry")
    assert [r.url for r in first] == urls
    assert all(r.error is None and "Nobel Prize in Chemistry" in r.text for r in first)
    assert all(len(r.text) <= 1200 for r in first)
    served = len(site.requests)
    backend.browse(urls[:1], "Where was she born?", None)
    assert len(site.requests) == served  # the extracted page came from the cache


def test_hostile_urls_become_error_results_in_order(provider, site, tmp_path) -> None:
    backend = backend_for(provider, tmp_path, use_cache=False)
    paths = ["/drip", "/huge", "/loop/a", "/image.png", "/paper.pdf", "/garbage", "/reset", "/429", "/500",
             "/to-metadata", "/wiki/Mariana_Trench"]
    urls = [site.url + p for p in paths] + ["javascript:alert(1)", "", "http://[::1]/"]
    started = time.monotonic()
    results = backend.browse(urls, "How deep is the Mariana Trench?", None)
    assert time.monotonic() - started < 10.0
    assert [r.url for r in results] == [u.strip() for u in urls]
    by_path = dict(zip(paths, results))
    assert by_path["/huge"].error is None and "All work and no play" in by_path["/huge"].text
    assert "10,935" in by_path["/wiki/Mariana_Trench"].text
    failed = [r for r in results if r.error]
    assert len(failed) == len(urls) - 2
    assert all(not r.text and site.url not in r.error for r in failed)  # the reason, not the URL again
    assert "timed out" in by_path["/drip"].error and "PDF" in by_path["/paper.pdf"].error
    assert by_path["/to-metadata"].error == (
        "redirected to 'http://169.254.169.254/latest/meta-data/', which is refused: "
        "cloud metadata endpoints are never browsed"
    )
    assert [r.error for r in results[-3:]] == [
        "refused: only http and https URLs can be browsed", "no URL was given",
        "refused: it points to a private or reserved address",
    ]


def test_default_policy_refuses_loopback_pages(provider, site, tmp_path) -> None:
    backend = backend_for(provider, tmp_path, allowlist=())
    (result,) = backend.browse([site.url + "/wiki/Marie_Curie"], "q", None)
    assert "private or reserved address" in result.error


def with_policy(backend: WebBackend, *allowlist: str) -> WebBackend:
    """The same provider, cache and settings under another URL policy; ``site.test`` resolves to 127.0.0.1."""
    policy = UrlPolicy(allowlist=allowlist, resolver=fake_dns({"site.test": ["127.0.0.1"]}))
    return WebBackend(backend.provider, PageFetcher(policy, backend.config.fetch), backend.cache, backend.config)


def test_a_page_cached_under_a_permissive_policy_is_refused_by_the_default_one(provider, site, tmp_path) -> None:
    url = site.url + "/wiki/Marie_Curie"
    (lax,) = backend_for(provider, tmp_path).browse([url], "Where was Curie born?", None)
    assert "Warsaw" in lax.text
    served = len(site.requests)
    (strict,) = backend_for(provider, tmp_path, allowlist=()).browse([url], "Where was Curie born?", None)  # same file
    assert strict.error == "refused: it points to a private or reserved address"
    assert strict.text == "" and len(site.requests) == served


def test_a_cached_page_is_refused_when_a_redirect_it_came_through_is(provider, site, tmp_path) -> None:
    base = backend_for(provider, tmp_path)
    url = f"http://site.test:{site.port}/old/curie"  # -> /moved/curie -> http://127.0.0.1:<port>/wiki/Marie_Curie
    (lax,) = with_policy(base, "site.test", "127.0.0.1").browse([url], "Where was Curie born?", None)
    assert "Warsaw" in lax.text
    served = len(site.requests)
    (strict,) = with_policy(base, "site.test").browse([url], "Where was Curie born?", None)
    target = site.url + "/wiki/Marie_Curie"
    assert strict.error == f"redirected to {target!r}, which is refused: it points to a private or reserved address"
    (again,) = with_policy(base, "site.test", "127.0.0.1").browse([url], "Where was Curie born?", None)
    assert "Warsaw" in again.text and len(site.requests) == served  # both answers came from the cache record


def test_a_cached_page_without_its_redirects_is_fetched_again(provider, site, tmp_path) -> None:
    backend = backend_for(provider, tmp_path)
    url = site.url + "/old/curie"
    backend.cache.put(page_key(url), "Text cached by an older version, which kept no redirects.")
    served = len(site.requests)
    (result,) = backend.browse([url], "Where was Curie born?", None)
    assert "Warsaw" in result.text and len(site.requests) == served + 3  # every hop fetched and checked
    assert backend.cache.get(page_key(url))["redirects"] == [site.url + "/moved/curie", site.url + "/wiki/Marie_Curie"]


def test_browse_only_seen_urls_until_reset(provider, site, tmp_path) -> None:
    backend = backend_for(provider, tmp_path, browse_only_seen_urls=True)
    url = site.url + "/tides.txt"
    assert "only URLs from earlier search results" in backend.browse([url], "tide?", None)[0].error
    backend.search(["tides"], k=3)
    assert "06:42" in backend.browse([url], "When is high tide?", None)[0].text
    backend.reset()
    assert backend.browse([url], "tide?", None)[0].error is not None


def test_api_key_never_reaches_the_cache_file(provider, site, tmp_path) -> None:
    backend = backend_for(provider, tmp_path)
    backend.search(["Marie Curie", "trench"], k=3)
    backend.browse([site.url + "/wiki/Marie_Curie"], "q", None)
    backend.cache.close()
    for file in tmp_path.glob("web.sqlite*"):
        assert KEY.encode() not in file.read_bytes()
    assert KEY not in repr(backend.provider)


def test_llm_reader_is_used_and_falls_back_to_bm25(provider, site, tmp_path) -> None:
    url = site.url + "/wiki/Mariana_Trench"
    question = "How deep is the Challenger Deep?"
    with LoopbackServer(reader_routes("Challenger Deep")) as llm:
        reader = LLMReaderConfig(base_url=llm.url + "/v1", model="m", api_key_env=None, window_chars=300)
        (result,) = backend_for(provider, tmp_path, reader=reader).browse([url], question, None)
        assert len(llm.requests) >= 1
    assert "10,935" in result.text and "Trieste" not in result.text
    with LoopbackServer(reader_routes("x", fail_status=500)) as broken:
        reader = LLMReaderConfig(
            base_url=broken.url + "/v1", model="m", api_key_env=None, retry=RetryPolicy(max_attempts=1)
        )
        (fallback,) = backend_for(provider, tmp_path, reader=reader).browse([url], question, None)
    assert fallback.error is None and "10,935" in fallback.text


def test_bad_configuration_raises_at_construction(provider, tmp_path) -> None:
    with pytest.raises(ValueError, match="max_results"):
        backend_for(provider, tmp_path, max_results=0)
    with pytest.raises(ValueError, match="no search provider chosen"):
        backend_for(provider, tmp_path, provider=None)
    with pytest.raises(ValueError, match="allowlist"):
        backend_for(provider, tmp_path, allowlist="127.0.0.1")
    with pytest.raises(ValueError, match="allow-list"):
        backend_for(provider, tmp_path, allowlist=("",))


def test_a_hit_with_a_non_string_url_is_never_cached_as_a_result(provider, tmp_path) -> None:
    backend = backend_for(provider, tmp_path)
    provider.behaviour.body = b'{"organic": [{"link": 123, "title": "numbers are not URLs"}]}'
    (results,) = backend.search(["bad urls"], k=3)
    assert results[0].contents == "search failed: serper returned 1 result without a usable http(s) URL"
    assert len(backend.cache) == 0
    provider.behaviour.heal()
    (healed,) = backend.search(["bad urls"], k=3)  # asks the provider again: nothing bad was cached
    assert healed[0].title == "bad urls - result 0" and len(provider.requests) == 2


def test_usable_hits_are_kept_and_odd_fields_become_bounded_text(provider, tmp_path) -> None:
    backend = backend_for(provider, tmp_path)
    provider.behaviour.body = json.dumps({"organic": [
        {"link": 123}, {"link": " https://a.example/x ", "title": {"nested": 1}, "snippet": 42},
        {"link": "https://b.example/" + "y" * 3000}, {"link": "https://c.example/", "title": "T" * 1000},
    ]}).encode()
    (results,) = backend.search(["mixed"], k=5)
    assert [(d.id, d.title, d.text) for d in results] == [("https://a.example/x", "", "42"), ("https://c.example/", "T" * 300, "")]
    assert backend.search(["mixed"], k=5) == [results]  # cached, and served from the cache unchanged


def test_an_invalid_query_is_refused_before_any_request(provider, tmp_path) -> None:
    backend = backend_for(provider, tmp_path)
    (lone, long) = backend.search(["Curie \ud800", "x" * 1001], k=3)
    assert lone[0].contents == "search failed: the query is not valid text (it contains an unpaired surrogate character)"
    assert long[0].contents == "search failed: the query is too long (1001 characters; the limit is 1000)"
    assert provider.requests == [] and backend.stats.as_dict()["invalid_queries"] == 2


def test_a_provider_outage_is_logged_once_not_per_query(provider, tmp_path, caplog) -> None:
    provider.behaviour.fail_status = 503
    backend = backend_for(provider, tmp_path, retry=RetryPolicy(max_attempts=1))
    with caplog.at_level(logging.WARNING):
        for i in range(10):
            backend.search([f"outage {i}"], k=3)
    records = [r for r in caplog.records if "serper search failed" in r.getMessage()]
    assert len(records) == 1 and "answered HTTP 503" in records[0].getMessage()
