"""SIGTERM / SIGINT during the update and during a checkpoint write; a kill that cuts the write; a full disk.

What a user sees: the first signal lets the step in flight and any checkpoint being written
finish, then the run writes a checkpoint of that step, prints ``stopped by SIGTERM after step
N: checkpoint ... written; rerun with resume=true`` and exits 143 (SIGTERM) or 130 (SIGINT);
a second signal stops it at once. A write cut by ``kill -9`` leaves the previous checkpoint
intact; a write that fails because the disk is full stops the run with ``CheckpointError``
naming the checkpoint that is intact, and removes what it had written. Resuming gives the
data order of a run that was never stopped.

The runs are subprocesses of the real trainer (tiny model, its transformers engine, the demo
world). A hook holds the run at the chosen point (``paused`` file) until the test has sent its
signal and says ``go``, so where each signal lands does not depend on timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_helpers import fault_config

from deepresearch.agents import CheckpointError, GRPOTrainer, read_metrics
from deepresearch.agents.rollout.runner import RolloutConfig
from deepresearch.agents.train.checkpoint import complete_checkpoints

STEPS = 3
RUN_SCRIPT = """
import json, sys, time
from pathlib import Path
import deepresearch.agents.train.checkpoint as checkpoint
import deepresearch.agents.train.stop_signals as stop_signals
import deepresearch.agents.train.trainer as trainer
from deepresearch.agents import GRPOConfig, GRPOTrainer, TrainingInterrupted

config, hold = GRPOConfig.from_dict(json.loads(sys.argv[1])), json.loads(sys.argv[2])
flags = Path(hold.get("dir", "."))

def held(real):
    calls = [0]
    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == hold["call"]:
            (flags / "paused").touch()
            while not (flags / "go").exists():
                time.sleep(0.01)
        return real(*args, **kwargs)
    return wrapper

if hold.get("at") == "update":
    trainer.grpo_update = held(trainer.grpo_update)
if hold.get("at") == "checkpoint":  # called mid-write: after the model and optimizer, before the marker
    checkpoint.rng_state = held(checkpoint.rng_state)
handle = stop_signals.StopSignals._handle
def seen(self, number, frame):
    (flags / f"signal-{signal_count()}").touch()
    handle(self, number, frame)
def signal_count():
    return len(list(flags.glob("signal-*"))) + 1
stop_signals.StopSignals._handle = seen
try:
    GRPOTrainer(config, log=lambda line: print(line, flush=True), progress=False).train()
except TrainingInterrupted as stopped:
    print(stopped, flush=True)
    sys.exit(stopped.exit_code)
"""


def config_for(output_dir: Path, save_every: int, resume: bool = False):
    rollout = RolloutConfig(max_new_tokens_per_turn=8, max_response_tokens=48)
    return fault_config(output_dir, steps=STEPS, save_every=save_every, resume=resume, rollout=rollout, episodes_to_log=0)


def start(output_dir: Path, save_every: int, hold: dict | None = None, resume: bool = False) -> subprocess.Popen:
    config = config_for(output_dir, save_every, resume)
    return subprocess.Popen(
        [sys.executable, "-c", RUN_SCRIPT, json.dumps(config.to_dict()), json.dumps(hold or {})],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_for(path: Path, process: subprocess.Popen, limit_s: float = 600) -> None:
    """A correctness bound, not a speed one: the run must get there."""
    deadline = time.monotonic() + limit_s
    while not path.exists():
        assert process.poll() is None, f"the run ended before {path.name}: {process.stdout.read()}"
        assert time.monotonic() < deadline, f"no {path.name} after {limit_s} s"
        time.sleep(0.02)


def finish(process: subprocess.Popen, limit_s: float = 600) -> tuple[int, str]:
    """The run's exit code and output; a run still going after ``limit_s`` is killed (not left behind) and fails the test."""
    try:
        output, _ = process.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"the run had not ended after {limit_s:g} s: {output}") from None
    return process.returncode, output


def questions_by_step(output_dir: Path) -> dict[int, list[int]]:
    return {r["step"]: r["data/questions"] for r in read_metrics(output_dir / "metrics.jsonl")}


@pytest.fixture(scope="module")
def reference_order(tmp_path_factory) -> dict[int, list[int]]:
    """The data order of the same run, never stopped."""
    output_dir = tmp_path_factory.mktemp("reference")
    GRPOTrainer(config_for(output_dir, save_every=0), log=lambda line: None, progress=False).train()
    return questions_by_step(output_dir)


def checkpoint_names(output_dir: Path) -> list[str]:
    return [path.name for path in complete_checkpoints(output_dir / "checkpoints")]


def resume_and_check_order(output_dir: Path, reference: dict[int, list[int]], resumed_from: str) -> None:
    code, output = finish(start(output_dir, save_every=0, resume=True))
    assert code == 0, output
    assert f"resumed from {output_dir / 'checkpoints' / resumed_from}" in output
    assert questions_by_step(output_dir) == reference


