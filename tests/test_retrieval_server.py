"""The retrieval server on 127.0.0.1 (a real uvicorn, a free port): Search-R1's
``/retrieve`` JSON, limits answered with 4xx, concurrent requests coalesced; the
``RemoteRetriever`` client with retries; the Wiki env answered through it; and the whole
path from ``deepresearch index build`` to ``deepresearch serve-retriever`` (slow, MiniLM)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import http.server
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import requests
from test_index_build import corpus_head, minilm_path
from test_retrieval_cases import KNOWN_ANSWERS, assert_same_results, nq_questions, ranked_ids, wiki_subset

from deepresearch.envs import make_wiki_env
from deepresearch.envs.datasets import QAItem
from deepresearch.envs.retrieval import BM25Retriever, RemoteConfig, RemoteRetriever, RemoteRetrieverError
from deepresearch.envs.retrieval.open_index import load_retriever
from deepresearch.envs.retrieval.server import BackgroundServer, ServerConfig, create_app


@pytest.fixture(scope="module")
def wiki_bm25(shared_data: Path) -> BM25Retriever:
    return BM25Retriever.from_documents(wiki_subset(shared_data), show_progress=False)


@pytest.fixture(scope="module")
def server(wiki_bm25: BM25Retriever) -> Iterator[BackgroundServer]:
    config = ServerConfig(default_k=2, max_k=20, max_queries=8, max_query_chars=200)
    with BackgroundServer(create_app(wiki_bm25, config, {"kind": "bm25", "passages": len(wiki_bm25)})) as running:
        yield running


def test_retrieve_speaks_search_r1_json(server: BackgroundServer, wiki_bm25: BM25Retriever) -> None:
    question = KNOWN_ANSWERS[1][0]
    scored = requests.post(f"{server.url}/retrieve", json={"queries": [question, ""], "topk": 3, "return_scores": True}, timeout=10).json()
    expected = wiki_bm25.search([question], 3)[0]
    assert [entry["document"]["id"] for entry in scored["result"][0]] == [document.id for document in expected]
    assert scored["result"][0][0] == {"document": {"id": "3", "contents": expected[0].contents}, "score": pytest.approx(expected[0].score)}
    assert scored["result"][1] == []
    bare = requests.post(f"{server.url}/retrieve", json={"queries": [question]}, timeout=10).json()
    assert bare["result"][0] == [{"id": document.id, "contents": document.contents} for document in expected[:2]]
    assert requests.get(f"{server.url}/health", timeout=10).json()["passages"] == 400


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"queries": ["a"] * 9}, 413, "limit is 8"),
        ({"queries": ["a"], "topk": 0}, 422, "topk must be between 1 and 20"),
        ({"queries": ["a"], "topk": 21}, 422, "topk must be"),
        ({"queries": ["x" * 201]}, 413, "201 characters"),
        ({"queries": "not a list"}, 422, "list"),
        ({"topk": 3}, 422, "queries"),
    ],
)
def test_limits_and_malformed_requests_are_4xx(server: BackgroundServer, payload: dict, status: int, message: str) -> None:
    response = requests.post(f"{server.url}/retrieve", json=payload, timeout=10)
    assert response.status_code == status and message in response.text
    assert requests.get(f"{server.url}/health", timeout=10).ok  # still serving


def test_remote_retriever_equals_in_process_under_concurrency(server: BackgroundServer, wiki_bm25: BM25Retriever, shared_data: Path) -> None:
    remote = RemoteRetriever(server.url + "/retrieve")  # the endpoint URL works as well
    queries = nq_questions(shared_data, 30)
    assert_same_results(remote.search(queries, 5), wiki_bm25.search(queries, 5))  # 413: halved until <= 8
    with ThreadPoolExecutor(max_workers=16) as pool:
        concurrent = list(pool.map(lambda query: remote.search([query], 4)[0], queries))
    assert_same_results(concurrent, wiki_bm25.search(queries, 4))
    assert remote.search(["", "  "], 3) == [[], []]
    with pytest.raises(RemoteRetrieverError, match="HTTP 422"):
        remote.search(["uranus"], 50)


def test_wiki_env_answers_through_a_server_url(server: BackgroundServer) -> None:
    question, answer_ids, answer = KNOWN_ANSWERS[1]
    for retriever in (server.url, RemoteRetriever(server.url)):
        env = make_wiki_env(retriever=retriever, dataset=[QAItem(id="q", question=question, golden_answers=[answer])], top_k=3)
        env.reset(seed=0)
        observation, *_ = env.step(env.protocol.search_action(question))
        assert "Voyager 2" in observation


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first two POSTs, then a valid Search-R1 response."""

    failures_left = 2

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers["Content-Length"]))
        if FlakyHandler.failures_left > 0:
            FlakyHandler.failures_left -= 1
            self.send_response(503)
            self.end_headers()
            return
        body = json.dumps({"result": [[{"document": {"id": "7", "contents": '"T"\nbody'}, "score": 1.5}]]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_remote_retries_5xx_with_backoff_then_succeeds_or_gives_up() -> None:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        [[document]] = RemoteRetriever(url, RemoteConfig(retries=2, backoff_s=0.01)).search(["q"], 1)
        assert (document.id, document.title, document.text, document.score) == ("7", "T", "body", 1.5)
        FlakyHandler.failures_left = 5
        with pytest.raises(RemoteRetrieverError, match="failed after 2 attempts .*HTTP 503"):
            RemoteRetriever(url, RemoteConfig(retries=1, backoff_s=0.01)).search(["q"], 1)
    finally:
        httpd.shutdown()
    with pytest.raises(ValueError, match="http"):
        RemoteRetriever("127.0.0.1:8000")


CLI = [sys.executable, "-m", "deepresearch.cli"]


def start_serving(index_dir: Path, port: int) -> subprocess.Popen:
    """``deepresearch serve-retriever`` on 127.0.0.1:``port`` in a subprocess, once healthy."""
    server = subprocess.Popen([*CLI, "serve-retriever", "--index", str(index_dir), "--port", str(port)], stderr=subprocess.PIPE)
    try:
        _wait_until_healthy(RemoteRetriever(f"http://127.0.0.1:{port}", RemoteConfig(retries=0)), server)
    except BaseException:
        server.kill()
        raise
    return server


@contextmanager
def serving(index_dir: Path) -> Iterator[RemoteRetriever]:
    """``deepresearch serve-retriever`` on a free 127.0.0.1 port, in a subprocess."""
    port = _free_port()
    server = start_serving(index_dir, port)
    try:
        yield RemoteRetriever(f"http://127.0.0.1:{port}", RemoteConfig(retries=0))
    finally:
        server.terminate()
        server.wait(timeout=30)


def assert_env_answers_through(remote: RemoteRetriever, question: str, answer: str) -> None:
    env = make_wiki_env(retriever=remote, dataset=[QAItem(id="q", question=question, golden_answers=[answer])])
    env.reset(seed=0)
    assert answer in env.step(env.protocol.search_action(question))[0]


@pytest.mark.slow
def test_cli_build_serve_and_env_end_to_end(shared_data: Path, tmp_path: Path) -> None:
    """``deepresearch index build`` (MiniLM, flat) then ``deepresearch serve-retriever`` in a
    subprocess, and the Wiki env searching through it."""
    corpus = corpus_head(shared_data, tmp_path / "wiki48.jsonl", 48)
    out = tmp_path / "index"
    build = [*CLI, "index", "build", "--corpus", str(corpus), "--out", str(out), "--model", minilm_path(), "--chunk-size", "16", "--quiet"]
    subprocess.run(build, check=True, timeout=600)
    with serving(out) as remote:
        question, answer_ids, answer = KNOWN_ANSWERS[1]
        assert answer_ids & set(ranked_ids(remote.search([question], 3))[0])
        assert_env_answers_through(remote, question, answer)


@pytest.mark.slow
def test_cli_bm25_index_of_all_of_wiki18_sample_serves_the_env(shared_data: Path, tmp_path: Path) -> None:
    """The whole sample (9,654 passages) built by the CLI, served, and equal to the index in process."""
    corpus = shared_data / "wiki18_sample" / "passages.jsonl"
    out = tmp_path / "bm25"
    subprocess.run([*CLI, "index", "build", "--kind", "bm25", "--corpus", str(corpus), "--out", str(out), "--quiet"], check=True, timeout=600)
    questions = [question for question, _, _ in KNOWN_ANSWERS] + nq_questions(shared_data, 24)
    in_process = load_retriever(out, cache=False)
    with serving(out) as remote:
        assert remote.health()["passages"] == sum(1 for _ in corpus.open(encoding="utf-8"))
        assert_same_results(remote.search(questions, 5), in_process.search(questions, 5))
        question, _, answer = KNOWN_ANSWERS[1]
        assert_env_answers_through(remote, question, answer)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_healthy(remote: RemoteRetriever, process: subprocess.Popen, limit_s: float = 300) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve-retriever exited: {process.stderr.read().decode()[-2000:]}")
        try:
            remote.health()
            return
        except RemoteRetrieverError:
            time.sleep(0.5)
    raise AssertionError("serve-retriever did not become healthy")
