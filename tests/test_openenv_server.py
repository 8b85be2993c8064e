"""``deepresearch serve-env``: our envs behind OpenEnv's own server, driven by OpenEnv's own client
over WebSocket sessions on 127.0.0.1."""

from __future__ import annotations

import threading
import time

import gymnasium as gym
import pytest
from web_servers import ProviderBehaviour, serve_provider, serve_site_and_hostile_routes

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.envs.oracle import OraclePolicy

pytest.importorskip("openenv.core", reason="openenv-core not installed (pip install 'deepresearch-gym[openenv]')")
from openenv.core import GenericEnvClient  # noqa: E402

from deepresearch.envs.serving.server import EnvServerConfig, running_env_server  # noqa: E402

pytestmark = pytest.mark.slow

RULES = {"protocol": "search_r1", "max_turns": 4}


def client(url: str):
    return GenericEnvClient(base_url=url, message_timeout_s=120.0).sync()


def oracle_episode(session, index: int) -> tuple[list, object]:
    """Play the oracle on demo question ``index`` through ``session``; returns (step results, reset result)."""
    first = session.reset(index=index)
    local = gym.make("DeepResearch-Wiki-v0", **RULES)
    _, info = local.reset(options={"index": index})
    oracle = OraclePolicy(local.unwrapped.protocol)
    oracle.reset(info)
    results = []
    while not (results and results[-1].done):
        results.append(session.step({"text": oracle.act()}))
    return results, first


def capacity_refusal(url: str) -> dict:
    """What a server at capacity says to a new connection. Read from the raw socket: the server
    sends it and closes at once, so OpenEnv's client usually sees only the close on its first send."""
    import json

    from websockets.sync.client import connect

    with connect(url.replace("http://", "ws://") + "/ws", open_timeout=30) as socket:
        reply = json.loads(socket.recv(timeout=30))
    assert reply["type"] == "error"
    return reply["data"]


@pytest.fixture(scope="module")
def wiki_server():
    with running_env_server(EnvServerConfig(env_kwargs=RULES, max_sessions=64, idle_timeout_s=None)) as url:
        yield url


def test_an_episode_over_openenv_equals_the_local_env_and_carries_the_segments(wiki_server):
    local = gym.make("DeepResearch-Wiki-v0", **RULES)
    prompt, info = local.reset(options={"index": 5})
    oracle = OraclePolicy(local.unwrapped.protocol)
    oracle.reset(info)
    with client(wiki_server) as session:
        first = session.reset(index=5)
        assert first.observation["text"] == prompt and not first.done
        assert first.observation["stop"] == info["stop"] and first.observation["messages"] == info["messages"]
        done = False
        while not done:
            turn = oracle.act()
            obs, reward, terminated, truncated, info = local.step(turn)
            result = session.step({"text": turn})
            done = terminated or truncated
            assert result.observation["text"] == obs and result.done == done and result.reward == pytest.approx(reward)
            # The masking metadata reaches the client: exactly the env's spans over exactly its transcript.
            assert result.observation["segments"] == info["segments"]
            assert result.observation["transcript"] == info["transcript"]
        assert result.reward == 1.0 and result.observation["reward_components"]["em"] == 1.0
        env_text = "".join(info["transcript"][s["start"] : s["end"]] for s in result.observation["segments"] if s["source"] == "env")
        assert "<information>" in env_text
        state = session.state()
        assert state["done"] and state["transcript_chars"] == len(info["transcript"]) <= state["max_transcript_chars"]


