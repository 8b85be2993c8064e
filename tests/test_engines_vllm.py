"""The vLLM engine matches the transformers engine: tokens, stops, logprobs, and after a weight sync.

One ``vllm.LLM`` per module (startup dominates); the weight-sync test runs last
because it changes that instance's weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from agents_helpers import vllm_engine_or_skip
from test_engines_hf import chat_prompts, expected_stop_cut, forward_logprobs, spanning_stop, tiny_model_path
from transformers import AutoModelForCausalLM

from deepresearch.agents.rollout.engines import SamplingConfig
from deepresearch.agents.rollout.engines.hf import HFEngine

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

GREEDY = SamplingConfig(max_new_tokens=24, temperature=0)


@pytest.fixture(scope="module")
def model_path(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_path(shared_data, tmp_path_factory.mktemp("vllm"))


@pytest.fixture(scope="module")
def engine(model_path: Path):
    return vllm_engine_or_skip(model_path, max_model_len=1024)


@pytest.fixture(scope="module")
def reference(model_path: Path) -> HFEngine:
    return HFEngine(model_path)


@pytest.fixture(scope="module")
def prompts(reference: HFEngine, shared_data: Path) -> list[list[int]]:
    return chat_prompts(reference, shared_data)


def test_greedy_matches_transformers(engine, reference, prompts):
    ours = engine.generate(prompts, GREEDY)
    theirs = reference.generate(prompts, GREEDY)
    assert [g.token_ids for g in ours] == [g.token_ids for g in theirs]
    assert [g.finish_reason for g in ours] == [g.finish_reason for g in theirs] == ["length"] * len(prompts)
    for mine, other in zip(ours, theirs):
        assert mine.logprobs == pytest.approx(other.logprobs, abs=1e-3)
        assert mine.text == reference.tokenizer.decode(mine.token_ids, skip_special_tokens=False)


def test_stop_strings_cut_like_transformers(engine, reference, prompts):
    free = reference.generate(prompts, GREEDY)
    stop = spanning_stop(reference.tokenizer, free[1], position=4)
    sampling = SamplingConfig(max_new_tokens=24, temperature=0, stop=(stop, "</answer>"))
    ours = engine.generate(prompts, sampling)
    theirs = reference.generate(prompts, sampling)
    assert [(g.token_ids, g.finish_reason) for g in ours] == [(g.token_ids, g.finish_reason) for g in theirs]
    cut = expected_stop_cut(reference.tokenizer, free[1].token_ids, stop)
    assert ours[1].token_ids == free[1].token_ids[:cut] and ours[1].finish_reason == "stop"


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampled_logprobs_match_a_forward_pass(engine, reference, prompts, temperature):
    sampling = SamplingConfig(max_new_tokens=16, temperature=temperature, seed=1)
    for prompt, generation in zip(prompts, engine.generate(prompts, sampling)):
        expected = forward_logprobs(reference.model, prompt, generation.token_ids, temperature)
        assert torch.allclose(torch.tensor(generation.logprobs), expected, atol=1e-3)


def test_top_k_logprobs_follow_the_same_contract_as_transformers(engine, reference, prompts):
    temperature, top_k = 0.8, 5
    sampling = SamplingConfig(max_new_tokens=12, temperature=temperature, top_k=top_k, seed=2)
    (generation,) = engine.generate(prompts[:1], sampling)
    ids = torch.tensor([prompts[0] + generation.token_ids])
    with torch.no_grad():
        logits = reference.model(ids).logits[0, len(prompts[0]) - 1 : -1] / temperature
    kept = torch.topk(logits, top_k, dim=-1)
    for step, token in enumerate(generation.token_ids):
        assert token in kept.indices[step].tolist()
        expected = logits[step, token] - torch.logsumexp(kept.values[step], dim=-1)
        assert generation.logprobs[step] == pytest.approx(expected.item(), abs=1e-3)


def test_seeded_group_members_differ_and_repeat(engine, prompts):
    group = [prompts[0]] * 4
    sampling = SamplingConfig(max_new_tokens=12, temperature=1.0, seed=9)
    first = [g.token_ids for g in engine.generate(group, sampling)]
    assert len({tuple(ids) for ids in first}) > 1, "copies of one prompt must not share a sample"
    if engine.per_request_seeds:  # GPU: per-request seeds make a call repeatable
        assert [g.token_ids for g in engine.generate(group, sampling)] == first


def test_prompt_longer_than_the_context_is_a_clear_error(engine):
    with pytest.raises(ValueError, match="max_model_len"):
        engine.generate([[5] * 2000], GREEDY)


def test_sync_weights_after_sgd_steps_matches_transformers(engine, model_path, prompts):
    before = [g.token_ids for g in engine.generate(prompts, GREEDY)]
    trained = AutoModelForCausalLM.from_pretrained(model_path)
    optimizer = torch.optim.SGD(trained.parameters(), lr=0.5)
    batch = torch.tensor([prompt[:16] for prompt in prompts])
    for _ in range(3):
        optimizer.zero_grad()
        trained(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
    trained.eval()
    expected = HFEngine(trained, tokenizer=engine.tokenizer).generate(prompts, GREEDY)
    engine.sync_weights(trained.state_dict().items())
    after = engine.generate(prompts, GREEDY)
    assert [g.token_ids for g in after] == [g.token_ids for g in expected]
    assert [g.token_ids for g in after] != before
    for mine, other in zip(after, expected):
        assert mine.logprobs == pytest.approx(other.logprobs, abs=1e-3)
