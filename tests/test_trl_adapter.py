"""Third-party trainers: TRL's GRPOTrainer through its rollout_func hook, and a plain torch loop on
``collate_episodes`` — env tokens masked out of the loss in both."""

from __future__ import annotations

import os

import gymnasium as gym
import pytest
import torch
from agents_helpers import HalfRightEngine

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.agents import RolloutConfig, TurnEncoder, collate_episodes, default_tiny_model, make_engine, run_rollouts
from deepresearch.agents.adapters.trl import TRLRolloutAdapter, env_reward
from deepresearch.agents.rollout.request import RolloutRequest
from deepresearch.agents.train.sft import SFTConfig, collect_oracle_trajectories, sft_train
from deepresearch.envs import load_qa
from deepresearch.envs.oracle import OraclePolicy


def import_trl():
    return pytest.importorskip("trl", reason="TRL not installed (pip install 'trl>=1.16')")


def make_env():
    return gym.make("DeepResearch-Wiki-v0", protocol="research", max_turns=2)


def shorter_is_better(completion_ids, **_):
    """A second reward that always varies, so GRPO advantages (and gradients) are non-zero in a few steps."""
    return [-len(ids) / 100 for ids in completion_ids]


def test_env_reward_needs_the_adapter_field():
    import_trl()
    assert env_reward(["a", "b"], env_reward=[1, 0.5]) == [1.0, 0.5]
    with pytest.raises(ValueError, match="TRLRolloutAdapter"):
        env_reward(["a"])


def test_conflicting_golds_for_one_question_are_an_error():
    items = load_qa("demo", split="train", limit=1)
    twin = type(items[0])(id="other", question=items[0].question, golden_answers=("something else",))
    with pytest.raises(ValueError, match="different gold answers"):
        TRLRolloutAdapter(make_env, [items[0], twin])


@pytest.mark.slow
def test_grpo_trainer_trains_on_env_episodes_with_env_tokens_masked(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trl = import_trl()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    path = default_tiny_model()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    warm_env = make_env()  # a short warm start so the policy searches and gets env text back
    episodes = collect_oracle_trajectories(warm_env, 32, OraclePolicy(warm_env.unwrapped.protocol))
    sft_train(model, tokenizer, episodes, SFTConfig(steps=60, batch_size=4, learning_rate=3e-3), TurnEncoder(tokenizer, "text"))

    adapter = TRLRolloutAdapter(make_env, load_qa("demo", split="train", limit=8), RolloutConfig(max_new_tokens_per_turn=24, max_response_tokens=96))
    captured = []

    class Recording(trl.GRPOTrainer):
        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            captured.append({key: output[key].clone() for key in ("completion_ids", "completion_mask", "tool_mask")})
            return output

    args = trl.GRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4, max_steps=2, learning_rate=1e-3,
        logging_steps=1, report_to=[], use_cpu=True, max_completion_length=96, save_strategy="no",
    )
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    trainer = Recording(model=model, reward_funcs=[env_reward, shorter_is_better], args=args,
                        train_dataset=adapter.dataset(), processing_class=tokenizer, rollout_func=adapter)
    trainer.train()

    assert captured and all(step["tool_mask"] is not None for step in captured)
    env_tokens = 0
    for step in captured:
        masked_out = (step["completion_mask"] == 1) & (step["tool_mask"] == 0)
        env_tokens += int(masked_out.sum())
        for row in range(step["completion_ids"].shape[0]):
            env_text = tokenizer.decode(step["completion_ids"][row][masked_out[row]])
            # Everything TRL masked is env-written: result blocks (or format feedback), never policy text.
            assert not env_text or env_text.strip().startswith("<result>"), env_text[:120]
    assert env_tokens > 0  # the policy searched and env text really was masked
    assert any(h.get("grad_norm", 0) > 0 for h in trainer.state.log_history)
    changed = sum(float((before[name] - tensor).abs().sum()) for name, tensor in model.state_dict().items())
    assert changed > 0 and all(torch.isfinite(t).all() for t in model.state_dict().values())


