"""The GRPO trainer end to end on the tiny model (resume after kill -9: tests/test_distributed.py)."""

from __future__ import annotations

import json

import pytest
from agents_helpers import HalfRightEngine, tiny_policy

from deepresearch.agents import GRPOConfig, GRPOTrainer, SFTConfig, TurnEncoder, read_metrics, sft_train
from deepresearch.agents.rollout.runner import RolloutConfig
from deepresearch.agents.train.checkpoint import complete_checkpoints
from deepresearch.agents.train.config import OptimizerConfig
from deepresearch.agents.train.sft import encode_trajectory, lr_factor
from deepresearch.agents.trajectories import Trajectory, Turn

TINY_RUN = dict(
    engine="hf",
    group_size=2,
    questions_per_step=2,
    rollout=RolloutConfig(max_new_tokens_per_turn=8, max_response_tokens=48),
    optimizer=OptimizerConfig(learning_rate=1e-3),
    eval_questions=2,
    prompt_mode="text",
)


def test_encode_trajectory_masks_prompt_and_env_text():
    _, tokenizer, _ = tiny_policy()
    encoder = TurnEncoder(tokenizer, "text")
    trajectory = Trajectory("Question?", [], [Turn("policy", "<search> a </search>"), Turn("env", "\n<result>\nb\n</result>\n"), Turn("policy", "<answer> c </answer>")])
    ids, mask = encode_trajectory(trajectory, encoder, tokenizer.eos_token_id)
    policy_ids = [i for i, m in zip(ids, mask) if m]
    assert tokenizer.decode(policy_ids) == "<search> a </search><answer> c </answer>" + tokenizer.eos_token
    assert tokenizer.decode([i for i, m in zip(ids, mask) if not m]) == "Question?\n<result>\nb\n</result>\n"


def test_sft_lowers_the_loss_on_policy_tokens():
    model, tokenizer, _ = tiny_policy()
    trajectory = Trajectory("Q: where?", [], [Turn("policy", "<search> Jerved Gruvar born </search>"), Turn("env", "\n<result>\nx\n</result>\n"), Turn("policy", "<answer> \\boxed{Phokaelmath} </answer>")])
    losses = sft_train(model, tokenizer, [trajectory], SFTConfig(steps=30, batch_size=2, learning_rate=3e-3), TurnEncoder(tokenizer, "text"))
    assert losses[-1] < 0.5 * losses[0]


def test_sft_learning_rate_decays_linearly_and_restarts():
    assert [lr_factor(step, SFTConfig(steps=4)) for step in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert [lr_factor(step, SFTConfig(steps=6, restart_every=3)) for step in range(6)] == pytest.approx([1, 2 / 3, 1 / 3] * 2)


@pytest.mark.slow
def test_grpo_trains_logs_evaluates_and_checkpoints(tmp_path):
    from deepresearch.envs import load_qa

    golds = {item.question: item.golden_answers[0] for item in load_qa("demo", split="train") + load_qa("demo", split="test")}
    config = GRPOConfig(steps=2, eval_every=2, save_every=1, output_dir=str(tmp_path), **TINY_RUN)
    trainer = GRPOTrainer(config, log=lambda line: None)
    trainer.engine = HalfRightEngine(trainer.model, trainer.tokenizer, golds, trainer.envs[0].unwrapped.protocol)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    history = trainer.train()
    assert len(history) == 2
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2]
    # The engine answers a prompt right the first time it is asked, wrong the second.
    assert records[0]["eval/reward"] == pytest.approx(1.0) and records[-1]["eval/reward"] == pytest.approx(0.1)
    for key in ("reward/mean", "episode/searches", "episode/response_tokens", "grad_norm", "clip_frac_high", "entropy", "time/rollout", "time/update"):
        assert key in records[1], key
    assert records[1]["reward/mean"] == pytest.approx(0.55) and records[1]["grpo/zero_variance_groups"] == 0
    # On-policy engine logprobs: the trainer recomputes the same values.
    assert records[1]["engine_logprob_abs_diff"] < 1e-4
    assert any(not (a == b).all() for a, b in zip(before, trainer.model.parameters()))
    assert [p.name for p in complete_checkpoints(tmp_path / "checkpoints")] == ["checkpoint-0000001", "checkpoint-0000002"]
    # Sampled and evaluation episodes are written for the viewer.
    logged = [json.loads(line) for line in (tmp_path / "episodes" / "step_0000001.jsonl").read_text().splitlines()]
    assert len(logged) == 4 and {"transcript", "segments", "reward"} <= set(logged[0])
    assert (tmp_path / "episodes" / "eval_0000000.jsonl").is_file() and (tmp_path / "episodes" / "eval_0000002.jsonl").is_file()
