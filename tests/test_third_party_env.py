"""An env that is only a Gymnasium text env (no question list, no early scoring) still
rolls out, evaluates and has its questions pinned by seed."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from agents_helpers import FixedOutputEngine, tiny_policy

from deepresearch.agents import RolloutConfig, TurnEncoder, run_rollouts
from deepresearch.agents.eval.held_out import evaluate
from deepresearch.agents.rollout.engines.base import Generation, SamplingConfig
from deepresearch.agents.rollout.request import RolloutRequest
from deepresearch.envs import as_question_env, end_episode_early, question_count, question_reset

CAPITALS = [("France", "Paris"), ("Peru", "Lima"), ("Chad", "N'Djamena")]


class CapitalsEnv(gym.Env):
    """Someone else's env: the reset seed picks the country; three tries to name its capital."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self.country, self.capital = CAPITALS[(seed or 0) % len(CAPITALS)]
        self.tries = 0
        return f"What is the capital of {self.country}? Answer as <answer> city </answer>.\n", {}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        self.tries += 1
        if f"<answer> {self.capital} </answer>" in action:
            return "", 1.0, True, False, {}
        return "\nNo, try again.\n", 0.0, False, self.tries >= 3, {}


class SaysParisEngine(FixedOutputEngine):
    def __init__(self, tokenizer: Any, max_model_len: int | None = None) -> None:
        self.tokenizer, self.max_model_len = tokenizer, max_model_len

    def generate(self, prompts: list[list[int]], sampling: SamplingConfig) -> list[Generation]:
        ids = self.tokenizer("<answer> Paris </answer>", add_special_tokens=False)["input_ids"][: sampling.max_new_tokens]
        return [Generation(token_ids=list(ids), logprobs=[-1.0] * len(ids), text="", finish_reason="stop") for _ in prompts]


def test_the_question_contract_falls_back_to_seeds_for_other_envs():
    env = CapitalsEnv()
    assert as_question_env(env) is None and as_question_env(gym.make("DeepResearch-Wiki-v0")) is not None
    assert question_reset(env, 2, seed=99) == {"seed": 2}
    assert question_count(env, default=1_000) == 1_000
    env.reset(seed=0)
    assert end_episode_early(env) == (0.0, {"finish": "cut"})


def test_rollouts_and_greedy_evaluation_over_a_plain_gymnasium_env():
    _, tokenizer, _ = tiny_policy()
    encoder = TurnEncoder(tokenizer, "text")
    envs = [CapitalsEnv() for _ in CAPITALS]
    config = RolloutConfig(max_new_tokens_per_turn=16, max_response_tokens=128)
    resets = [question_reset(env, index, seed=index) for index, env in enumerate(envs)]
    episodes, stats = run_rollouts(RolloutRequest(SaysParisEngine(tokenizer), envs, resets, [0, 1, 2], config, encoder))
    assert stats.dropped == 0
    assert [(e.reward, e.finish_reason, e.turns) for e in episodes] == [(1.0, "terminated", 1), (0.0, "truncated", 3), (0.0, "truncated", 3)]
    for episode in episodes:  # the loop recorded who wrote what, as our envs do
        policy = "".join(episode.transcript[s["start"] : s["end"]] for s in episode.segments if s["source"] == "policy")
        assert policy == "<answer> Paris </answer>" * episode.turns
        assert tokenizer.decode([t for t, m in zip(episode.response_ids, episode.loss_mask) if m]) == policy

    # A response budget that runs out mid-episode: cut, scored 0 (the env cannot score early).
    tight = RolloutConfig(max_new_tokens_per_turn=16, max_response_tokens=20)
    episodes, _ = run_rollouts(RolloutRequest(SaysParisEngine(tokenizer), envs[1:2], resets[1:2], [0], tight, encoder))
    assert (episodes[0].finish_reason, episodes[0].reward, episodes[0].reward_components) == ("length", 0.0, {"finish": "cut"})

    metrics, evaluated = evaluate(SaysParisEngine(tokenizer), encoder, envs, config)
    assert metrics["reward"] == 1 / 3 and len(evaluated) == 3
