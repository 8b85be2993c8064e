"""What probing the web env from outside found, each fixed and kept fixed.

* 6to4 and NAT64 addresses carry an IPv4 address a relay forwards to (``[2002:7f00:1::]`` is
  127.0.0.1, ``[2002:a9fe:a9fe::]`` the cloud metadata service); they and the deprecated
  site-local ``fec0::/10`` are refused, before any connection.
* Replay refuses a snapshot that is missing, empty or damaged (the error names it) instead
  of running an evaluation with no web data; a damaged file is left as it is.
* ``deepresearch web snapshot import`` is all or nothing: a truncated, non-gzip or malformed
  export is an error naming the file and line, and nothing is merged.
* A Redis cache that accepts connections and then goes silent costs one store timeout
  (``store_timeout_s``, 1 s) and one warning that names the store; the cache is then skipped
  and searches are answered by the provider within their deadline.
* A lone surrogate in an action is never echoed into an observation: it is always UTF-8 text.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import subprocess
import sys

import gymnasium as gym
import pytest
from web_servers import LoopbackServer, ProviderBehaviour, fake_dns, provider_routes, redis_server_or_skip

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.envs.web import FetchError, PageFetcher, Snapshot, UnsafeUrlError, UrlPolicy, make_web_backend
from deepresearch.envs.web.storage.cache import search_key
from deepresearch.envs.web.snapshots.snapshot_io import export_snapshot, import_snapshot

KEY = "serper-probe-key-77d1"


# ------------------------------------------------------------------------------ addresses


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://[2002:7f00:1::]/admin", "private or reserved"),  # 6to4 of 127.0.0.1
        ("http://[2002:c0a8:101::]/", "private or reserved"),  # 6to4 of 192.168.1.1
        ("http://[2002:a9fe:a9fe::]/latest/meta-data/", "cloud metadata"),  # 6to4 of 169.254.169.254
        ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", "cloud metadata"),  # NAT64 of 169.254.169.254
        ("http://[64:ff9b::7f00:1]/", "private or reserved"),  # NAT64 of 127.0.0.1
        ("http://[fec0::1]/", "private or reserved"),  # site-local
    ],
)
def test_addresses_that_embed_a_refused_ipv4_and_site_local_ones_are_refused(url, reason, connections):
    with pytest.raises(UnsafeUrlError, match=reason):
        UrlPolicy().check(url)
    with pytest.raises(FetchError, match="could not fetch"):
        PageFetcher().fetch(url)
    assert connections == []  # no request reached them


def test_a_name_resolving_to_a_6to4_loopback_is_refused_and_metadata_stays_refused_when_private_is_allowed(connections):
    policy = UrlPolicy(resolver=fake_dns({"innocent.example": ["93.184.216.34", "2002:7f00:1::"]}))
    with pytest.raises(UnsafeUrlError, match="private or reserved"):
        policy.check("https://innocent.example/")
    with pytest.raises(UnsafeUrlError, match="cloud metadata"):
        UrlPolicy(allow_private=True).check("http://[2002:a9fe:a9fe::]/")
    assert connections == []


def test_6to4_of_a_public_address_and_an_allow_listed_network_still_pass():
    assert UrlPolicy().check("http://[2002:808:808::]/").address == "2002:808:808::"  # 8.8.8.8
    assert UrlPolicy(allowlist=("127.0.0.0/8",)).check("http://[2002:7f00:1::]/").address == "2002:7f00:1::"


# --------------------------------------------------------------------------------- replay


def replay_env(path):
    return gym.make("DeepResearch-Web-v0", provider="serper", web_mode="replay", snapshot_path=str(path))


def test_replay_refuses_a_missing_snapshot(tmp_path):
    with pytest.raises(ValueError, match=f"web_mode='replay': no snapshot at {tmp_path / 'typo.sqlite'}"):
        replay_env(tmp_path / "typo.sqlite")
    assert not (tmp_path / "typo.sqlite").exists()  # nor is an empty one created there


def test_replay_refuses_an_empty_snapshot(tmp_path):
    Snapshot(tmp_path / "empty.sqlite").close()
    with pytest.raises(ValueError, match=f"the snapshot at {tmp_path / 'empty.sqlite'} holds no entries"):
        replay_env(tmp_path / "empty.sqlite")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_replay_refuses_a_damaged_snapshot_and_leaves_it_as_it_is(tmp_path, damage):
    path = tmp_path / "snap.sqlite"
    snapshot = Snapshot(path)
    for index in range(50):
        snapshot.record(search_key("serper", f"query {index}", 3), {"documents": [{"url": f"https://e.org/{index}"}]}, {"kind": "search"})
    snapshot.close()
    original = path.read_bytes()
    path.write_bytes(b"this is not a database" * 100 if damage == "garbage" else original[: len(original) // 3])
    damaged = path.read_bytes()
    with pytest.raises(ValueError, match=f"{path} is not a readable web store"):
        replay_env(path)
    assert path.read_bytes() == damaged and sorted(p.name for p in tmp_path.iterdir()) == ["snap.sqlite"]


def test_replay_refuses_an_empty_redis_snapshot():
    for server in redis_server_or_skip():
        with pytest.raises(ValueError, match=r"the snapshot at redis://127\.0\.0\.1:\d+/0 \[deepresearch:web:snapshot:never-recorded\] holds no entries"):
            replay_env(f"{server.url}#never-recorded")


# ------------------------------------------------------------------------- snapshot import


@pytest.fixture
def export(tmp_path):
    """A real export: three entries over two values."""
    source = Snapshot(tmp_path / "source.sqlite")
    for index in range(3):
        source.record(f"page\x1fhttps://e.org/{index}", {"text": f"page {index % 2}", "redirects": []}, {"kind": "page"})
    export_snapshot(source.store, tmp_path / "export.jsonl.gz")
    return tmp_path / "export.jsonl.gz"


def damaged_exports(export, directory):
    lines = gzip.decompress(export.read_bytes()).splitlines()
    entry = json.loads(lines[2])
    without_created = json.dumps({key: value for key, value in entry.items() if key != "created"}).encode()
    variants = {
        "truncated.jsonl.gz": (export.read_bytes()[:-20], r"truncated.jsonl.gz: cut short or damaged after line \d+"),
        "plain.jsonl.gz": (b"\n".join(lines), r"plain.jsonl.gz is not a gzip file"),
        "no-created.jsonl.gz": (gzip.compress(b"\n".join([*lines[:2], without_created, *lines[3:]])), r"no-created.jsonl.gz:3: not a snapshot record \(KeyError: 'created'\)"),
        "bad-json.jsonl.gz": (gzip.compress(b"\n".join([*lines[:4], b'{"key": ', *lines[4:]])), r"bad-json.jsonl.gz:5: not JSON"),
        "orphan.jsonl.gz": (gzip.compress(b"\n".join([lines[0], lines[2]])), r"orphan.jsonl.gz:2: not a snapshot record \(KeyError: 'an entry comes before any value'\)"),
    }
    for name, (data, message) in variants.items():
        (directory / name).write_bytes(data)
        yield directory / name, message


def test_import_of_a_damaged_export_names_file_and_line_and_merges_nothing(export, tmp_path):
    target = Snapshot(tmp_path / "target.sqlite")
    target.record("page\x1fhttps://mine.org/", {"text": "mine", "redirects": []}, {"kind": "page"})
    for path, message in damaged_exports(export, tmp_path):
        with pytest.raises(ValueError, match=message):
            import_snapshot(path, target.store)
        assert [entry.key for entry in target.store.entries()] == ["page\x1fhttps://mine.org/"], path.name
    assert import_snapshot(export, target.store)["added"] == 3  # the intact export still merges


def test_the_import_cli_prints_the_error_without_a_traceback_and_imports_no_file(export, tmp_path):
    bad, _ = next(damaged_exports(export, tmp_path))
    target = tmp_path / "target.sqlite"
    done = subprocess.run(
        [sys.executable, "-m", "deepresearch.cli", "web", "snapshot", "import", str(export), str(bad), "--into", str(target)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{bad}: cut short or damaged after line" in done.stderr and "nothing was imported" in done.stderr
    assert not target.exists()  # the good file given first was not merged either


# ------------------------------------------------------------------------- a silent Redis


@pytest.mark.slow
def test_a_redis_cache_that_goes_silent_costs_one_store_timeout_then_is_skipped(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SERPER_API_KEY", KEY)
    for server in redis_server_or_skip():
        with LoopbackServer(provider_routes("serper", ProviderBehaviour(KEY))) as provider:
            backend = make_web_backend(provider="serper", provider_base_url=provider.url, cache_path=f"{server.url}#silent",
                                       rate_per_s=None, search_deadline_s=3.0)
            assert "result 0" in backend.search(["before"], 3)[0][0].contents  # the cache works
            os.kill(server._process.pid, signal.SIGSTOP)  # accepts connections (the kernel does), never answers
            try:
                with caplog.at_level(logging.WARNING, logger="deepresearch.envs.web.backend"):
                    answers = [backend.search([f"during {step}"], 3)[0][0].contents for step in range(3)]
            finally:
                os.kill(server._process.pid, signal.SIGCONT)
            cache_stats = backend.cache.stats()
    assert all(answer.startswith(f'"during {step} - result 0"') for step, answer in enumerate(answers))  # answered, not timed out
    assert backend.stats.as_dict()["deadline_exceeded"] == 0
    # One timeout (the first read); its write and the next two searches' read and write skip the store.
    assert cache_stats["skipped"] == 5
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith("web cache read failed: CacheUnavailable: the web cache at redis://127.0.0.1:")
    assert "[deepresearch:web:cache:silent] failed (TimeoutError" in warnings[0] and "going on without it for 60 s" in warnings[0]


# ------------------------------------------------------------------------ lone surrogates


@pytest.mark.parametrize(
    "action",
    [
        '<tool_call>{"name": "web_search", "arguments": {"query": ["\\ud800 marie curie"]}}</tool_call>',
        '<tool_call>{"name": "web_browse", "arguments": {"url": ["http://example.org/\\udcff"]}}</tool_call>',
    ],
    ids=["search", "browse"],
)
def test_a_lone_surrogate_in_an_action_never_reaches_an_observation(tmp_path, action):
    from deepresearch.agents import default_tiny_model
    from transformers import AutoTokenizer

    path = tmp_path / "snap.sqlite"
    Snapshot(path).record(search_key("serper", "polonium", 3), {"documents": []}, {"kind": "search"})
    env = replay_env(path)  # the tool_call protocol repeats the query and the URL it was given
    env.reset(options={"question": "Who discovered polonium?", "golden_answers": ["Marie Curie"]})
    observation, *_, info = env.step(action)
    observation.encode("utf-8")
    for message in info["new_messages"]:
        message["content"].encode("utf-8")
    assert "?" in observation and info["transcript"].endswith(observation)
    AutoTokenizer.from_pretrained(default_tiny_model())(observation)
