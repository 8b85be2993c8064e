"""Worked example: reward functions from here, outside the package, through ``gym.make`` by name
(``register_reward``) or as the callable itself, and recorded in the run's ``config.yaml``."""

from __future__ import annotations

import gymnasium as gym
import pytest

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.agents import GRPOConfig
from deepresearch.agents.train.config_file import load_config
from deepresearch.agents.train.metrics_log import MetricsLogger
from deepresearch.rewards import REWARD_PRESETS, RewardResult, ScoringContext, register_reward


def brief_f1(response, golden_answers, tags, *, episode=None) -> RewardResult:
    """F1 of the answer, minus 0.1 per search beyond the first (a thrifty agent)."""
    context = ScoringContext.build(response, golden_answers, tags, episode)
    return context.result(context.f1 - 0.1 * max(context.searches - 1, 0), searches_charged=max(context.searches - 1, 0))


@pytest.fixture
def registered():
    register_reward("brief_f1", brief_f1)
    yield
    REWARD_PRESETS.unregister("brief_f1")


def play(env, searches: int) -> tuple[float, dict]:
    _, info = env.reset(options={"index": 0})
    protocol = env.unwrapped.protocol
    for query in [info["metadata"]["oracle_queries"][0]] * searches:
        env.step(protocol.search_action(query))
    _, reward, _, _, info = env.step(protocol.answer_action(info["golden_answers"][0]))
    return reward, info["reward_components"]


@pytest.mark.parametrize("how", ["name", "callable"])
def test_a_reward_of_our_own_scores_episodes_through_gym_make(registered, how):
    env = gym.make("DeepResearch-Wiki-v0", protocol="search_r1", max_turns=5, reward="brief_f1" if how == "name" else brief_f1)
    assert play(env, searches=1)[0] == pytest.approx(1.0)
    reward, components = play(env, searches=3)
    assert reward == pytest.approx(0.8) and components["searches_charged"] == 2 and components["f1"] == 1.0


def test_the_config_record_names_a_registered_reward_and_reloads(registered, tmp_path):
    config = GRPOConfig(env_kwargs={"protocol": "search_r1", "reward": "brief_f1"}, output_dir=str(tmp_path))
    MetricsLogger(tmp_path, run_config=config.to_dict(), report_to=("jsonl",)).close()  # as the trainer writes it
    record = (tmp_path / "config.yaml").read_text()
    assert "reward: brief_f1" in record
    reloaded = load_config(tmp_path / "config.yaml")
    env = gym.make("DeepResearch-Wiki-v0", **{**reloaded.env_kwargs, "max_turns": 5})
    assert env.unwrapped.reward_fn is brief_f1


def test_a_callable_is_recorded_by_its_name(tmp_path):
    config = GRPOConfig(env_kwargs={"reward": brief_f1}, output_dir=str(tmp_path))
    MetricsLogger(tmp_path, run_config=config.to_dict(), report_to=("jsonl",)).close()
    assert "reward: '<test_extending_rewards.brief_f1: not reloadable>'" in (tmp_path / "config.yaml").read_text()


def test_a_reward_that_breaks_the_contract_fails_at_make():
    with pytest.raises(ValueError, match="reward two_arguments failed on an empty response: TypeError"):
        gym.make("DeepResearch-Wiki-v0", reward=two_arguments)
    with pytest.raises(TypeError, match="must return a RewardResult, not float"):
        gym.make("DeepResearch-Wiki-v0", reward=lambda response, golds, tags, episode=None: 1.0)
    with pytest.raises(ValueError, match="unknown reward preset 'brief_f2'"):
        gym.make("DeepResearch-Wiki-v0", reward="brief_f2")
    with pytest.raises(TypeError, match="must be callable"):
        register_reward("not_callable", 0.5)


def two_arguments(response, golden_answers):
    """Not a reward fn: it takes neither the tags nor ``episode``."""
    return RewardResult(0.0, {})
