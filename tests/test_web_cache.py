"""The web cache: threads, a second process, TTL, byte bound, counters, crash safety, corrupt files."""

from __future__ import annotations

import base64
import logging
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deepresearch.envs.web import WebCache
from deepresearch.envs.web.storage.cache import normalise_query, page_key, search_key

WRITER = textwrap.dedent(
    """
    import sys
    from deepresearch.envs.web.storage.cache import WebCache
    cache = WebCache(sys.argv[1], max_bytes=10**9)
    prefix, count = sys.argv[2], int(sys.argv[3])
    i = 0
    while count < 0 or i < count:
        cache.put(f"{prefix}{i}", {"n": i, "blob": "x" * 20000})
        i += 1
        if i == 50:
            print("started", flush=True)
    """
)


def run_writer(path: Path, prefix: str, count: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), prefix, str(count)], stdout=subprocess.PIPE, text=True
    )


def test_round_trip_and_counters(tmp_path: Path) -> None:
    cache = WebCache(tmp_path / "c.sqlite")
    assert cache.get("missing") is None
    cache.put("k", {"docs": [{"id": "https://a.example/", "title": "Ä"}]})
    assert cache.get("k") == {"docs": [{"id": "https://a.example/", "title": "Ä"}]}
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["writes"], stats["entries"]) == (1, 1, 1, 1)
    assert 0 < stats["bytes"] < 200


def test_keys_normalise_queries_but_not_urls() -> None:
    assert search_key("serper", "  Marie   CURIE ", 5) == search_key("serper", "marie curie", 5)
    assert search_key("serper", "q", 5) != search_key("brave", "q", 5) != search_key("serper", "q", 3)
    assert page_key("https://a.example/X") != page_key("https://a.example/x")
    assert normalise_query("A\tB\nC") == "a b c"


def test_ttl_expiry(tmp_path: Path) -> None:
    cache = WebCache(tmp_path / "c.sqlite", ttl_s=0.2)
    cache.put("k", 1)
    assert cache.get("k") == 1
    time.sleep(0.3)
    assert cache.get("k") is None
    assert cache.stats()["expired"] == 1 and len(cache) == 0


def test_bounded_by_bytes_not_rows(tmp_path: Path) -> None:
    cache = WebCache(tmp_path / "c.sqlite", max_bytes=64 * 1024)
    for i in range(200):  # 200 pages of 2 kB that do not compress: 400 kB in all
        cache.put(f"k{i}", {"text": base64.b64encode(random.Random(i).randbytes(1500)).decode()})
    assert cache.stats()["bytes"] <= 64 * 1024 and 0 < len(cache) < 200
    assert cache.get("k199") is not None and cache.get("k0") is None


def test_threads_and_a_second_process_write_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = WebCache(path, max_bytes=10**9)
    other = run_writer(path, "proc-", 200)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: cache.put(f"thread-{i}", {"n": i}), range(400)))
        values = list(pool.map(lambda i: cache.get(f"thread-{i}"), range(400)))
    assert other.wait(timeout=60) == 0
    assert values == [{"n": i} for i in range(400)]
    assert all(cache.get(f"proc-{i}")["n"] == i for i in range(200))
    assert len(cache) == 600


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_killed_writer_leaves_a_readable_database(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    writer = run_writer(path, "k", -1)
    assert writer.stdout.readline().strip() == "started"
    time.sleep(0.3)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = raw.execute("SELECT SUM(length(data)) FROM blobs").fetchone()[0]
        counted = raw.execute("SELECT bytes FROM totals").fetchone()[0]
        assert counted >= stored > 0  # the byte total was committed with the rows it counts
    cache = WebCache(path, max_bytes=10**9)
    count = len(cache)
    assert count >= 50
    assert all(cache.get(f"k{i}")["n"] == i for i in range(count))  # every committed row is whole
    cache.put("after-crash", 1)
    assert cache.get("after-crash") == 1


def test_bad_settings_raise() -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        WebCache("/tmp/never.sqlite", ttl_s=0)
    with pytest.raises(ValueError, match="max_bytes"):
        WebCache("/tmp/never.sqlite", max_bytes=0)


def write_valid_cache(path: Path) -> None:
    cache = WebCache(path)
    for i in range(400):
        cache.put(f"page\x1fhttps://e.org/{i}", {"text": f"page {i} " * 200, "redirects": []})
    cache.close()


def garbage(path: Path) -> None:
    path.write_bytes(b"\x00garbage, not a database\xff" * 4000)


def truncated(path: Path) -> None:
    write_valid_cache(path)
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def old_format(path: Path) -> None:
    with sqlite3.connect(path) as raw:  # the one-table cache of earlier versions
        raw.execute("CREATE TABLE entries (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)")
        raw.execute("INSERT INTO entries VALUES ('k', '1', 0)")


@pytest.mark.parametrize("damage", [garbage, truncated, old_format])
def test_an_unreadable_file_is_moved_aside_with_a_warning_naming_it(tmp_path: Path, caplog, damage) -> None:
    path = tmp_path / "web.sqlite"
    damage(path)
    with caplog.at_level(logging.WARNING):
        cache = WebCache(path)
        for i in range(400):  # reading every page of a truncated file reaches the missing part
            cache.get(f"page\x1fhttps://e.org/{i}")
        cache.put("after", {"ok": True})
    assert cache.get("after") == {"ok": True}
    (aside,) = tmp_path.glob("web.sqlite.corrupt-*[0-9]")
    assert str(path) in caplog.text and str(aside) in caplog.text
    assert len(caplog.records) == 1  # one warning, not one per read
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_second_process_finding_the_file_replaced_reconnects_without_moving_it(tmp_path: Path) -> None:
    path = tmp_path / "web.sqlite"
    first, second = WebCache(path), WebCache(path)
    first.put("k", 1)
    assert second.get("k") == 1
    first.close()
    second.close()
    path.rename(tmp_path / "elsewhere.sqlite")  # what a recovering process does
    garbage(tmp_path / "elsewhere.sqlite")
    WebCache(path).put("fresh", 2)  # ... and the empty store that took its place
    assert second.get("fresh") == 2 and not list(tmp_path.glob("web.sqlite.corrupt-*"))
