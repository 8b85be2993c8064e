"""The GRPO trainer end to end on the tiny model, and resume after a kill."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
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


RUN_SCRIPT = """
import json, sys
from deepresearch.agents import GRPOConfig, GRPOTrainer
config = GRPOConfig.from_dict(json.loads(sys.argv[1]))
GRPOTrainer(config, log=lambda line: print(line, flush=True)).train()
"""


def run_training(output_dir: Path, steps: int, resume: bool) -> subprocess.Popen:
    # warmup_steps: the learning rate still rises where the run is killed, so a resume that
    # lost the scheduler's state takes a different step.
    config = GRPOConfig(**TINY_RUN, steps=steps, warmup_steps=steps, eval_every=0, save_every=1, output_dir=str(output_dir), resume=resume)
    return subprocess.Popen([sys.executable, "-c", RUN_SCRIPT, json.dumps(config.to_dict())], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def resumed_step(output: str) -> int:
    """The step of the trainer's ``resumed from .../checkpoint-N at step N`` line."""
    (step,) = re.findall(r"^resumed from \S+ at step (\d+)$", output, flags=re.MULTILINE)
    return int(step)


def assert_resume_continues_the_run(resumed: Path, reference: Path, resumed_at: int, tolerance: float) -> None:
    """Every step after the resume point equals the uninterrupted run's (data, loss, grad norm,
    learning rate, staleness) and so do the final weights: model, optimizer and scheduler state
    all came back. ``tolerance``: relative, for float sums taken in another order."""
    from safetensors.torch import load_file

    ours, theirs = by_step(resumed), by_step(reference)
    assert sorted(ours) == sorted(theirs)
    for step in range(resumed_at + 1, max(theirs) + 1):
        assert ours[step]["data/questions"] == theirs[step]["data/questions"], step
        for key in ("loss", "grad_norm", "lr", "reward/mean", "staleness/mean"):
            assert ours[step][key] == pytest.approx(theirs[step][key], rel=tolerance, abs=1e-9), (step, key)
    mine, reference_weights = (load_file(str(run / "final_model" / "model.safetensors")) for run in (resumed, reference))
    assert sorted(mine) == sorted(reference_weights)
    for name, tensor in reference_weights.items():
        assert torch.allclose(mine[name], tensor, rtol=tolerance, atol=1e-7), name


def by_step(output_dir: Path) -> dict[int, dict]:
    return {record["step"]: record for record in read_metrics(output_dir / "metrics.jsonl")}


@pytest.mark.slow
def test_a_run_killed_mid_training_resumes_into_the_uninterrupted_runs_steps(tmp_path):
    reference = run_training(tmp_path / "reference", steps=4, resume=False)
    assert reference.wait(timeout=600) == 0, reference.stdout.read()

    killed_dir = tmp_path / "killed"
    victim = run_training(killed_dir, steps=4, resume=False)
    deadline = time.monotonic() + 600
    while not (killed_dir / "checkpoints" / "checkpoint-0000002").is_dir():
        assert victim.poll() is None and time.monotonic() < deadline, "training ended before it could be killed"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # Also leave the debris of a checkpoint write that was cut off.
    (killed_dir / "checkpoints" / ".checkpoint-0000003.tmp-1").mkdir(exist_ok=True)

    resumed = run_training(killed_dir, steps=4, resume=True)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    resumed_at = resumed_step(output)
    assert 2 <= resumed_at < 4
    # One process, the same seeds: the resumed steps are the uninterrupted run's, bit for bit.
    assert_resume_continues_the_run(killed_dir, tmp_path / "reference", resumed_at, tolerance=0.0)
