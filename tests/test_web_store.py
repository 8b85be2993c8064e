"""The web store under the cache and snapshots, in SQLite and in a real Redis: same semantics for both."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from web_servers import redis_server_or_skip

from deepresearch.envs.web import open_store
from deepresearch.envs.web.storage.store import LOW_WATER, canonical_json, encode_value


@pytest.fixture(scope="module")
def redis_server():
    yield from redis_server_or_skip()


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request, tmp_path: Path):
    """``make_store(max_bytes)`` -> a fresh, empty store of the parametrised kind."""
    opened = []

    def make(max_bytes: int = 10**9):
        if request.param == "sqlite":
            store = open_store(str(tmp_path / f"store{len(opened)}.sqlite"), max_bytes, "cache")
        else:
            server = request.getfixturevalue("redis_server")
            store = open_store(f"{server.url}#{request.node.name}-{len(opened)}", max_bytes, "cache")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def blob(n: int, size: int = 3000) -> dict:
    """A value of ``size`` random-looking characters: compressed, it still takes about ``size`` bytes."""
    import base64
    import random

    return {"text": base64.b64encode(random.Random(n).randbytes(size)).decode()[:size]}


def test_round_trip_keeps_value_meta_and_creation_time(make_store) -> None:
    store = make_store()
    assert store.get("missing") is None
    store.put("k", {"documents": [{"url": "https://a.example/", "title": "Ä \ud800"}]}, {"kind": "search"})
    hit = store.get("k")
    assert hit.value == {"documents": [{"url": "https://a.example/", "title": "Ä \ud800"}]}  # lone surrogate kept
    assert hit.meta == {"kind": "search"} and abs(hit.created - time.time()) < 60
    store.put("old", 1, {}, created=1000.0)
    assert store.get("old").created == 1000.0


def test_identical_values_are_stored_once_and_freed_with_their_last_key(make_store) -> None:
    store = make_store()
    for key in ("a", "b", "c"):
        store.put(key, blob(1), {})
    store.put("d", blob(2), {})
    usage = store.usage()
    assert (usage["entries"], usage["values"]) == (4, 2)
    total = store.usage()["bytes"]
    value_bytes = len(encode_value(blob(1))[1])
    store.put("a", blob(3), {})  # replaced: the shared value stays for b and c
    assert store.usage()["values"] == 3 and store.get("b").value == blob(1)
    assert store.delete("b") and store.delete("c") and not store.delete("c")
    assert store.usage()["values"] == 2  # blob(1) went with its last key
    for key in ("a", "d"):
        store.delete(key)
    assert store.usage() | {"max_bytes": 0} == {"entries": 0, "values": 0, "bytes": 0, "max_bytes": 0}
    assert 2 * value_bytes < total < 3 * value_bytes  # two values were counted, not four


def test_bounded_by_bytes_evicting_least_recently_used(make_store) -> None:
    store = make_store(max_bytes=30_000)
    for n in range(10):
        store.put(f"k{n}", blob(n), {})
    entry = store.usage()["bytes"] // 10  # one value plus its key and metadata
    assert store.usage()["bytes"] + 4 * entry > 30_000 > store.usage()["bytes"]
    store.get("k0")  # too soon to refresh its LRU time (reads stay reads) ...
    for n in range(10, 14):
        store.put(f"k{n}", blob(n), {})
    usage = store.usage()
    assert usage["bytes"] <= 30_000 and usage["entries"] == usage["values"]
    survivors = [n for n in range(14) if store.get(f"k{n}") is not None]
    assert survivors == list(range(14 - len(survivors), 14))  # oldest first out
    assert usage["bytes"] >= int(30_000 * LOW_WATER) - entry  # evicted to the low-water mark, not to empty


def test_a_read_refreshes_an_entry_once_its_lru_time_is_old(make_store, monkeypatch) -> None:
    store = make_store(max_bytes=30_000)
    for n in range(10):
        store.put(f"k{n}", blob(n), {})
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)
    assert store.get("k0") is not None  # an hour later: this read moves k0 to the back of the LRU line
    for n in range(10, 14):
        store.put(f"k{n}", blob(n), {})
    assert store.get("k0") is not None and store.get("k1") is None


def test_entries_in_lru_order_values_by_hash_and_prune(make_store) -> None:
    store = make_store()
    store.put("first", {"n": 1}, {"kind": "page"}, created=time.time() - 10 * 86400)
    store.put("second", {"n": 2}, {"kind": "search"})
    entries = list(store.entries())
    assert [e.key for e in entries] == ["first", "second"]
    assert entries[1].hash == encode_value({"n": 2})[0] and entries[1].meta == {"kind": "search"}
    assert store.value(entries[0].hash) == {"n": 1} and store.value("0" * 64) is None
    assert store.prune(older_than_s=86400) == 1 and [e.key for e in store.entries()] == ["second"]
    assert store.prune(max_bytes=0) == 1 and store.usage()["entries"] == 0


def test_canonical_json_is_independent_of_key_order() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == canonical_json({"a": [1, "é"], "b": 1}) == b'{"a":[1,"\\u00e9"],"b":1}'


def test_bad_max_bytes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        open_store(str(tmp_path / "s.sqlite"), 100, "cache")


def test_a_store_written_by_a_newer_version_is_refused_by_name(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "future.sqlite"
    open_store(str(path), 10**6, "snapshot").close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE info SET value = '99' WHERE name = 'version'")
    with pytest.raises(ValueError, match=f"{path} was written by a newer deepresearch"):
        open_store(str(path), 10**6, "snapshot")
    assert path.exists()  # refused, not moved aside: it is not damaged
