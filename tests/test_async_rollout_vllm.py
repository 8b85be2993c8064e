"""The asynchronous schedule on vLLM's continuous batching: the synchronous token streams
under greedy decoding, the trainer's logprobs under sampling, and weight syncs that wait
for the requests in flight (finish-then-swap).

One ``vllm.LLM`` per module (start-up dominates); the weight-sync test runs last because
it changes that instance's weights.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import gymnasium as gym
import pytest
import torch
from agents_helpers import vllm_engine_or_skip
from transformers import AutoModelForCausalLM

import deepresearch  # noqa: F401
from deepresearch.agents import RolloutConfig, TurnEncoder, collate_episodes, default_tiny_model, load_policy
from deepresearch.agents.grpo.update import token_logprobs
from deepresearch.agents.rollout.engines import SamplingConfig
from deepresearch.agents.rollout.engines.hf import HFEngine
from deepresearch.agents.rollout.request import RolloutRequest
from deepresearch.agents.rollout.schedules import collect_rollouts

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


@pytest.fixture(scope="module")
def model_path() -> str:
    return str(default_tiny_model())


@pytest.fixture(scope="module")
def engine(model_path: str):
    return vllm_engine_or_skip(model_path, max_model_len=1024)


def run(engine, protocol: str, config: RolloutConfig, count: int = 8):
    envs = [gym.make("DeepResearch-Wiki-v0", protocol=protocol, max_turns=3) for _ in range(count)]
    encoder = TurnEncoder(engine.tokenizer, "text")
    return collect_rollouts(RolloutRequest(engine, envs, [{"options": {"index": i}, "seed": i} for i in range(count)], list(range(count)), config, encoder))


@pytest.mark.parametrize("protocol", ["research", "search_r1"])
def test_greedy_async_gives_the_synchronous_token_streams_on_vllm(engine, protocol):
    config = RolloutConfig(max_new_tokens_per_turn=24, max_response_tokens=200, temperature=0.0)
    sync, sync_stats = run(engine, protocol, replace(config, schedule="sync"))
    asynchronous, async_stats = run(engine, protocol, replace(config, schedule="async"))
    assert sync_stats.dropped == async_stats.dropped == 0
    assert max(e.turns for e in sync) > 1
    fields = lambda e: (e.group_id, e.response_ids, e.loss_mask, e.finish_reason, e.reward, e.turns, e.transcript)  # noqa: E731
    assert [fields(e) for e in asynchronous] == [fields(e) for e in sync]
    for mine, reference in zip(asynchronous, sync):
        assert mine.rollout_logprobs == pytest.approx(reference.rollout_logprobs, abs=1e-4)
    assert 0 < async_stats.engine_busy_fraction <= 1


def test_sampled_async_rollout_logprobs_are_the_trainers(engine, model_path):
    episodes, stats = run(engine, "research", RolloutConfig(max_new_tokens_per_turn=16, max_response_tokens=120, seed=5))
    assert stats.dropped == 0 and stats.generated_tokens > 0
    model, tokenizer = load_policy(model_path, torch.device("cpu"))
    batch = collate_episodes(episodes, tokenizer.pad_token_id)
    with torch.no_grad():
        recomputed, _ = token_logprobs(model, batch, temperature=1.0)
    mask = batch.loss_mask[:, 1:].bool()
    assert int(mask.sum()) == stats.generated_tokens
    assert (recomputed - batch.rollout_logprobs[:, 1:]).abs()[mask].max() < 1e-3


def test_a_weight_sync_waits_for_the_requests_in_flight_then_applies_to_the_next(engine, model_path):
    greedy = SamplingConfig(max_new_tokens=24, temperature=0)
    prompts = [engine.tokenizer(f"Where was person {n} born?", add_special_tokens=False)["input_ids"] for n in range(6)]
    before = [g.token_ids for g in engine.generate(prompts, greedy)]
    trained = AutoModelForCausalLM.from_pretrained(model_path)
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05, alpha=1.0)
    trained.eval()
    expected_after = [g.token_ids for g in HFEngine(trained, tokenizer=engine.tokenizer).generate(prompts, greedy)]
    assert expected_after != before

    in_flight = [engine.submit(prompt, greedy) for prompt in prompts]
    syncing = threading.Thread(target=engine.sync_weights, args=(list(trained.state_dict().items()),))
    syncing.start()
    syncing.join(timeout=300)
    assert not syncing.is_alive()
    # Requests submitted before the sync finished under the old weights; the ones after use the new.
    assert [f.result(timeout=60).token_ids for f in in_flight] == before
    assert [engine.submit(prompt, greedy).result(timeout=60).token_ids for prompt in prompts] == expected_after
