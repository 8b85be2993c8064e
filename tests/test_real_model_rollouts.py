"""SmolLM2-135M-Instruct through rollouts, weight sync and GRPO updates, on vLLM.

One vLLM engine for the module (start-up dominates); every test that syncs other weights
into it puts the original ones back. Sized for two CPU cores: short turns, few turns.
"""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from agents_helpers import FixedOutputEngine, vllm_engine_or_skip
from test_engines_hf import forward_logprobs

import deepresearch  # noqa: F401
from deepresearch.agents import RolloutConfig, TurnEncoder, collate_episodes, group_advantages, load_policy, run_rollouts
from deepresearch.agents.grpo.masked_forward import _decoder_and_head
from deepresearch.agents.grpo.update import UpdateConfig, grpo_update, micro_batches
from deepresearch.agents.models.loading import engine_weights
from deepresearch.agents.rollout.engines import SamplingConfig
from deepresearch.agents.rollout.engines.base import Generation
from deepresearch.agents.rollout.engines.hf import HFEngine
from deepresearch.agents.rollout.request import RolloutRequest
from deepresearch.envs import get_protocol

pytestmark = [pytest.mark.slow, pytest.mark.real_model, pytest.mark.vllm]

GREEDY = SamplingConfig(max_new_tokens=32, temperature=0)
EPISODES = 32


@pytest.fixture(scope="module")
def engine(smollm2: Path):
    return vllm_engine_or_skip(smollm2, max_model_len=4096)


@pytest.fixture(scope="module")
def reference(smollm2: Path) -> HFEngine:
    return HFEngine(smollm2)


@pytest.fixture(scope="module")
def wiki(shared_data: Path):
    """A DeepResearch-Wiki-v0 factory over the shared wiki18_sample (BM25) and NQ."""

    def make(protocol: str, **kwargs):
        settings = {"top_k": 2, "max_turns": 2, "max_observation_chars": 1200, **kwargs}
        return gym.make("DeepResearch-Wiki-v0", protocol=protocol, corpus=str(shared_data / "wiki18_sample" / "passages.jsonl"),
                        retriever="bm25", dataset=str(shared_data / "qa" / "nq.jsonl"), **settings)

    return make


@pytest.fixture(scope="module")
def prompts(reference: HFEngine, shared_data: Path) -> list[list[int]]:
    from test_engines_hf import chat_prompts

    return chat_prompts(reference, shared_data, count=8)


def policy_runs(episode) -> list[list[int]]:
    """The response's runs of sampled ids (loss_mask 1), in order."""
    runs: list[list[int]] = []
    previous = 0
    for token, trainable in zip(episode.response_ids, episode.loss_mask):
        if trainable:
            if not previous:
                runs.append([])
            runs[-1].append(token)
        previous = trainable
    return runs


def spans(episode, source: str) -> list[str]:
    return [episode.transcript[s["start"] : s["end"]] for s in episode.segments if s["source"] == source]


def chat_rendering(tokenizer, episode, protocol) -> str:
    """The chat template's own rendering of the episode as a conversation: the prompt's
    messages, each policy turn as an assistant message, each tokenised env reply as a tool
    message (a last reply that ended the episode is never tokenised)."""
    messages = list(protocol.build_prompt(episode.question).messages)
    policy, env = episode.policy_texts, [text for text in spans(episode, "env") if text]
    if episode.untokenized_tail:
        assert env.pop() == episode.untokenized_tail
    for index, action in enumerate(policy):
        messages.append({"role": "assistant", "content": action})
        if index < len(env):
            body = env[index].removeprefix(protocol.observation_prefix).removesuffix(protocol.observation_suffix)
            messages.append({"role": "tool", "content": body})
    return tokenizer.apply_chat_template(messages, tokenize=False)


