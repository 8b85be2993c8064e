"""The transformers rollout engine against the contract in ``agents/engines/base.py``.

Helpers here (``tiny_engine_setup``, ``forward_logprobs``, ``expected_stop_cut``) are
the reference the vLLM engine tests reuse.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from deepresearch.agents.models.tiny import build_tiny_model
from deepresearch.agents.rollout.engines import SamplingConfig, make_engine
from deepresearch.agents.rollout.engines.base import Generation
from deepresearch.agents.rollout.engines.hf import HFEngine


def tiny_model_path(shared_data: Path, root: Path) -> Path:
    """The tiny model built from real questions, as every engine test uses it."""
    return build_tiny_model([shared_data / "qa" / "nq.jsonl"], out_dir=root / "tiny-model")


def chat_prompts(engine, shared_data: Path, count: int = 4) -> list[list[int]]:
    """Real questions rendered with the chat template: token ids of different lengths."""
    with (shared_data / "qa" / "nq.jsonl").open() as handle:
        questions = [json.loads(line)["question"] for _, line in zip(range(count), handle)]
    return [
        engine.tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, return_dict=False
        )
        for q in questions
    ]


def forward_logprobs(model, prompt: list[int], completion: list[int], temperature: float = 1.0) -> torch.Tensor:
    """log_softmax(logits / T) of each completion token, from one full forward pass (no KV cache)."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1 : -1].float() / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(completion).unsqueeze(-1)).squeeze(-1)


def expected_stop_cut(tokenizer, token_ids: list[int], stop: str) -> int | None:
    """Length of the output that ends with the token completing ``stop``, or None if it never appears."""
    for end in range(1, len(token_ids) + 1):
        if stop in tokenizer.decode(token_ids[:end], skip_special_tokens=True):
            return end
    return None


def spanning_stop(tokenizer, generation: Generation, position: int) -> str:
    """A stop string made of the end of one token and the start of the next: it completes mid-output."""
    left = tokenizer.decode(generation.token_ids[position : position + 1])
    right = tokenizer.decode(generation.token_ids[position + 1 : position + 2])
    return left[-2:] + right[:1]