@pytest.mark.slow
@pytest.mark.parametrize(("name", "exit_code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_during_the_update_checkpoints_that_step_and_the_resumed_run_keeps_the_data_order(tmp_path, reference_order, name, exit_code):
    # No periodic checkpoints: the one written on the signal is all there is to resume from.
    run = start(tmp_path, save_every=0, hold={"at": "update", "call": 2, "dir": str(tmp_path)})
    wait_for(tmp_path / "paused", run)
    run.send_signal(signal.Signals[name])
    wait_for(tmp_path / "signal-1", run)
    (tmp_path / "go").touch()
    code, output = finish(run)
    assert code == exit_code, output
    assert f"stopped by {name} after step 2: checkpoint {tmp_path / 'checkpoints' / 'checkpoint-0000002'} written" in output
    assert checkpoint_names(tmp_path) == ["checkpoint-0000002"]
    assert sorted(questions_by_step(tmp_path)) == [1, 2]  # the update in flight finished; step 3 never started
    resume_and_check_order(tmp_path, reference_order, "checkpoint-0000002")


@pytest.mark.slow
def test_sigterm_during_a_checkpoint_write_lets_it_finish_then_stops(tmp_path, reference_order):
    run = start(tmp_path, save_every=1, hold={"at": "checkpoint", "call": 2, "dir": str(tmp_path)})
    wait_for(tmp_path / "paused", run)
    run.send_signal(signal.SIGTERM)
    wait_for(tmp_path / "signal-1", run)
    (tmp_path / "go").touch()
    code, output = finish(run)
    assert code == 143, output
    assert "stopped by SIGTERM after step 2" in output
    assert checkpoint_names(tmp_path) == ["checkpoint-0000001", "checkpoint-0000002"]
    assert not list((tmp_path / "checkpoints").glob(".*"))  # no half-written leftovers
    resume_and_check_order(tmp_path, reference_order, "checkpoint-0000002")


@pytest.mark.slow
def test_a_kill_that_cuts_a_checkpoint_write_leaves_the_previous_one_intact(tmp_path, reference_order):
    run = start(tmp_path, save_every=1, hold={"at": "checkpoint", "call": 2, "dir": str(tmp_path)})
    wait_for(tmp_path / "paused", run)
    run.send_signal(signal.SIGKILL)
    finish(run)
    assert checkpoint_names(tmp_path) == ["checkpoint-0000001"]
    assert (tmp_path / "checkpoints" / ".checkpoint-0000002.tmp").is_dir()  # the cut write, ignored
    resume_and_check_order(tmp_path, reference_order, "checkpoint-0000001")


@pytest.mark.slow
def test_a_second_signal_stops_at_once(tmp_path):
    run = start(tmp_path, save_every=1, hold={"at": "update", "call": 2, "dir": str(tmp_path)})
    wait_for(tmp_path / "paused", run)
    run.send_signal(signal.SIGINT)
    wait_for(tmp_path / "signal-1", run)
    run.send_signal(signal.SIGINT)
    code, output = finish(run)  # no "go": the second signal ends the held update itself
    assert code != 0 and "KeyboardInterrupt" in output and "stopped by" not in output
    assert checkpoint_names(tmp_path) == ["checkpoint-0000001"]


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs (a checkpoint of the tiny model is ~21 MB); mounting needs root."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a small tmpfs could not be mounted (needs root): {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def fill_leaving(directory: Path, free_bytes: int) -> Path:
    """Take all the space of ``directory``'s filesystem but ``free_bytes``."""
    stats = os.statvfs(directory)
    filler = directory / "filler"
    with filler.open("wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, stats.f_bavail * stats.f_frsize - free_bytes)
    return filler


@pytest.mark.slow
def test_a_full_disk_during_a_checkpoint_write_stops_the_run_and_keeps_the_previous_checkpoint(small_disk, reference_order):
    run_dir = small_disk / "run"
    filler: list[Path] = []
    log = lambda line: line.startswith("step 1 |") and filler.append(fill_leaving(small_disk, 4 * 1024**2))  # noqa: E731
    trainer = GRPOTrainer(config_for(run_dir, save_every=1), log=log, progress=False)
    with pytest.raises(CheckpointError) as failure:
        trainer.train()
    assert str(failure.value).startswith(f"could not write checkpoint {run_dir / 'checkpoints' / 'checkpoint-0000002'} (")
    assert " MB free there); " in str(failure.value)
    assert str(failure.value).endswith(f"{run_dir / 'checkpoints' / 'checkpoint-0000001'} is intact")
    assert checkpoint_names(run_dir) == ["checkpoint-0000001"]
    assert not list((run_dir / "checkpoints").glob(".*"))  # the partial write was removed
    trainer.close()
    filler[0].unlink()  # the user frees space and resumes
    resumed = GRPOTrainer(config_for(run_dir, save_every=1, resume=True), log=lambda line: None, progress=False)
    assert resumed.step == 1
    resumed.train()
    assert questions_by_step(run_dir) == reference_order