class RecordingHalfRightEngine(HalfRightEngine):
    """``HalfRightEngine`` over the trainer's live model, keeping what it served and whether it was right."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.served: list[tuple[list[int], list[int], bool, float]] = []  # prompt, ids, right, logprob when served

    def generate(self, prompts, sampling):
        outputs = super().generate(prompts, sampling)
        for prompt, output in zip(prompts, outputs):
            right = "Nowhere At All" not in self.tokenizer.decode(output.token_ids)
            self.served.append((list(prompt), list(output.token_ids), right, sum(output.logprobs)))
        return outputs


def sequence_logprob(model, prompt: list[int], ids: list[int]) -> float:
    with torch.no_grad():
        logits = model(torch.tensor([prompt + ids])).logits[0, len(prompt) - 1 : -1].float()
    return float(torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids)[:, None]).sum())


@pytest.mark.slow
def test_a_trl_step_on_mixed_env_rewards_moves_towards_the_rewarded_completions(tmp_path):
    """Each group: two copies answer right (the env scores 1.0), two wrong (0.1). TRL must get
    those rewards from the env (non-zero advantages) and its SGD step must raise the right
    completions' logprob relative to the wrong ones' (to first order the gap grows by
    lr * A * |grad(right) - grad(wrong)|^2); a reward that did not reach TRL leaves it flat."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trl = import_trl()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    path = default_tiny_model()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    items = load_qa("demo", split="train", limit=1)
    protocol = make_env().unwrapped.protocol
    engine = RecordingHalfRightEngine(model, tokenizer, {item.question: item.golden_answers[0] for item in items}, protocol)
    adapter = TRLRolloutAdapter(make_env, items, RolloutConfig(max_new_tokens_per_turn=48, max_response_tokens=96), make_engine=lambda trainer: engine)
    advantages = []

    class Recording(trl.GRPOTrainer):
        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            advantages.append(output["advantages"].clone())
            return output

    args = trl.GRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4, max_steps=1, learning_rate=1e-2, optim="sgd",
        logging_steps=1, report_to=[], use_cpu=True, max_completion_length=96, save_strategy="no",
    )  # fmt: skip
    trainer = Recording(model=model, reward_funcs=[env_reward], args=args, train_dataset=adapter.dataset(), processing_class=tokenizer, rollout_func=adapter)
    trainer.train()

    rewards = [log["rewards/env_reward/mean"] for log in trainer.state.log_history if "rewards/env_reward/mean" in log]
    assert rewards == [pytest.approx(0.55)]  # (1.0 + 0.1) / 2: the env's ReSearch rewards, as TRL logged them
    assert sorted(right for _, _, right, _ in engine.served) == [False, False, True, True]
    assert advantages and (advantages[0] > 0).sum() == 2 and (advantages[0] < 0).sum() == 2
    change = {True: [], False: []}  # logprob after the step minus when served (before it)
    for prompt, ids, right, served in engine.served:
        change[right].append(sequence_logprob(model, prompt, ids) - served)
    gain = sum(change[True]) / 2 - sum(change[False]) / 2
    assert gain > 1e-4, change


def test_a_plain_torch_loop_consumes_collated_episodes():
    """What docs/adapters.md shows an external trainer doing with ``collate_episodes``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = default_tiny_model()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    engine = make_engine("hf", model, tokenizer=tokenizer)
    envs = [make_env() for _ in range(4)]
    resets = [{"options": {"index": i // 2}} for i in range(4)]  # 2 questions x 2 samples
    config = RolloutConfig(max_new_tokens_per_turn=12, max_response_tokens=64, temperature=1.0, seed=0)
    episodes, _ = run_rollouts(RolloutRequest(engine, envs, resets, [i // 2 for i in range(4)], config, TurnEncoder(tokenizer, "text")))
    batch = collate_episodes(episodes, pad_token_id=tokenizer.pad_token_id or 0)

    env_tokens = batch.attention_mask.bool() & (batch.loss_mask == 0)
    prompt_lengths = torch.tensor([len(e.prompt_ids) for e in episodes])
    after_prompt = torch.arange(batch.input_ids.shape[1])[None, :] >= prompt_lengths[:, None]
    assert (env_tokens & after_prompt).any() and batch.loss_mask.any()  # the untrained policy got format feedback: env text

    # The external trainer's step: log p(input_ids[:, 1:]) from logits[:, :-1], masked by loss_mask[:, 1:].
    model.train()
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    logits.retain_grad()
    logprobs = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
    mask = batch.loss_mask[:, 1:].float()
    # Rows line up: the trainer's logprobs of the sampled ids are the engine's rollout logprobs.
    assert torch.allclose(logprobs[mask.bool()], batch.rollout_logprobs[:, 1:][mask.bool()], atol=1e-3)
    advantages = batch.rewards - batch.rewards.mean()
    loss = -((advantages[:, None] + 1.0) * logprobs * mask).sum() / mask.sum()
    loss.backward()
    grad_at = logits.grad[:, :-1].abs().sum(-1)
    assert (grad_at[mask == 0] == 0).all() and (grad_at[mask == 1] > 0).all()  # env and prompt ids get no gradient
    torch.optim.SGD(model.parameters(), lr=1e-2).step()
    assert torch.isfinite(loss)
