"""Key hygiene: keys are checked once at construction and a planted key appears nowhere we write."""

from __future__ import annotations

import gzip
import json
import logging

import pytest
from web_servers import (
    LoopbackServer,
    ProviderBehaviour,
    provider_routes,
    reader_routes,
    redis_server_or_skip,
    site_routes,
)

from deepresearch.envs.web import LLMReaderConfig, RetryPolicy, SerperProvider, Snapshot, WebStore, make_web_backend
from deepresearch.envs.web.net.keys import read_api_key
from deepresearch.envs.web.snapshots.snapshot_io import export_snapshot

PLANTED = "PLANTED-KEY-3b9f1c77d2"


@pytest.fixture(scope="module")
def redis_server():
    yield from redis_server_or_skip()


def test_surrounding_whitespace_is_stripped_and_the_request_succeeds(monkeypatch):
    monkeypatch.setenv("SERPER_API_KEY", f"  {PLANTED}\n")
    assert read_api_key("SERPER_API_KEY") == PLANTED
    with LoopbackServer(provider_routes("serper", ProviderBehaviour(PLANTED))) as server:
        backend = make_web_backend(provider="serper", provider_base_url=server.url, use_cache=False, rate_per_s=None)
        (results,) = backend.search(["Marie Curie"], 3)
    assert results[0].title == "Marie Curie - result 0"  # the provider saw the exact key, not "...\n"


@pytest.mark.parametrize("bad", [f"{PLANTED[:6]} {PLANTED[6:]}", f"{PLANTED}\u00e9", f"{PLANTED}\x7f", "\t \n"])
def test_a_key_that_cannot_be_a_header_is_refused_without_showing_it(monkeypatch, bad):
    monkeypatch.setenv("SERPER_API_KEY", bad)
    with pytest.raises(ValueError) as caught:
        make_web_backend(provider="serper", use_cache=False)
    message = str(caught.value)
    assert "SERPER_API_KEY" in message and PLANTED[:6] not in message and PLANTED[6:] not in message
    with pytest.raises(ValueError, match="provider's settings") as direct:
        SerperProvider(base_url="http://127.0.0.1:1", api_key=bad if bad.strip() else "a b")
    assert PLANTED[6:] not in str(direct.value)


def everything_in(store: WebStore) -> str:
    """Keys, metadata and decoded values of a store, as one text to search."""
    return "\n".join(json.dumps([e.key, e.meta, store.value(e.hash)]) for e in store.entries())


def test_a_planted_key_is_never_echoed_in_messages_logs_caches_snapshots_or_exports(
    monkeypatch, caplog, tmp_path, redis_server
):
    monkeypatch.setenv("SERPER_API_KEY", PLANTED + "\n")
    monkeypatch.setenv("READER_KEY", PLANTED)
    behaviour = ProviderBehaviour(PLANTED)
    seen: list[str] = []
    with LoopbackServer(site_routes()) as site, LoopbackServer(provider_routes("serper", behaviour)) as provider, \
            LoopbackServer(reader_routes("Warsaw")) as reader, caplog.at_level(logging.DEBUG):
        behaviour.urls = [site.url + "/wiki/Marie_Curie"]
        for store, cache in (("sqlite", str(tmp_path / "c.sqlite")), ("redis", f"{redis_server.url}#keys")):
            snapshot = str(tmp_path / f"{store}.snap") if store == "sqlite" else f"{redis_server.url}#keys"
            backend = make_web_backend(
                provider="serper", provider_base_url=provider.url, cache_path=cache, allowlist=("127.0.0.1",),
                web_mode="record", snapshot_path=snapshot, retry=RetryPolicy(max_attempts=2, base_delay_s=0.01),
                search_timeout_s=(0.5, 0.5), rate_per_s=None,
                reader=LLMReaderConfig(base_url=reader.url + "/v1", model="m", api_key_env="READER_KEY"),
            )
            for failure in (dict(fail_status=500), dict(fail_status=401), dict(body=b"{oops"), dict(delay_s=1.0),
                            dict(reset=True), dict()):
                behaviour.heal()
                for name, value in failure.items():
                    setattr(behaviour, name, value)
                seen += [d.contents for docs in backend.search([f"{store} {failure}", "\ud800 bad"], 3) for d in docs]
            behaviour.heal()
            seen += [p.text + str(p.error) for p in backend.browse([site.url + "/wiki/Marie_Curie"], "born?", None)]
            seen += [repr(backend.provider), repr(backend.config), json.dumps(backend.stats.as_dict())]
            export = tmp_path / f"{store}.jsonl.gz"
            export_snapshot(backend.snapshot.store, export)
            seen += [everything_in(backend.cache.store), everything_in(backend.snapshot.store),
                     gzip.decompress(export.read_bytes()).decode()]
        assert any(request.headers.get("Authorization") == f"Bearer {PLANTED}" for request in reader.requests)
    seen.append(caplog.text)
    assert "Warsaw" in "\n".join(seen) and "rejected the API key" in "\n".join(seen)  # the flows above really ran
    assert all(PLANTED not in text for text in seen)
    assert PLANTED.encode() not in redis_server.dump()
    for file in tmp_path.glob("*"):
        assert PLANTED.encode() not in file.read_bytes()
    assert Snapshot(str(tmp_path / "sqlite.snap")).store.usage()["entries"] >= 6  # searches, failures, page, notes
