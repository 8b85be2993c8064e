"""``RemoteRetriever`` over several real ``deepresearch serve-retriever`` processes on
127.0.0.1: batches spread over the replicas, one replica killed with SIGKILL mid-run
without losing a query, and a replica that comes back re-admitted after a health probe."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest
from test_retrieval_cases import assert_same_results, nq_questions, wiki_subset
from test_retrieval_server import _free_port, start_serving

from deepresearch.envs.retrieval import BM25Retriever, RemoteConfig, RemoteRetriever, RemoteRetrieverError

CONFIG = RemoteConfig(connect_timeout_s=2.0, read_timeout_s=30.0, retries=3, backoff_s=0.05, down_cooldown_s=0.3, split_min_queries=8)


@pytest.fixture(scope="module")
def bm25(shared_data: Path) -> BM25Retriever:
    return BM25Retriever.from_documents(wiki_subset(shared_data), show_progress=False)


@pytest.fixture(scope="module")
def index_dir(bm25: BM25Retriever, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bm25.save(tmp_path_factory.mktemp("replicas") / "bm25")


@pytest.fixture()
def two_servers(index_dir: Path) -> Iterator[list[tuple[int, "object"]]]:
    started = []
    try:
        for _ in range(2):
            port = _free_port()
            started.append((port, start_serving(index_dir, port)))
        yield started
    finally:
        for _, server in started:
            server.kill()
            server.wait(timeout=30)


def urls(servers: list) -> list[str]:
    return [f"http://127.0.0.1:{port}" for port, _ in servers]


@pytest.mark.slow
def test_a_replica_killed_mid_run_loses_no_query(two_servers: list, bm25: BM25Retriever, shared_data: Path) -> None:
    remote = RemoteRetriever(urls(two_servers), CONFIG)
    queries = nq_questions(shared_data, 120)
    expected = bm25.search(queries, 3)
    answered = threading.Semaphore(0)
    victim_port, victim = two_servers[0]

    def kill_after(count: int) -> None:
        for _ in range(count):
            answered.acquire()
        os.kill(victim.pid, signal.SIGKILL)

    def one(position: int) -> list:
        rows = remote.search([queries[position]], 3)
        answered.release()
        return rows[0]

    killer = threading.Thread(target=kill_after, args=(30,))
    killer.start()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(len(queries))))
    killer.join()
    assert victim.wait(timeout=10) == -signal.SIGKILL
    assert_same_results(results, expected)  # every query answered, by one replica or the other
    state = {replica["url"]: replica for replica in remote.replicas()}
    assert state[f"http://127.0.0.1:{victim_port}"]["answered"] > 0  # it served until it died
    assert not state[f"http://127.0.0.1:{victim_port}"]["up"] and state[f"http://127.0.0.1:{victim_port}"]["last_problem"]
    assert state[urls(two_servers)[1]]["up"] and state[urls(two_servers)[1]]["answered"] > 0
    assert_same_results(remote.search(queries[:40], 3), expected[:40])  # a batch after the failover


def test_a_batch_is_split_over_the_replicas_and_a_restarted_one_is_used_again(
    two_servers: list, index_dir: Path, bm25: BM25Retriever, shared_data: Path
) -> None:
    remote = RemoteRetriever(",".join(urls(two_servers)), CONFIG)  # the env's comma-separated form
    queries = nq_questions(shared_data, 40)
    expected = bm25.search(queries, 4)
    assert_same_results(remote.search(queries, 4), expected)
    assert [replica["answered"] for replica in remote.replicas()] == [1, 1]  # 40 queries: one half each

    port, server = two_servers[0]
    server.kill()
    server.wait(timeout=30)
    assert_same_results(remote.search(queries, 4), expected)  # the half sent to the dead one went to the other
    assert [replica["up"] for replica in remote.replicas()] == [False, True]

    two_servers[0] = (port, start_serving(index_dir, port))  # back on the same address
    for _ in range(100):  # its rest (0.3 s, doubled per failure) ends, a probe re-admits it
        assert_same_results(remote.search(queries[:1], 4), expected[:1])
        if remote.replicas()[0]["up"]:
            break
        time.sleep(0.1)
    assert remote.replicas()[0]["up"]
    answered_before = remote.replicas()[0]["answered"]
    assert_same_results(remote.search(queries, 4), expected)
    assert remote.replicas()[0]["answered"] > answered_before


def test_every_replica_down_is_an_error_after_bounded_attempts() -> None:
    dead = [f"http://127.0.0.1:{_free_port()}" for _ in range(2)]
    remote = RemoteRetriever(dead, RemoteConfig(connect_timeout_s=0.5, retries=2, backoff_s=0.01, down_cooldown_s=0.01))
    with pytest.raises(RemoteRetrieverError, match="2 replicas/retrieve failed after 3 attempts"):
        remote.search(["uranus"], 2)
    assert all(not replica["up"] for replica in remote.replicas())
    with pytest.raises(ValueError, match="http"):
        RemoteRetriever(["http://127.0.0.1:1", "127.0.0.1:2"])
