"""Record / replay snapshots against loopback servers: replay never touches the network and is deterministic."""

from __future__ import annotations

import gzip
import json
import socket
from pathlib import Path

import gymnasium as gym
import pytest
from web_servers import (
    ProviderBehaviour,
    redis_server_or_skip,
    serve_provider,
    serve_site_and_hostile_routes,
)

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.agents.eval.harness import TextPolicyRunner, run_evaluation
from deepresearch.agents.eval.text_policies import TurnState
from deepresearch.cli import main as cli_main
from deepresearch.envs import QAItem
from deepresearch.envs.web import RetryPolicy, Snapshot, make_web_backend
from deepresearch.envs.web.snapshots.snapshot_io import export_snapshot, import_snapshot

KEY = "serper-snapshot-key-77e1"
PAGES = ["/wiki/Marie_Curie", "/wiki/Marie_Curie?from=search", "/wiki/Mariana_Trench", "/paper.pdf"]


site = pytest.fixture(serve_site_and_hostile_routes, scope="module", name="site")


@pytest.fixture
def provider(site):
    yield from serve_provider("serper", ProviderBehaviour(KEY, urls=[site.url + p for p in PAGES]))


@pytest.fixture(scope="module")
def redis_server():
    yield from redis_server_or_skip()


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("SERPER_API_KEY", KEY)
    monkeypatch.delenv("DEEPRESEARCH_SEARCH_PROVIDER", raising=False)


def settings(provider, tmp_path: Path, **overrides) -> dict:
    base = dict(
        provider="serper",
        provider_base_url=provider.url,
        cache_path=str(tmp_path / "cache.sqlite"),
        allowlist=("127.0.0.1",),
        retry=RetryPolicy(max_attempts=1),
        browse_deadline_s=5.0,
        search_deadline_s=5.0,
    )
    return {**base, **overrides}


def observe(backend, site) -> tuple:
    """What a model would read: search results and page texts/errors, as plain values to compare exactly."""
    searches = backend.search(["Marie Curie", "ocean trench", "Marie Curie"], 3)
    pages = backend.browse([site.url + p for p in PAGES], "Where was Marie Curie born?", "Curie birthplace")
    return [[(d.id, d.contents, d.score) for d in docs] for docs in searches], [(p.url, p.text, p.error) for p in pages]


def test_replay_gives_exactly_what_was_recorded_without_touching_the_network(provider, site, tmp_path, monkeypatch):
    path = str(tmp_path / "snap.sqlite")
    recorder = make_web_backend(**settings(provider, tmp_path, web_mode="record", snapshot_path=path))
    recorded = observe(recorder, site)
    assert recorded[1][3][2] == "PDF documents are not supported, only HTML and plain-text pages"  # a failure, recorded too
    served = (len(provider.requests), len(site.requests))
    monkeypatch.delenv("SERPER_API_KEY")  # replay needs no key ...
    replayer = make_web_backend(provider="serper", web_mode="replay", snapshot_path=path, allowlist=("127.0.0.1",))
    assert replayer.provider is None and replayer.cache is None
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("replay connected"))  # ... nor a network
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("replay resolved a name"))
    assert observe(replayer, site) == recorded
    assert (len(provider.requests), len(site.requests)) == served
    stats = replayer.stats.as_dict()
    assert (stats["search_replay_hits"], stats["page_replay_hits"], stats["replay_misses"]) == (2, 4, 0)
    assert stats["provider_calls"] == stats["page_fetches"] == 0 and stats["cost_usd"] == 0.0


def test_recording_includes_cache_hits_and_stores_identical_pages_once(provider, site, tmp_path):
    live = make_web_backend(**settings(provider, tmp_path))
    live.search(["Marie Curie"], 3)  # into the cache, not the snapshot
    path = tmp_path / "snap.sqlite"
    recorder = make_web_backend(**settings(provider, tmp_path, web_mode="record", snapshot_path=str(path)))
    before = len(provider.requests)
    recorder.search(["Marie Curie"], 3)
    assert len(provider.requests) == before and recorder.stats.as_dict()["search_cache_hits"] == 1
    recorder.browse([site.url + "/wiki/Marie_Curie", site.url + "/wiki/Marie_Curie?ref=1"], "q", None)  # same page
    usage = Snapshot(path).store.usage()
    assert (usage["entries"], usage["values"]) == (3, 2)  # one search, two page keys sharing one text