@pytest.mark.parametrize("protocol_name", ["research", "search_r1", "tool_call"])
def test_sampled_episodes_are_token_in_token_out(engine, wiki, protocol_name):
    protocol = get_protocol(protocol_name)
    envs = [wiki(protocol_name) for _ in range(EPISODES)]
    encoder = TurnEncoder.for_tokenizer(engine.tokenizer)
    assert encoder.mode == "chat"
    resets = [{"options": {"index": slot // 4}} for slot in range(EPISODES)]
    config = RolloutConfig(max_new_tokens_per_turn=40, max_response_tokens=1024, temperature=1.0, seed=7)
    episodes, stats = run_rollouts(RolloutRequest(engine, envs, resets, [slot // 4 for slot in range(EPISODES)], config, encoder))
    assert stats.dropped == 0, stats.drop_reasons[:3]
    assert len(episodes) == EPISODES and sum(e.turns for e in episodes) > EPISODES  # multi-turn
    tokenizer, eos = engine.tokenizer, engine.end_of_turn_ids
    for episode in episodes:
        runs = policy_runs(episode)
        decoded = [tokenizer.decode(run[:-1] if run[-1] in eos else run) for run in runs]
        assert [text for text in decoded if text] == [text for text in spans(episode, "policy") if text]
        assert episode.rollout_logprobs and all(lp == 0.0 for lp, m in zip(episode.rollout_logprobs, episode.loss_mask) if not m)
        text = tokenizer.decode(episode.input_ids)
        if protocol.observation_role == "tool":
            # Env text enters as the template's tool turns, and every turn is closed exactly once.
            expected = chat_rendering(tokenizer, episode, protocol)
            assert expected.startswith(text) and expected[len(text) :] in ("\n", "<|im_end|>\n")
        else:
            # Env text continues the assistant turn: decoding the response gives the transcript back.
            response = tokenizer.decode([t for t in episode.response_ids if t not in eos])
            assert response + episode.untokenized_tail == episode.transcript[episode.segments[0]["end"] :]


def test_greedy_matches_transformers_and_again_after_syncing_a_perturbed_copy(engine, reference, prompts, smollm2):
    before = engine.generate(prompts, GREEDY)
    assert [g.token_ids for g in before] == [g.token_ids for g in reference.generate(prompts, GREEDY)]
    perturbed, _ = load_policy(smollm2, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in perturbed.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * parameter.std() * 0.05)
    try:
        engine.sync_weights(perturbed.state_dict().items())
        after = engine.generate(prompts, GREEDY)
        expected = HFEngine(perturbed, tokenizer=reference.tokenizer).generate(prompts, GREEDY)
        assert [g.token_ids for g in after] == [g.token_ids for g in expected]
        assert [g.token_ids for g in after] != [g.token_ids for g in before]
        for mine, other in zip(after, expected):
            assert mine.logprobs == pytest.approx(other.logprobs, abs=2e-3)
    finally:
        engine.sync_weights(reference.model.state_dict().items())
    assert [g.token_ids for g in engine.generate(prompts, GREEDY)] == [g.token_ids for g in before]


class SearchThenAnswerEngine(FixedOutputEngine):
    """Searches the question, then answers: right in even batch slots, wrong in odd ones, so
    each group of two gets rewards 1 and 0. Logprobs come from the model being trained."""

    def __init__(self, model, tokenizer, golds: dict[str, str], protocol) -> None:
        self.model, self.tokenizer, self.golds, self.protocol = model, tokenizer, golds, protocol

    def generate(self, prompts, sampling):
        outputs = []
        for slot, prompt in enumerate(prompts):
            context = self.tokenizer.decode(prompt)
            question = next(q for q in self.golds if q in context)
            if self.protocol.tags.observation in context.split("<|im_start|>assistant")[-1]:
                text = self.protocol.answer_action(self.golds[question] if slot % 2 == 0 else "Nowhere At All")
            else:
                text = self.protocol.search_action(question)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            outputs.append(Generation(ids, forward_logprobs(self.model, prompt, ids).tolist(), text, "stop"))
        return outputs


@pytest.mark.parametrize("lora_rank", [8, 0], ids=["lora", "full"])
def test_one_grpo_step_on_real_episodes(engine, reference, wiki, prompts, smollm2, lora_rank):
    model, tokenizer = load_policy(smollm2, torch.device("cpu"), lora_rank=lora_rank)
    protocol = get_protocol("search_r1")
    envs = [wiki("search_r1", top_k=1, max_observation_chars=600, max_turns=3) for _ in range(4)]
    questions = [envs[0].unwrapped.questions[index] for index in (0, 1)]
    golds = {item.question: item.golden_answers[0] for item in questions}
    scripted = SearchThenAnswerEngine(model, tokenizer, golds, protocol)
    encoder = TurnEncoder.for_tokenizer(tokenizer)
    resets = [{"options": {"index": slot // 2}} for slot in range(4)]
    episodes, stats = run_rollouts(RolloutRequest(scripted, envs, resets, [slot // 2 for slot in range(4)], RolloutConfig(max_response_tokens=1024), encoder))
    assert stats.dropped == 0 and [e.reward for e in episodes] == [1.0, 0.0, 1.0, 0.0]
    assert all(e.searches == 1 and 0 in e.loss_mask for e in episodes)  # env tokens inside the response

    batch = collate_episodes(episodes, tokenizer.pad_token_id)
    advantages = group_advantages(batch.rewards, batch.group_ids, True, expected_group_size=2).advantages
    decoder, _ = _decoder_and_head(model)
    captured = []

    def keep_hidden_grad(module, inputs, output) -> None:
        output.last_hidden_state.retain_grad()
        captured.append(output.last_hidden_state)

    hook = decoder.register_forward_hook(keep_hidden_grad)
    before = {name: tensor.clone() for name, tensor in engine_weights(model)}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3 if lora_rank else 1e-4)
    try:
        metrics = grpo_update(model, optimizer, batch, advantages, UpdateConfig(micro_batch_size=len(batch)))
    finally:
        hook.remove()
    assert math.isfinite(metrics["loss"]) and metrics["grad_norm"] > 0

    # Gradient reaches the decoder's output only where a policy token is predicted.
    (hidden,) = captured
    targets = batch.select(micro_batches(batch, len(batch))[0]).loss_mask[:, 1:]
    grad = hidden.grad[:, :-1].abs().sum(-1)
    assert float(grad[targets == 0].max()) == 0.0 and float(hidden.grad[:, -1].abs().max()) == 0.0
    assert bool((grad[targets == 1] > 0).all())

    after = dict(engine_weights(model))
    assert after.keys() == before.keys()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert changed and (lora_rank == 0 or all("layers" in name for name in changed))

    # The engine sees the new weights: its logprobs are the trained model's, not the old ones.
    prompts, short = prompts[:4], SamplingConfig(max_new_tokens=16, temperature=0)
    old = engine.generate(prompts, short)
    try:
        engine.sync_weights(after.items())
        new = engine.generate(prompts, short)
    finally:
        engine.sync_weights(reference.model.state_dict().items())
    model.eval()
    for prompt, generation, stale in zip(prompts, new, old):
        expected = forward_logprobs(model, prompt, generation.token_ids)
        assert torch.allclose(torch.tensor(generation.logprobs), expected, atol=2e-3)
    assert any(
        g.token_ids != s.token_ids or not torch.allclose(torch.tensor(g.logprobs), torch.tensor(s.logprobs), atol=1e-2)
        for g, s in zip(new, old)
    )
