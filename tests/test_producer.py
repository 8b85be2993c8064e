"""Rollouts overlapping training with bounded staleness, DAPO's dynamic sampling and overlong shaping."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from agents_helpers import HalfRightEngine, tiny_policy
from test_agents_trainer import TINY_RUN

from deepresearch.agents import GRPOConfig, GRPOTrainer, read_metrics
from deepresearch.agents.grpo.dynamic_sampling import informative, uninformative_groups
from deepresearch.agents.grpo.overlong import OverlongConfig, apply_overlong, filtered_rows, overlong_penalty, shaped_rewards
from deepresearch.agents.rollout.batch import collate_episodes
from deepresearch.agents.rollout.episode import Episode
from deepresearch.agents.train.checkpoint import load_trainer_state
from deepresearch.agents.train.config import STALE_ROLLOUT_TIS_CAP
from deepresearch.agents.train.sampler import QuestionSampler
from deepresearch.envs import load_qa


def golds() -> dict[str, str]:
    return {item.question: item.golden_answers[0] for item in load_qa("demo", split="train") + load_qa("demo", split="test")}


def expected_questions(steps: int, per_step: int) -> list[list[int]]:
    sampler = QuestionSampler(len(load_qa("demo", split="train")), seed=0)
    return [sampler.take(per_step) for _ in range(steps)]


def test_stale_rollouts_turn_the_importance_correction_on():
    assert GRPOConfig(max_staleness=1).update.loss.tis_cap == STALE_ROLLOUT_TIS_CAP
    assert GRPOConfig().update.loss.tis_cap is None
    config = GRPOConfig(max_staleness=2, dynamic_sampling_rounds=1, overlong=OverlongConfig(filter=True, penalty_buffer=8))
    assert GRPOConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError):
        GRPOConfig(max_staleness=-1)


@pytest.mark.slow
def test_rollouts_one_version_ahead_train_log_staleness_and_checkpoint_the_right_data_position(tmp_path):
    config = GRPOConfig(steps=4, eval_every=2, save_every=1, keep_checkpoints=4, max_staleness=1, output_dir=str(tmp_path), **TINY_RUN)
    trainer = GRPOTrainer(config, log=lambda line: None)
    assert not trainer.engine_shares_model, "with overlap the engine must not generate with the model being trained"
    engine_model, _ = tiny_policy()[:2]
    trainer.engine = HalfRightEngine(engine_model, trainer.tokenizer, golds(), trainer.envs[0].unwrapped.protocol)
    history = trainer.train()

    assert [m["data/questions"] for m in history] == expected_questions(4, 2)
    staleness = [m["staleness/max"] for m in history]
    assert all(0 <= s <= 1 for s in staleness) and staleness[0] == 0
    assert 1 in staleness, "the producer should have generated a batch while the trainer updated"
    for metrics in history:
        assert metrics["reward/mean"] == pytest.approx(0.55) and metrics["grpo/zero_variance_groups"] == 0
        assert {"importance/p50", "importance/max", "tis_weight_mean", "rollout/engine_busy"} <= set(metrics)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2, 3, 4] and "eval/reward" in records[2]
    # The producer ran ahead, yet each checkpoint holds the sampler position of its own step.
    for step in (1, 2, 3):
        state = load_trainer_state(tmp_path / "checkpoints" / f"checkpoint-{step:07d}")["sampler"]
        reference = QuestionSampler(state["num_questions"], seed=0)
        reference.take(2 * step)
        assert (state["epoch"], state["position"]) == (reference.epoch, reference.position)


@pytest.mark.slow
def test_steps_that_learn_nothing_still_advance_the_producer(tmp_path):
    config = GRPOConfig(steps=3, eval_every=0, save_every=0, max_staleness=1, filter_zero_variance=True, output_dir=str(tmp_path), **TINY_RUN)
    trainer = GRPOTrainer(config, log=lambda line: None)
    engine_model, _ = tiny_policy()[:2]
    always_wrong = {question: "Nowhere At All" for question in golds()}  # every group flat: every step skipped
    trainer.engine = HalfRightEngine(engine_model, trainer.tokenizer, always_wrong, trainer.envs[0].unwrapped.protocol)
    history: list[dict[str, Any]] = []
    training = threading.Thread(target=lambda: history.extend(trainer.train()))
    training.start()
    training.join(timeout=600)
    assert not training.is_alive(), "the producer waited for a policy version that a skipped step never published"
    assert [m.get("grpo/skipped") for m in history] == [1, 1, 1]
    assert max(m["staleness/max"] for m in history) <= 1


class MixedOnEvenEngine(HalfRightEngine):
    """Half right on even-numbered training questions (mixed groups), always wrong on odd ones (flat groups)."""

    def __init__(self, model: Any, tokenizer: Any, protocol: Any) -> None:
        self.items = load_qa("demo", split="train")
        super().__init__(model, tokenizer, {item.question: item.golden_answers[0] for item in self.items}, protocol)
        self.index = {item.question: index for index, item in enumerate(self.items)}

    def generate(self, prompts, sampling):
        outputs = super().generate(prompts, sampling)
        for prompt, output in zip(prompts, outputs):
            question = next(q for q in self.golds if q in self.tokenizer.decode(prompt))
            if self.index[question] % 2 == 1:
                wrong = self.tokenizer(self.protocol.answer_action("Nowhere At All"), add_special_tokens=False)["input_ids"]
                output.token_ids, output.logprobs = wrong, [-1.0] * len(wrong)
        return outputs


@pytest.mark.slow
def test_dynamic_sampling_replaces_flat_groups_with_new_questions_up_to_the_limit(tmp_path):
    config = GRPOConfig(**{**TINY_RUN, "questions_per_step": 4}, steps=1, eval_every=0, save_every=0, dynamic_sampling_rounds=2, output_dir=str(tmp_path))
    trainer = GRPOTrainer(config, log=lambda line: None)
    trainer.engine = MixedOnEvenEngine(trainer.model, trainer.tokenizer, trainer.envs[0].unwrapped.protocol)
    produced = trainer.producer.next_batch(0)

    # Replay the rule on the sampler's order: odd questions are flat and get replaced, twice at most.
    sampler = QuestionSampler(len(load_qa("demo", split="train")), seed=0)
    asked = sampler.take(4)
    flat = [q for q in asked if q % 2 == 1]
    refilled = 0
    for _ in range(2):
        if not flat:
            break
        extra = sampler.take(len(flat))
        asked += extra
        refilled += len(extra)
        flat = [q for q in extra if q % 2 == 1]
    assert produced.questions == asked
    kept = {question for _, _, question in {e.group_id for e in produced.episodes}}
    assert kept == {q for q in asked if q % 2 == 0}
    assert produced.metrics["dynamic_sampling/refilled_groups"] == refilled > 0
    assert produced.metrics["dynamic_sampling/kept_groups"] == len(kept)
    assert not uninformative_groups(produced.episodes)


def episode(group: int, reward: float, response: int, finish: str) -> Episode:
    result = Episode(group_id=group, prompt_ids=[1], reward=reward, finish_reason=finish)
    result.append([2] * response, True)
    return result


def test_overlong_penalty_and_filter_follow_dapo():
    config = OverlongConfig(penalty_buffer=20, penalty_factor=1.0)
    assert [overlong_penalty(n, 100, config) for n in (50, 80, 90, 100)] == [0.0, 0.0, -0.5, -1.0]
    assert overlong_penalty(100, 100, OverlongConfig()) == 0.0
    episodes = [episode(0, 1.0, 70, "terminated"), episode(0, 0.0, 100, "length"), episode(1, 0.5, 95, "terminated")]
    assert shaped_rewards(episodes, 100, config) == pytest.approx([1.0, -1.0, 0.5 - 0.75])
    assert filtered_rows(episodes, OverlongConfig(filter=True)) == [1] and filtered_rows(episodes, config) == []


def test_uninformative_groups_are_the_ones_with_one_reward():
    episodes = [episode(0, 1.0, 1, "terminated"), episode(0, 1.0, 1, "terminated"), episode(1, 0.0, 1, "terminated"), episode(1, 1.0, 1, "terminated"), episode(2, 0.3, 1, "terminated")]
    assert uninformative_groups(episodes) == {0, 2}
    assert [e.group_id for e in informative(episodes)] == [1, 1]


def test_overlong_shaping_of_a_batch_zeroes_the_loss_of_cut_off_episodes():
    episodes = [episode(0, 1.0, 3, "terminated"), episode(0, 0.0, 5, "length")]
    batch = collate_episodes(episodes, pad_token_id=0)
    metrics = apply_overlong(batch, episodes, OverlongConfig(filter=True, penalty_buffer=2), max_response_tokens=5)
    assert batch.loss_mask[1].sum() == 0 and batch.loss_mask[0].tolist() == [0, 1, 1, 1, 0, 0]
    assert batch.rewards.tolist() == pytest.approx([1.0, -1.0])
    assert metrics == {"overlong/filtered": 1, "overlong/reward_penalty": pytest.approx(-0.5)}