@pytest.fixture(scope="module")
def model_path(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_path(shared_data, tmp_path_factory.mktemp("hf"))


@pytest.fixture(scope="module")
def engine(model_path: Path) -> HFEngine:
    return HFEngine(model_path)


@pytest.fixture(scope="module")
def prompts(engine: HFEngine, shared_data: Path) -> list[list[int]]:
    return chat_prompts(engine, shared_data)


GREEDY = SamplingConfig(max_new_tokens=20, temperature=0)


def test_batched_greedy_equals_one_by_one(engine, prompts):
    assert len({len(p) for p in prompts}) > 1, "prompts of different lengths exercise left padding"
    batched = engine.generate(prompts, GREEDY)
    for prompt, together in zip(prompts, batched):
        (alone,) = engine.generate([prompt], GREEDY)
        assert together.token_ids == alone.token_ids
        assert together.logprobs == pytest.approx(alone.logprobs, abs=1e-4)
        assert together.finish_reason == alone.finish_reason == "length"
        assert together.text == engine.tokenizer.decode(together.token_ids, skip_special_tokens=False)


def test_stop_string_ends_only_the_sequences_that_produce_it(engine, prompts):
    free = engine.generate(prompts, GREEDY)
    stop = spanning_stop(engine.tokenizer, free[0], position=5)
    stopped = engine.generate(prompts, SamplingConfig(max_new_tokens=20, temperature=0, stop=(stop,)))
    cuts = [expected_stop_cut(engine.tokenizer, g.token_ids, stop) for g in free]
    assert cuts[0] is not None and cuts[0] <= 7
    assert None in cuts, "pick prompts where some sequence never meets the stop string"
    for full, short, cut in zip(free, stopped, cuts):
        if cut is None:
            assert short.token_ids == full.token_ids and short.finish_reason == "length"
        else:
            assert short.token_ids == full.token_ids[:cut] and short.finish_reason == "stop"
            assert short.text.endswith(stop) or stop in short.text


def test_eos_ends_the_sequence_and_is_kept(model_path, prompts):
    model = AutoModelForCausalLM.from_pretrained(model_path)
    free = HFEngine(model_path).generate(prompts[:1], GREEDY)[0]
    model.generation_config.eos_token_id = free.token_ids[3]
    engine = HFEngine(model, tokenizer=HFEngine(model_path).tokenizer)
    first = free.token_ids.index(free.token_ids[3])
    (ended,) = engine.generate(prompts[:1], GREEDY)
    assert ended.token_ids == free.token_ids[: first + 1]
    assert ended.finish_reason == "eos"


@pytest.mark.parametrize("temperature", [0.0, 1.0, 0.7])
def test_logprobs_match_a_forward_pass(engine, prompts, temperature):
    sampling = SamplingConfig(max_new_tokens=16, temperature=temperature, seed=7)
    for prompt, generation in zip(prompts, engine.generate(prompts, sampling)):
        assert len(generation.logprobs) == len(generation.token_ids)
        reference = forward_logprobs(engine.model, prompt, generation.token_ids, temperature or 1.0)
        assert torch.allclose(torch.tensor(generation.logprobs), reference, atol=1e-3)


def test_top_k_logprobs_are_renormalised_over_the_kept_tokens(engine, prompts):
    temperature, top_k = 0.8, 5
    sampling = SamplingConfig(max_new_tokens=12, temperature=temperature, top_k=top_k, seed=3)
    prompt = prompts[0]
    (generation,) = engine.generate([prompt], sampling)
    ids = torch.tensor([prompt + generation.token_ids])
    with torch.no_grad():
        logits = engine.model(ids).logits[0, len(prompt) - 1 : -1] / temperature
    kept = torch.topk(logits, top_k, dim=-1)
    for step, token in enumerate(generation.token_ids):
        assert token in kept.indices[step].tolist(), "sampled outside the top-k"
        expected = logits[step, token] - torch.logsumexp(kept.values[step], dim=-1)
        assert generation.logprobs[step] == pytest.approx(expected.item(), abs=1e-3)


def test_top_p_keeps_sampling_inside_the_nucleus(engine, prompts):
    sampling = SamplingConfig(max_new_tokens=12, temperature=1.0, top_p=0.3, seed=5)
    (generation,) = engine.generate(prompts[:1], sampling)
    prompt = prompts[0]
    ids = torch.tensor([prompt + generation.token_ids])
    with torch.no_grad():
        probs = engine.model(ids).logits[0, len(prompt) - 1 : -1].softmax(dim=-1)
    for step, token in enumerate(generation.token_ids):
        more_likely = probs[step][probs[step] > probs[step, token]].sum().item()
        assert more_likely < 0.3, "a token outside the 0.3 nucleus was sampled"
    assert all(lp <= 0 for lp in generation.logprobs)


def test_seed_makes_sampling_reproducible(engine, prompts):
    sampling = SamplingConfig(max_new_tokens=12, temperature=1.0, seed=11)
    first = engine.generate(prompts, sampling)
    second = engine.generate(prompts, sampling)
    assert [g.token_ids for g in first] == [g.token_ids for g in second]
    other = engine.generate(prompts, SamplingConfig(max_new_tokens=12, temperature=1.0, seed=12))
    assert [g.token_ids for g in other] != [g.token_ids for g in first]


def test_sync_weights_loads_a_changed_model(model_path, engine, prompts):
    changed = AutoModelForCausalLM.from_pretrained(model_path)
    with torch.no_grad():
        for parameter in changed.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    reference = HFEngine(changed, tokenizer=engine.tokenizer).generate(prompts, GREEDY)
    synced = HFEngine(model_path)
    before = synced.generate(prompts, GREEDY)
    synced.sync_weights(changed.state_dict().items())
    after = synced.generate(prompts, GREEDY)
    assert [g.token_ids for g in after] == [g.token_ids for g in reference]
    assert [g.token_ids for g in after] != [g.token_ids for g in before]
    with pytest.raises(KeyError, match="no_such"):
        synced.sync_weights([("no_such.weight", torch.zeros(1))])


def test_bad_prompts_and_configs_are_clear_errors(engine):
    with pytest.raises(ValueError, match="empty"):
        engine.generate([[1, 2], []], GREEDY)
    with pytest.raises(ValueError, match="outside"):
        engine.generate([[1, 10**9]], GREEDY)
    with pytest.raises(ValueError, match="outside"):
        engine.generate([{"input_ids": [1, 2]}], GREEDY)
    with pytest.raises(TypeError, match="tuple"):
        SamplingConfig(stop="</search>")
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0)
    assert engine.generate([], GREEDY) == []


def test_make_engine_builds_the_transformers_engine(model_path, prompts):
    engine = make_engine("hf", model_path)
    assert isinstance(engine, HFEngine)
    engine.sleep()
    engine.wake()
    assert engine.generate(prompts[:1], GREEDY)[0].finish_reason == "length"
    with pytest.raises(ValueError, match="unknown engine kind"):
        make_engine("tgi", model_path)
