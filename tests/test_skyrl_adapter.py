"""Our envs as SkyRL-gym text envs, run through SkyRL-gym's own API (``register``/``make``/``init``/``step``).

SkyRL's trainer (``skyrl`` 0.3.0) pins ``transformers<=5.8`` and cannot live in this
venv; its generator's token rules are applied here as its source states them
(``skyrl/train/generators/skyrl_gym_generator.py``: ``get_obs_ids_from_obs``,
``TurnOutput.get_turn_loss_mask``, ``_update_agent_loop_state_with_singleturn_chat_template``)
to episodes the tiny model plays, and compared with our own rollout of the same env.
"""

from __future__ import annotations

import gymnasium as gym
import pytest

skyrl_gym = pytest.importorskip("skyrl_gym", reason="install the skyrl extra: pip install -e '.[skyrl]'")

from agents_helpers import mask_runs  # noqa: E402
from skyrl_gym.envs.base_text_env import BaseTextEnv  # noqa: E402

from deepresearch.agents import RolloutConfig, TurnEncoder, default_tiny_model, make_engine, run_rollouts  # noqa: E402
from deepresearch.agents.adapters.skyrl import DeepResearchTextEnv, register_skyrl_env, skyrl_dataset_row  # noqa: E402
from deepresearch.agents.rollout.engines.base import SamplingConfig  # noqa: E402
from deepresearch.agents.rollout.request import RolloutRequest  # noqa: E402
from deepresearch.envs import load_qa  # noqa: E402

ENV_CONFIG = {"env_id": "DeepResearch-Wiki-v0", "env_kwargs": {"protocol": "search_r1"}}
MAX_TURNS, TOKENS_PER_TURN = 3, 24


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


def skyrl_single_turn_episode(env: DeepResearchTextEnv, prompt: list, engine) -> tuple[list[int], list[tuple[list[int], list[int]]], list[int], float]:
    """SkyRL's agent loop with ``use_conversation_multi_turn=false``: returns prompt ids, per turn
    (policy ids, observation ids), the loss mask SkyRL builds, and the summed step rewards."""
    tokenizer = engine.tokenizer
    chat, metadata = env.init(prompt)
    prompt_ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=False)
    response: list[int] = []
    turns, mask, total, done = [], [], 0.0, False
    while not done:
        sampling = SamplingConfig(max_new_tokens=TOKENS_PER_TURN, temperature=0.0, stop=tuple(metadata["stop"]))
        generation = engine.generate([prompt_ids + response], sampling)[0]
        out = env.step(tokenizer.decode(generation.token_ids, skip_special_tokens=True))  # vLLM's text
        done, total = out["done"], total + out["reward"]
        obs_ids = [t for message in out["observations"] for t in tokenizer.encode(message["content"], add_special_tokens=False)]
        policy_ids = list(generation.token_ids)
        if policy_ids and policy_ids[-1] == tokenizer.eos_token_id:  # continuing the one assistant message
            policy_ids.pop()
        turns.append((policy_ids, obs_ids))
        mask += [1] * len(policy_ids) + [0] * len(obs_ids)
        response += policy_ids + obs_ids
    env.close()
    return prompt_ids, turns, mask, total


@pytest.mark.slow
def test_skyrl_masks_exactly_the_env_text_and_gets_our_trainers_tokens_and_reward(env_class, rows):
    engine = make_engine("hf", default_tiny_model())
    eos = engine.tokenizer.eos_token_id
    config = RolloutConfig(max_new_tokens_per_turn=TOKENS_PER_TURN, max_response_tokens=1024, temperature=0.0)
    for row in rows:
        prompt_ids, turns, mask, reward = skyrl_single_turn_episode(make_env(env_class, row), row["prompt"], engine)
        assert mask == [flag for policy, obs in turns for flag in [1] * len(policy) + [0] * len(obs)]
        assert len(turns) == MAX_TURNS and any(obs for _, obs in turns)  # the untrained model runs out of turns

        env = gym.make(ENV_CONFIG["env_id"], **ENV_CONFIG["env_kwargs"], max_turns=MAX_TURNS)
        reset = {"options": {"question": row["extra_info"]["question"], "golden_answers": row["extra_info"]["golden_answers"]}}
        (ours,), _ = run_rollouts(RolloutRequest(engine, [env], [reset], [0], config, TurnEncoder.for_tokenizer(engine.tokenizer)))
        assert prompt_ids == ours.prompt_ids and reward == ours.reward
        # Our trainer's turns, split by its loss mask: the same policy ids (SkyRL drops an
        # end-of-sequence id inside the single assistant message) and the same env ids.
        runs = mask_runs(ours.response_ids, ours.loss_mask)
        ours_policy = [[t for t in ids if t != eos] for flag, ids in runs if flag == 1]
        ours_obs = [ids for flag, ids in runs if flag == 0]
        assert ours_policy == [policy for policy, _ in turns]
        assert ours_obs == [obs for _, obs in turns if obs]


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