def test_64_concurrent_sessions_are_isolated_and_a_65th_is_refused(wiki_server):
    sessions = [client(wiki_server) for _ in range(64)]
    for session in sessions:
        session.connect()
    try:
        assert capacity_refusal(wiki_server)["code"] == "CAPACITY_REACHED"
        ready = threading.Barrier(64)
        outcomes: dict[int, object] = {}

        def play(index: int) -> None:
            ready.wait()  # every session has reset before any steps: 64 episodes open at once
            try:
                outcomes[index] = oracle_episode(sessions[index], index)
            except Exception as error:  # noqa: BLE001 - reported below, per session
                outcomes[index] = error

        threads = [threading.Thread(target=play, args=(index,)) for index in range(64)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        questions = gym.make("DeepResearch-Wiki-v0", **RULES).unwrapped.questions
        for index in range(64):
            outcome = outcomes[index]
            assert not isinstance(outcome, Exception), f"session {index}: {outcome}"
            results, first = outcome
            assert results[-1].reward == 1.0  # every oracle answered its own question
            transcript = results[-1].observation["transcript"]
            assert questions[index].question in transcript and first.observation["question_id"] == questions[index].id
            others = [questions[j].question for j in range(64) if j != index and questions[j].question not in questions[index].question]
            assert not any(other in transcript for other in others)
    finally:
        for session in sessions:
            session.close()


def test_bad_requests_get_clear_errors_and_the_session_keeps_working(wiki_server):
    with client(wiki_server) as session:
        with pytest.raises(RuntimeError, match="reset first"):
            session.step({"text": "<search> anything </search>"})
        with pytest.raises(RuntimeError, match=r"unknown reset option\(s\) \['colour'\]"):
            session.reset(colour="red")
        with pytest.raises(RuntimeError, match="golden_answers needs a question"):
            session.reset(golden_answers=["x"])
        session.reset(question="Where was Jerved Gruvar born?", golden_answers=["Phokaelmath"])
        with pytest.raises(RuntimeError, match=r"an action is \{'text'.*got fields \['txt'\]"):
            session.step({"txt": "typo"})
        # A malformed turn is the policy's mistake, not a protocol error: the env answers with feedback.
        result = session.step({"text": "no tags at all"})
        assert not result.done and result.observation["action"]["kind"] == "invalid"
        final = session.step({"text": "<answer> Phokaelmath </answer>"})
        assert final.done and final.reward == 1.0
        with pytest.raises(RuntimeError, match="no episode is running"):
            session.step({"text": "<answer> again </answer>"})
        assert not session.reset(index=0).done  # still a working session


def test_an_oversized_message_closes_only_that_connection_and_memory_stays_bounded():
    config = EnvServerConfig(env_kwargs={**RULES, "max_action_chars": 2000}, max_sessions=2, max_message_bytes=64 * 1024)
    with running_env_server(config) as url:
        with client(url) as session:
            session.reset(index=1)
            long_turn = "x" * 40_000  # fits a message, longer than max_action_chars: a format error
            for _ in range(3):
                result = session.step({"text": long_turn})
            assert result.observation["action"]["kind"] == "invalid" and "too long" in result.observation["action"]["error"]
            state = session.state()
            assert state["transcript_chars"] <= state["max_transcript_chars"]
            with pytest.raises(Exception):
                session.step({"text": "y" * 100_000})  # above max_message_bytes: the server drops the connection
        # The dropped session's slot is free again: two new sessions fit a server of two.
        with client(url) as one, client(url) as two:
            assert not one.reset(index=2).done and not two.reset(index=3).done


def test_idle_sessions_are_reaped_and_then_say_so():
    with running_env_server(EnvServerConfig(env_kwargs=RULES, idle_timeout_s=0.5)) as url:
        with client(url) as session:
            session.reset(index=0)
            deadline = time.monotonic() + 120
            while True:  # a refused action changes nothing and does not count as activity
                with pytest.raises(RuntimeError) as refused:
                    session.step({})
                if "closed by the server" in str(refused.value):
                    break
                assert "an action is" in str(refused.value)
                assert time.monotonic() < deadline, "the idle session was never reaped"
                time.sleep(0.5)
            with pytest.raises(RuntimeError, match="idle past its timeout"):
                session.reset(index=0)


site = pytest.fixture(serve_site_and_hostile_routes, scope="module", name="site")


def test_the_web_env_is_served_with_one_shared_backend(site, tmp_path, monkeypatch):
    from deepresearch.envs.web import FetchConfig, RetryPolicy

    key = "serper-key-for-openenv-tests"
    monkeypatch.setenv("SERPER_API_KEY", key)
    for provider in serve_provider("serper", ProviderBehaviour(key, urls=[site.url + "/wiki/Marie_Curie"])):
        settings = dict(
            protocol="tool_call", max_turns=4, provider="serper", provider_base_url=provider.url, allowlist=("127.0.0.1",),
            cache_path=str(tmp_path / "web.sqlite"), fetch=FetchConfig(connect_timeout_s=1.0, read_timeout_s=1.0),
            retry=RetryPolicy(max_attempts=1),
        )
        with running_env_server(EnvServerConfig(env_id="DeepResearch-Web-v0", env_kwargs=settings)) as url:
            with client(url) as first, client(url) as second:
                for session in (first, second):
                    session.reset(question="In which city was Marie Curie born?", golden_answers=["Warsaw"])
                    call = '<tool_call>{"name": "web_search", "arguments": {"query": ["Marie Curie birthplace"]}}</tool_call>'
                    result = session.step({"text": call})
                    assert "Marie_Curie" in result.observation["text"]
                    assert result.observation["new_messages"][0]["role"] == "tool"
                    final = session.step({"text": "<think> found it </think>\n<answer> Warsaw </answer>"})
                    assert final.done and final.observation["reward_components"]["f1"] == 1.0
