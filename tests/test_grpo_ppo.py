"""PPO epochs and mini-batches: several optimizer steps per rollout batch, and the clip then binds
exactly where the ratio leaves ``[1 - eps_low, 1 + eps_high]``."""

from __future__ import annotations

import pytest
import torch
from agents_helpers import tiny_policy

from deepresearch.agents import collate_episodes, group_advantages
from deepresearch.agents.grpo.importance import importance_weight_stats
from deepresearch.agents.grpo.loss import PolicyLossConfig
from deepresearch.agents.grpo.update import StepShare, UpdateConfig, UpdatePlan, grpo_update, token_logprobs
from deepresearch.agents.rollout.episode import Episode

ANSWERS = [("Phokaelmath", 1.0), ("Tarsenby", 0.0), ("Velmora", 1.0), ("Quistad", 0.0)]


def answer_batch(tokenizer, engine_shift: float = 0.0, model=None):
    """Two groups of two answers to one question; rollout logprobs are the model's own plus ``engine_shift``."""
    prompt = tokenizer("Where was Jerved Gruvar born?", add_special_tokens=False)["input_ids"]
    episodes = []
    for index, (name, reward) in enumerate(ANSWERS):
        episode = Episode(group_id=index // 2, prompt_ids=list(prompt))
        ids = tokenizer(f"<answer> \\boxed{{{name}}} </answer>", add_special_tokens=False)["input_ids"]
        episode.append(ids, True, [0.0] * len(ids))
        episode.reward = reward
        episodes.append(episode)
    batch = collate_episodes(episodes, tokenizer.pad_token_id)
    if model is not None:
        with torch.no_grad():
            own = token_logprobs(model, batch, 1.0)[0]
        mask = batch.loss_mask[:, 1:].bool()
        batch.rollout_logprobs[:, 1:] = torch.where(mask, own + engine_shift, 0.0)
    return batch


class RecordingSGD(torch.optim.SGD):
    """SGD that records the whole batch's logprobs before each step (what that step's ratio is measured at)."""

    def __init__(self, model, batch, lr):
        super().__init__(model.parameters(), lr=lr)
        self.model, self.batch, self.before_step = model, batch, []

    def step(self, closure=None):
        with torch.no_grad():
            self.before_step.append(token_logprobs(self.model, self.batch, 1.0)[0])
        return super().step(closure)


def test_one_step_per_batch_is_on_policy_and_never_clips():
    model, tokenizer, _ = tiny_policy()
    batch = answer_batch(tokenizer, model=model)
    advantages = group_advantages(batch.rewards, batch.group_ids).advantages
    metrics = grpo_update(model, torch.optim.SGD(model.parameters(), lr=0.5), batch, advantages, UpdateConfig())
    assert metrics["optimizer_steps"] == 1
    assert metrics["ratio_mean"] == pytest.approx(1.0) and metrics["clip_frac_high"] == metrics["clip_frac_low"] == 0.0


def test_several_mini_batches_clip_the_ratio_exactly_where_it_leaves_the_range():
    model, tokenizer, _ = tiny_policy()
    batch = answer_batch(tokenizer, model=model)
    advantages = group_advantages(batch.rewards, batch.group_ids).advantages
    loss = PolicyLossConfig(clip_eps_low=0.05, clip_eps_high=0.05)
    config = UpdateConfig(micro_batch_size=1, ppo_epochs=2, mini_batch_size=2, loss=loss)
    optimizer = RecordingSGD(model, batch, lr=2.0)
    with torch.no_grad():
        old = token_logprobs(model, batch, 1.0)[0]
    metrics = grpo_update(model, optimizer, batch, advantages, config)

    steps = [list(rows) for _ in range(config.ppo_epochs) for rows in UpdatePlan.of(batch, config).rows]
    assert metrics["optimizer_steps"] == len(steps) == len(optimizer.before_step) == 4
    mask = batch.loss_mask[:, 1:].bool()
    high = low = tokens = 0
    for rows, current in zip(steps, optimizer.before_step):
        ratio = torch.exp(current[rows] - old[rows])
        adv = advantages[rows].unsqueeze(1)
        high += int((((ratio > 1 + loss.clip_eps_high) & (adv > 0)) & mask[rows]).sum())
        low += int((((ratio < 1 - loss.clip_eps_low) & (adv < 0)) & mask[rows]).sum())
        tokens += int(mask[rows].sum())
    assert high > 0 and low > 0, "the later steps should move the ratio out of the clip range on both sides"
    assert metrics["clip_frac_high"] == pytest.approx(high / tokens, abs=1e-6)
    assert metrics["clip_frac_low"] == pytest.approx(low / tokens, abs=1e-6)


def test_engine_old_logprobs_measure_the_ratio_against_the_rollout():
    model, tokenizer, _ = tiny_policy()
    batch = answer_batch(tokenizer, engine_shift=-1.0, model=model)  # the engine gave every token e^-1 of the trainer's probability
    advantages = group_advantages(batch.rewards, batch.group_ids).advantages
    config = UpdateConfig(old_logprobs="engine")
    metrics = grpo_update(model, torch.optim.SGD(model.parameters(), lr=1e-6), batch, advantages, config)
    mask = batch.loss_mask[:, 1:].bool()
    positive_share = float((mask & (advantages > 0).unsqueeze(1)).sum() / mask.sum())
    assert metrics["ratio_mean"] == pytest.approx(torch.e, rel=1e-3)
    assert metrics["clip_frac_high"] == pytest.approx(positive_share) and 0 < positive_share < 1
    assert metrics["importance/p50"] == pytest.approx(1.0)  # old == rollout here


def test_importance_weights_are_logged_as_a_distribution():
    stats = importance_weight_stats(torch.log(torch.tensor([1.0, 1.0, 2.0, 0.5])))
    assert stats["importance/mean"] == pytest.approx(1.125) and stats["importance/p50"] == pytest.approx(1.0)
    assert (stats["importance/min"], stats["importance/max"]) == pytest.approx((0.5, 2.0))
    assert importance_weight_stats(torch.zeros(0)) == {}


def test_progress_counts_every_forward_pass():
    _, tokenizer, _ = tiny_policy()
    batch = answer_batch(tokenizer)
    config = UpdateConfig(micro_batch_size=2, ppo_epochs=3, mini_batch_size=3)
    assert len(batch) == 4 and UpdatePlan.of(batch, config).rows == ((0, 1, 2), (3,))
    assert UpdatePlan.of(batch, UpdateConfig(micro_batch_size=2)).rows == ((0, 1, 2, 3),)
    assert UpdatePlan.of(batch, config).training_passes(config.ppo_epochs) == 3 * (2 + 1)
    with pytest.raises(ValueError):
        UpdateConfig(ppo_epochs=0)


def test_processes_take_the_steps_one_process_would():
    """Rows 0-4 on process 0 and 5-7 on process 1 (process 2 has none): mini-batches of 3 are
    rows [0-2], [3-5], [6-7] of the whole batch, as in one process."""
    tokens = [[1, 2, 3, 4, 5], [6, 7, 8], []]
    config = UpdateConfig(micro_batch_size=2, mini_batch_size=3)
    plans = [UpdatePlan.across(tokens, rank, config) for rank in range(3)]
    assert [plan.rows for plan in plans] == [((0, 1, 2), (3, 4), ()), ((), (0,), (1, 2)), ((), (), ())]
    steps = (StepShare(1 + 2 + 3, 3, 2), StepShare(4 + 5 + 6, 3, 1), StepShare(7 + 8, 2, 1))
    assert all(plan.steps == steps and plan.full_passes == 3 for plan in plans)
    alone = UpdatePlan.across([[t for part in tokens for t in part]], 0, config)
    assert [s.total_tokens for s in alone.steps] == [s.total_tokens for s in steps] and alone.rows == ((0, 1, 2), (3, 4, 5), (6, 7))
    assert UpdatePlan.across([[], []], 0, config).steps == ()