def test_a_replay_miss_is_a_clear_observation_or_a_live_fallback(provider, site, tmp_path):
    path = str(tmp_path / "snap.sqlite")
    make_web_backend(**settings(provider, tmp_path, web_mode="record", snapshot_path=path)).search(["Marie Curie"], 3)
    replayer = make_web_backend(provider="serper", web_mode="replay", snapshot_path=path)
    ((missing,),), (page,) = replayer.search(["never recorded"], 3), replayer.browse([site.url + "/tides.txt"], "q", None)
    assert missing.contents == "search not available: 'never recorded' is not in this snapshot (replay mode)"
    assert page.error == "not in this snapshot (replay mode)" and not page.text
    assert replayer.stats.as_dict()["replay_misses"] == 2
    fallback = make_web_backend(**settings(provider, tmp_path, web_mode="replay", snapshot_path=path, replay_fallback_live=True))
    (found,) = fallback.search(["never recorded"], 3)
    assert found[0].id == site.url + PAGES[0] and fallback.stats.as_dict()["provider_calls"] == 1


def test_replay_needs_a_snapshot_and_a_known_mode(provider, tmp_path):
    with pytest.raises(ValueError, match="needs snapshot_path"):
        make_web_backend(**settings(provider, tmp_path, web_mode="replay"))
    with pytest.raises(ValueError, match="web_mode must be one of live, record, replay"):
        make_web_backend(**settings(provider, tmp_path, web_mode="offline"))


def test_export_import_merge_into_redis_and_replay_from_there(provider, site, tmp_path, redis_server):
    path = str(tmp_path / "snap.sqlite")
    recorded = observe(make_web_backend(**settings(provider, tmp_path, web_mode="record", snapshot_path=path)), site)
    exported = tmp_path / "snap.jsonl.gz"
    counts = export_snapshot(Snapshot(path).store, exported)
    assert counts == {"entries": 6, "values": 5}
    again = tmp_path / "again.jsonl.gz"
    export_snapshot(Snapshot(path).store, again)
    assert exported.read_bytes() == again.read_bytes()  # identical contents, identical file
    shared = f"{redis_server.url}#shared-{tmp_path.name}"
    assert import_snapshot(exported, Snapshot(shared).store) == dict(added=6, replaced=0, unchanged=0, kept=0, damaged=0)
    assert import_snapshot(exported, Snapshot(shared).store)["unchanged"] == 6
    replayer = make_web_backend(provider="serper", web_mode="replay", snapshot_path=shared)
    assert observe(replayer, site) == recorded


def test_merging_keeps_existing_entries_unless_told_and_skips_damaged_values(tmp_path):
    first, second = Snapshot(tmp_path / "a.sqlite"), Snapshot(tmp_path / "b.sqlite")
    first.record("page\x1fhttps://e.org/1", {"text": "old", "redirects": []}, {"kind": "page"})
    second.record("page\x1fhttps://e.org/1", {"text": "new", "redirects": []}, {"kind": "page"})
    second.record("page\x1fhttps://e.org/2", {"text": "two", "redirects": []}, {"kind": "page"})
    export_snapshot(second.store, tmp_path / "b.jsonl.gz")
    assert import_snapshot(tmp_path / "b.jsonl.gz", first.store)["kept"] == 1
    assert first.lookup("page\x1fhttps://e.org/1")["text"] == "old"
    assert import_snapshot(tmp_path / "b.jsonl.gz", first.store, replace=True)["replaced"] == 1
    assert first.lookup("page\x1fhttps://e.org/1")["text"] == "new"
    lines = gzip.decompress((tmp_path / "b.jsonl.gz").read_bytes()).splitlines()
    tampered = [line.replace(b'"two"', b'"TWO"') for line in lines]
    (tmp_path / "t.jsonl.gz").write_bytes(gzip.compress(b"\n".join(tampered) + b"\n"))
    fresh = Snapshot(tmp_path / "c.sqlite")
    assert import_snapshot(tmp_path / "t.jsonl.gz", fresh.store) == dict(added=1, replaced=0, unchanged=0, kept=0, damaged=1)
    newer = [json.dumps({"format": "deepresearch-web-snapshot", "version": 99}).encode(), *lines[1:]]
    (tmp_path / "n.jsonl.gz").write_bytes(gzip.compress(b"\n".join(newer)))
    with pytest.raises(ValueError, match="version 99"):
        import_snapshot(tmp_path / "n.jsonl.gz", fresh.store)


def test_a_failure_never_replaces_a_recorded_success(tmp_path):
    snapshot = Snapshot(tmp_path / "s.sqlite")
    snapshot.record("k", {"text": "ok", "redirects": []}, {"kind": "page"})
    snapshot.record("k", {"failure": "timed out"}, {"kind": "page"})
    assert snapshot.lookup("k") == {"text": "ok", "redirects": []}
    snapshot.record("j", {"failure": "timed out"}, {"kind": "page"})
    snapshot.record("j", {"text": "later", "redirects": []}, {"kind": "page"})
    assert snapshot.lookup("j")["text"] == "later"


