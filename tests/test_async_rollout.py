"""The per-episode asynchronous schedule against the turn-synchronous reference.

Greedy decoding gives the same token streams on both; budgets, length cut-offs and
env errors behave the same; and only the async schedule lets an episode run ahead
while another waits on a slow env.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

import gymnasium as gym
import pytest
from agents_helpers import FixedOutputEngine, ReplayEngine, oracle_script, tiny_policy

import deepresearch  # noqa: F401
from deepresearch.agents import RolloutConfig, TurnEncoder, make_engine
from deepresearch.agents.rollout.async_runner import request_seed
from deepresearch.agents.rollout.engines.base import Generation, SamplingConfig
from deepresearch.agents.rollout.engines.continuous import CallBatcher
from deepresearch.agents.rollout.request import RolloutRequest
from deepresearch.agents.rollout.schedules import collect_rollouts

SCHEDULES = pytest.mark.parametrize("schedule", ["async", "sync"])


@pytest.fixture(scope="module")
def policy():
    return tiny_policy()


def rollouts(engine, envs, resets, config, encoder, schedule, group_ids=None):
    group_ids = list(range(len(envs))) if group_ids is None else group_ids
    return collect_rollouts(RolloutRequest(engine, envs, resets, group_ids, replace(config, schedule=schedule), encoder))


def token_streams(episodes):
    return [(e.group_id, e.response_ids, e.loss_mask, e.finish_reason, e.reward, e.turns, e.transcript) for e in episodes]


@pytest.mark.parametrize("protocol", ["research", "search_r1"])
def test_greedy_async_gives_the_synchronous_token_streams_on_the_transformers_engine(policy, protocol):
    model, tokenizer, _ = policy
    engine = make_engine("hf", model, tokenizer=tokenizer)
    encoder = TurnEncoder(tokenizer, "text")
    config = RolloutConfig(max_new_tokens_per_turn=20, max_response_tokens=160, temperature=0.0)
    results = {}
    for schedule in ("sync", "async"):
        envs = [gym.make("DeepResearch-Wiki-v0", protocol=protocol, max_turns=3) for _ in range(6)]
        results[schedule] = rollouts(engine, envs, [{"options": {"index": i}} for i in range(6)], config, encoder, schedule)
    (sync, sync_stats), (asynchronous, async_stats) = results["sync"], results["async"]
    assert sync_stats.dropped == async_stats.dropped == 0
    assert token_streams(asynchronous) == token_streams(sync)
    assert max(e.turns for e in sync) > 1, "the comparison should cover multi-turn episodes"
    for mine, reference in zip(asynchronous, sync):
        assert mine.rollout_logprobs == pytest.approx(reference.rollout_logprobs, abs=1e-4)
    assert async_stats.generated_tokens == sync_stats.generated_tokens


@SCHEDULES
def test_per_turn_and_per_episode_token_budgets_hold(policy, schedule):
    model, tokenizer, _ = policy
    engine = make_engine("hf", model, tokenizer=tokenizer)
    encoder = TurnEncoder(tokenizer, "text")
    config = RolloutConfig(max_new_tokens_per_turn=6, max_response_tokens=40, seed=3)
    envs = [gym.make("DeepResearch-Wiki-v0", max_turns=8) for _ in range(4)]
    episodes, stats = rollouts(engine, envs, [{"seed": i} for i in range(4)], config, encoder, schedule)
    assert stats.dropped == 0 and len(episodes) == 4
    for episode in episodes:
        assert len(episode.response_ids) <= config.max_response_tokens
        policy_runs = [len(run) for run in "".join(map(str, episode.loss_mask)).split("0") if run]
        assert policy_runs and max(policy_runs) <= config.max_new_tokens_per_turn
    # A babbling random model runs out of budget before eight turns: cut off and scored by the env.
    cut = [e for e in episodes if e.finish_reason == "length"]
    assert cut and all(e.reward_components.get("format_ok") is False for e in cut)


class FailingEnv(gym.Wrapper):
    """Raises in ``reset`` or in its first ``step``, like a tool whose client crashed."""

    def __init__(self, env: gym.Env, where: str) -> None:
        super().__init__(env)
        self.where = where

    def reset(self, **kwargs):
        if self.where == "reset":
            raise ConnectionError("index server went away")
        return self.env.reset(**kwargs)

    def step(self, action):
        raise RuntimeError("tool client crashed")


@SCHEDULES
def test_an_env_that_raises_drops_only_its_own_episode(policy, schedule):
    _, tokenizer, _ = policy
    encoder = TurnEncoder(tokenizer, "text")
    envs = [gym.make("DeepResearch-Wiki-v0", protocol="search_r1", split="test") for _ in range(4)]
    scripts = [oracle_script(env, index, encoder) for index, env in enumerate(envs)]
    envs[1], envs[2] = FailingEnv(envs[1], "step"), FailingEnv(envs[2], "reset")
    episodes, stats = rollouts(ReplayEngine(tokenizer, scripts), envs, [{"options": {"index": i}} for i in range(4)], RolloutConfig(max_response_tokens=4000), encoder, schedule)
    assert [e.group_id for e in episodes] == [0, 3] and [e.reward for e in episodes] == [1.0, 1.0]
    assert stats.dropped == 2
    assert sorted(stats.drop_reasons) == ["env reset raised ConnectionError: index server went away", "env step raised RuntimeError: tool client crashed"]


class TimedEnv(gym.Env):
    """Three turns of fixed text; each ``step`` takes ``delay`` seconds and logs when it returned."""

    def __init__(self, name: int, delay: float, log: list[tuple[int, int, float]]) -> None:
        self.name, self.delay, self.log = name, delay, log
        self.lock = threading.Lock()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.turns = 0
        return f"Episode {self.name}: say anything.\n", {}

    def step(self, action: str):
        time.sleep(self.delay)
        self.turns += 1
        with self.lock:
            self.log.append((self.name, self.turns, time.monotonic()))
        return "\nok\n", 0.0, self.turns >= 3, False, {}


class SaysHelloEngine(FixedOutputEngine):
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def generate(self, prompts: list[list[int]], sampling: SamplingConfig) -> list[Generation]:
        ids = self.tokenizer(" hello", add_special_tokens=False)["input_ids"]
        return [Generation(token_ids=list(ids), logprobs=[-1.0] * len(ids), text=" hello", finish_reason="stop") for _ in prompts]


@SCHEDULES
def test_only_the_async_schedule_lets_episodes_run_ahead_of_a_slow_env(policy, schedule):
    _, tokenizer, _ = policy
    log: list[tuple[int, int, float]] = []
    envs = [TimedEnv(0, 1.5, log)] + [TimedEnv(name, 0.0, log) for name in (1, 2, 3)]
    episodes, stats = rollouts(SaysHelloEngine(tokenizer), envs, [{}] * 4, RolloutConfig(), TurnEncoder(tokenizer, "text"), schedule)
    assert stats.dropped == 0 and [e.turns for e in episodes] == [3, 3, 3, 3]
    slow_first_step = next(when for name, turn, when in log if name == 0 and turn == 1)
    fast_done = max(when for name, turn, when in log if name != 0)
    if schedule == "async":  # the fast episodes finished all three turns while the slow one was in its first step
        assert fast_done < slow_first_step
    else:  # every turn waits for the slowest env step
        assert fast_done > slow_first_step


def test_request_seeds_differ_per_slot_and_turn():
    seeds = {request_seed(7, turn, slot) for turn in range(1, 5) for slot in range(64)}
    assert len(seeds) == 4 * 64 and request_seed(None, 1, 0) is None


class RecordingEngine(FixedOutputEngine):
    """Records the prompts and seed of every batched call."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.calls: list[tuple[int, int | None]] = []

    def generate(self, prompts, sampling):
        self.calls.append((len(prompts), sampling.seed))
        if any(prompt == [0] for prompt in prompts):
            raise ValueError("prompt [0] is not allowed here")
        return [Generation(token_ids=[prompt[-1]], logprobs=[-1.0], text="", finish_reason="length") for prompt in prompts]


def test_the_call_batcher_gathers_queued_requests_into_one_call_and_fails_only_that_call(policy):
    _, tokenizer, _ = policy
    engine = RecordingEngine(tokenizer)
    batcher = CallBatcher(engine, linger_seconds=0.05)
    try:
        futures = [batcher.submit([5, index + 10], SamplingConfig(max_new_tokens=1, seed=100 + index)) for index in range(5)]
        assert [f.result(timeout=10).token_ids for f in futures] == [[10], [11], [12], [13], [14]]
        assert engine.calls == [(5, 100)]  # one call, seeded by its first request
        bad = batcher.submit([0], SamplingConfig(max_new_tokens=1, temperature=0.5))
        good = batcher.submit([7], SamplingConfig(max_new_tokens=1))
        with pytest.raises(ValueError, match="not allowed"):
            bad.result(timeout=10)
        assert good.result(timeout=10).token_ids == [7]  # other sampling settings: its own call
        assert batcher.busy_seconds > 0
    finally:
        batcher.close()
