"""Our envs through verifiers' own rollout entry point (``vf-eval``, verifiers 0.4) against
``vllm serve`` of the tiny model on 127.0.0.1.

verifiers pins ``openai<3`` and lives in its own venv (``make verifiers-env``, built by
``make test`` and CI); its ``null`` chat harness is set up by ``uv sync --script``,
which fetches the harness's few dependencies from the package index on first use and
reuses uv's cache afterwards. Each recorded episode is replayed through a fresh env:
the user turns after the prompt must be exactly the env's observations, and the
recorded reward the env's.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import gymnasium as gym
import pytest
from conftest import REPO_ROOT
from test_eval_endpoint import vllm_server  # noqa: F401 - the tiny model behind vLLM's OpenAI server
from web_servers import LoopbackServer

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.envs import end_episode_early

VERIFIERS_VENV = Path(os.environ.get("DEEPRESEARCH_VERIFIERS_VENV", REPO_ROOT / ".venv-verifiers"))
PLUGINS = Path(__file__).resolve().parent / "verifiers_plugins"  # the taskset id `deepresearch-wiki`
EPISODES, MAX_TOKENS = 2, 24


def vf_eval(base_url: str, out: Path) -> list[dict]:
    command = [
        str(VERIFIERS_VENV / "bin" / "vf-eval"), "deepresearch-wiki", "-n", str(EPISODES), "--model", "tiny",
        "--client.base-url", base_url, "--client.api-key-var", "DEEPRESEARCH_VF_KEY",
        "--env.agent.runtime.type", "subprocess", "--env.agent.harness.id", "null",
        "--sampling.max-tokens", str(MAX_TOKENS), "--sampling.temperature", "0",
        "--no-rich", "--no-push", "--output-dir", str(out),
    ]  # fmt: skip
    env = {
        **os.environ, "PATH": f"{VERIFIERS_VENV / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(PLUGINS), "DEEPRESEARCH_VF_KEY": "EMPTY",
    }  # fmt: skip
    run = subprocess.run(command, env=env, cwd=out, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    (traces,) = out.glob("*/traces.jsonl")
    return [json.loads(line) for line in traces.read_text().splitlines() if line.strip()]


def check_episodes_against_the_env(episodes: list[dict], base_url: str) -> list[float]:
    """Replay each recorded episode through a fresh env: the user turns after the prompt are exactly
    the env's observations and the recorded reward is the env's. Returns the rewards."""
    assert len(episodes) == EPISODES and all(episode["ok"] and not episode["errors"] for episode in episodes)
    rewards = []
    for episode in episodes:
        (trace,) = episode["traces"]
        data = trace["task"]["data"]
        assert trace["agent"]["config"]["client"]["base_url"] == base_url and trace["agent"]["config"]["model"] == "tiny"
        env = gym.make(data["env_id"], **data["env_kwargs"])
        _, info = env.reset(options={"id": data["id"], "question": data["question"], "golden_answers": data["golden_answers"]})
        nodes = [node["message"] for node in trace["nodes"]]
        assert nodes[0] == {"role": "user", "content": info["messages"][0]["content"]}  # the env's own prompt
        # Only the model's replies are sampled (what prime-rl trains on); the env's turns are not.
        assert [node["sampled"] for node in trace["nodes"]] == [message["role"] == "assistant" for message in nodes]
        replies = [m["content"] for m in nodes if m["role"] == "assistant"]
        env_turns = [m["content"] for m in nodes[1:] if m["role"] == "user"]
        assert replies and len(replies) <= data["env_kwargs"]["max_turns"]
        done, reward, observations = False, 0.0, []
        for reply in replies:
            observation, reward, terminated, truncated, step_info = env.step(reply.strip())
            done = terminated or truncated
            if not done:
                observations.append(observation)
        if not done:
            reward, _ = end_episode_early(env)
        assert env_turns == observations
        assert trace["rewards"]["env_reward"]["score"] == reward and trace["rewards"]["env_reward"]["weight"] == 1.0
        assert done and trace["info"]["reward_components"] == step_info["reward_components"]
        env.close()
        rewards.append(reward)
    return rewards


def require_verifiers_venv() -> None:
    if not (VERIFIERS_VENV / "bin" / "vf-eval").exists():
        pytest.skip(f"no verifiers venv at {VERIFIERS_VENV}: run `make verifiers-env`")


@pytest.mark.slow
@pytest.mark.vllm
def test_vf_eval_rolls_out_our_env_against_vllm_serve(tmp_path, vllm_server):  # noqa: F811
    require_verifiers_venv()
    check_episodes_against_the_env(vf_eval(vllm_server, tmp_path), vllm_server)


def scripted_chat_model() -> dict:
    """An OpenAI chat-completions route that answers as tests/scripted_policy.py (search, then the
    gold answer): a model that scores, which the untrained tiny model behind vLLM never does."""
    from scripted_policy import ScriptedSearchPolicy

    policy = ScriptedSearchPolicy("search_r1")

    def complete(handler, request):
        body = request.json()
        reply, _ = policy.next_turn("\n".join(message["content"] for message in body["messages"]))
        header = {"id": f"chatcmpl-{len(handler.server.requests)}", "created": 0, "model": body["model"]}
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        if not body.get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop", "logprobs": None}
            handler.send_json({**header, "object": "chat.completion", "choices": [choice], "usage": usage})
            return
        chunks = [  # server-sent events, as OpenAI streams a completion
            {"index": 0, "delta": {"role": "assistant", "content": reply}, "finish_reason": None},
            {"index": 0, "delta": {}, "finish_reason": "stop"},
        ]
        events = [{**header, "object": "chat.completion.chunk", "choices": [chunk]} for chunk in chunks]
        events.append({**header, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        stream = "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"
        handler.send_body(200, "text/event-stream", stream.encode())

    return {"/v1/chat/completions": complete}


@pytest.mark.slow
def test_vf_eval_records_the_reward_of_an_episode_that_scores(tmp_path):
    """A model that searches and answers right: verifiers must record the env's reward 1 (a
    recorded reward of 0 passes against the untrained model, never here)."""
    require_verifiers_venv()
    with LoopbackServer(scripted_chat_model()) as server:
        rewards = check_episodes_against_the_env(vf_eval(server.url + "/v1", tmp_path), server.url + "/v1")
    assert rewards == [1.0] * EPISODES