def test_cli_stats_export_import_prune(provider, site, tmp_path, capsys):
    path = str(tmp_path / "snap.sqlite")
    observe(make_web_backend(**settings(provider, tmp_path, web_mode="record", snapshot_path=path)), site)
    assert cli_main(["web", "snapshot", "stats", path]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["by_kind"] == {"page": 4, "search": 2} and stats["by_provider"] == {"serper": 2}
    assert stats["failures"] == 1 and stats["entries"] == 6 and stats["values"] == 5
    out = str(tmp_path / "out.jsonl.gz")
    assert cli_main(["web", "snapshot", "export", path, out]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 6
    merged = str(tmp_path / "merged.sqlite")
    assert cli_main(["web", "snapshot", "import", out, "--into", merged]) == 0
    assert json.loads(capsys.readouterr().out)["snapshot"]["entries"] == 6
    assert cli_main(["web", "snapshot", "prune", merged, "--max-bytes", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["snapshot"]["entries"] == 0
    with pytest.raises(SystemExit, match="no snapshot at"):
        cli_main(["web", "snapshot", "stats", str(tmp_path / "missing.sqlite")])


class ScriptedPolicy:
    """Per question id, a fixed list of turns (a deterministic stand-in for a model)."""

    def __init__(self, turns: dict[str, list[str]]) -> None:
        self.turns = turns

    def act(self, state: TurnState) -> str | None:
        script = self.turns[state.question_id]
        return script[state.turn] if state.turn < len(script) else None


def call(name: str, key: str, value: str) -> str:
    return '<tool_call>{"name": "%s", "arguments": {"%s": ["%s"]}}</tool_call>' % (name, key, value)


def evaluate(tmp_path: Path, name: str, make_env, items, policy) -> bytes:
    results = tmp_path / f"{name}.jsonl"
    run_evaluation([("web", items)], TextPolicyRunner(make_env, policy, workers=2), results, chunk_size=4, progress=False)
    return results.read_bytes()


def test_evaluation_reruns_in_replay_mode_are_bit_for_bit_identical(provider, site, tmp_path, monkeypatch):
    items = [QAItem(f"q{i}", question, (answer,)) for i, (question, answer) in enumerate(
        [("Where was Marie Curie born?", "Warsaw"), ("How deep is the Challenger Deep?", "10,935 metres"),
         ("Who reached the bottom in 1960?", "Piccard"), ("When is high tide?", "06:42")])]
    turns = {
        item.id: [call("web_search", "query", item.question), call("web_browse", "url", site.url + PAGES[i % 3]),
                  f"<answer>{item.golden_answers[0]}</answer>"]
        for i, item in enumerate(items)
    }
    path = str(tmp_path / "eval.sqlite")

    def env_factory(**web):
        return lambda: gym.make("DeepResearch-Web-v0", max_turns=4, **web)

    record = evaluate(tmp_path, "record", env_factory(**settings(provider, tmp_path, web_mode="record", snapshot_path=path)),
                      items, ScriptedPolicy(turns))
    served = (len(provider.requests), len(site.requests))
    monkeypatch.delenv("SERPER_API_KEY")
    replay = env_factory(provider="serper", web_mode="replay", snapshot_path=path)
    first = evaluate(tmp_path, "replay1", replay, items, ScriptedPolicy(turns))
    second = evaluate(tmp_path, "replay2", replay, items, ScriptedPolicy(turns))
    assert first == second  # the whole results file, byte for byte
    assert (len(provider.requests), len(site.requests)) == served
    recorded, replayed = ([json.loads(line) for line in data.splitlines()] for data in (record, first))
    assert [r["transcript"] for r in replayed] == [r["transcript"] for r in recorded]  # what the model read, too
    assert "Warsaw" in replayed[0]["transcript"] and all(r["reward_components"]["web_cost_usd"] == 0 for r in replayed)
    assert sum(r["reward_components"]["web_cost_usd"] for r in recorded) == pytest.approx(4 * 0.001)


def test_a_damaged_snapshot_entry_is_a_miss_not_a_crash(tmp_path):
    from deepresearch.envs.web.storage.cache import page_key, search_key

    path = tmp_path / "s.sqlite"
    snapshot = Snapshot(path)
    snapshot.record(search_key("serper", "damaged", 3), {"documents": [{"url": 5}]}, {"kind": "search"})
    snapshot.record(page_key("https://e.org/p"), {"text": 7}, {"kind": "page"})
    replayer = make_web_backend(provider="serper", web_mode="replay", snapshot_path=str(path))
    ((search,),), (page,) = replayer.search(["damaged"], 3), replayer.browse(["https://e.org/p"], "q", None)
    assert "is not in this snapshot" in search.contents and page.error == "not in this snapshot (replay mode)"
    assert replayer.stats.as_dict()["replay_misses"] == 2
