"""Our envs as SkyRL-gym text envs, run through SkyRL-gym's own API (``register``/``make``/``init``/``step``).

SkyRL's generator and training math (``skyrl`` 0.3.0, which pins ``transformers<=5.8`` and
cannot live in this venv) run our env in tests/in_skyrl (``make test-skyrl``).
"""

from __future__ import annotations

import gymnasium as gym
import pytest

skyrl_gym = pytest.importorskip("skyrl_gym", reason="install the skyrl extra: pip install -e '.[skyrl]'")

from skyrl_gym.envs.base_text_env import BaseTextEnv  # noqa: E402

from deepresearch.agents.adapters.skyrl import DeepResearchTextEnv, register_skyrl_env, skyrl_dataset_row  # noqa: E402
from deepresearch.envs import load_qa  # noqa: E402

ENV_CONFIG = {"env_id": "DeepResearch-Wiki-v0", "env_kwargs": {"protocol": "search_r1"}}
MAX_TURNS = 3


@pytest.fixture(scope="module")
def env_class() -> str:
    return register_skyrl_env()


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    env = gym.make(ENV_CONFIG["env_id"], **ENV_CONFIG["env_kwargs"])
    return [skyrl_dataset_row(env, item) for item in load_qa("demo", split="train", limit=3)]


def make_env(env_class: str, row: dict) -> DeepResearchTextEnv:
    """What SkyRL's generator does per sample: the row's columns besides the prompt are ``extras``."""
    extras = {key: value for key, value in row.items() if key not in ("prompt", "env_class")}
    return skyrl_gym.make(env_class, env_config=ENV_CONFIG, extras={**extras, "max_turns": MAX_TURNS})


def test_registered_in_skyrl_gyms_registry_once(env_class):
    assert env_class in skyrl_gym.registry and register_skyrl_env(env_class) == env_class
    with pytest.raises(ValueError, match="already registered"):
        register_skyrl_env("gsm8k")


def test_a_scripted_episode_through_skyrl_gym_scores_like_the_env(env_class, rows):
    row = rows[0]
    env = make_env(env_class, row)
    assert isinstance(env, BaseTextEnv)
    chat, metadata = env.init(row["prompt"])
    assert chat == row["prompt"] and metadata["stop"] == ["</search>", "</browse>", "</answer>"]

    direct = gym.make(ENV_CONFIG["env_id"], **ENV_CONFIG["env_kwargs"], max_turns=MAX_TURNS)
    direct.reset(options={"question": row["extra_info"]["question"], "golden_answers": row["extra_info"]["golden_answers"]})
    protocol = direct.unwrapped.protocol
    gold = row["extra_info"]["golden_answers"][0]
    for action in (protocol.search_action(row["extra_info"]["question"]), protocol.answer_action(gold)):
        observation, reward, terminated, truncated, _ = direct.step(action)
        out = env.step(action)
        assert (out["reward"], out["done"], out["postprocessed_action"]) == (reward, terminated or truncated, None)
        # The env's text is the observation message (tokenised by SkyRL, masked 0); none once done.
        assert out["observations"] == ([] if out["done"] else [{"role": "user", "content": observation}])
    assert out["reward"] == 1.0 and env.get_metrics()["em"] == 1.0
    assert BaseTextEnv.aggregate_metrics([env.get_metrics(), {"em": 0.0}])["em"] == 0.5
    env.close()


def test_tool_call_results_come_back_as_tool_messages(env_class, rows):
    row = rows[0]
    config = {"env_id": "DeepResearch-Wiki-v0", "env_kwargs": {"protocol": "tool_call"}}
    env = skyrl_gym.make(env_class, env_config=config, extras={"extra_info": row["extra_info"], "max_turns": MAX_TURNS})
    chat, _ = env.init([{"role": "user", "content": row["extra_info"]["question"]}])
    direct = gym.make("DeepResearch-Wiki-v0", protocol="tool_call", max_turns=MAX_TURNS)
    _, info = direct.reset(options={"question": row["extra_info"]["question"], "golden_answers": row["extra_info"]["golden_answers"]})
    assert chat == info["messages"]
    action = direct.unwrapped.protocol.search_action(row["extra_info"]["question"])
    _, _, _, _, step_info = direct.step(action)
    out = env.step(action)
    # Rendered by SkyRL's chat template with use_conversation_multi_turn=true, all masked 0.
    assert out["observations"] == step_info["new_messages"] and {m["role"] for m in out["observations"]} == {"tool"}
    env.close()
