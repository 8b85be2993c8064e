"""Each paper recipe's CPU variant trains end to end through ``deepresearch train`` (slow suite)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from test_tracking import wandb_run

from deepresearch.agents import read_metrics

# The paper recipes' tiny CPU variants (three steps); the SmolLM2 learning recipe runs for hours, in its benchmark.
CPU_RECIPES = sorted(p for p in (REPO_ROOT / "recipes").glob("*.cpu.yaml") if p.with_name(p.name.replace(".cpu", "")).is_file())


def deepresearch_train(recipe: Path, output_dir: Path, *overrides: str, processes: int = 1) -> str:
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes), "--max-restarts", "0"]
    command = [*launcher, "-m", "deepresearch.cli", "train", "--config", str(recipe), f"output_dir={output_dir}", *overrides]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("recipe", CPU_RECIPES, ids=lambda p: p.name)
def test_cpu_recipe_trains_evaluates_checkpoints_and_exports(recipe: Path, tmp_path: Path) -> None:
    output = deepresearch_train(recipe, tmp_path)
    assert f"recipe {recipe.name.removesuffix('.yaml')}" in output and "expected wall time" in output
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2] and "eval/reward" in records[-1] and "grad_norm" in records[-1]
    assert (tmp_path / "checkpoints" / "checkpoint-0000002" / "COMPLETE").is_file()
    assert (tmp_path / "final_model" / "model.safetensors").is_file() and (tmp_path / "best_model" / "config.json").is_file()
    assert (tmp_path / "training.png").stat().st_size > 0 and (tmp_path / "config.yaml").is_file()


@pytest.mark.slow
def test_cpu_recipe_under_torchrun_logs_once_to_every_tracker(tmp_path: Path) -> None:
    recipe = REPO_ROOT / "recipes" / "research_qwen2.5-7b-instruct.cpu.yaml"
    output = deepresearch_train(recipe, tmp_path, "report_to=[jsonl,tensorboard,wandb]", processes=2)
    assert "training on 2 process(es)" in output
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2]  # rank 0 alone writes
    assert records[1]["episodes"] == 4 and len(records[1]["data/questions"]) == 2
    run_config, history = wandb_run(tmp_path)  # exactly one W&B run, with the resolved config
    assert run_config["env_kwargs"]["protocol"] == "research" and run_config["update"]["loss"]["kl_coef"] == 0.001
    assert [row["_step"] for row in history] == [0, 1, 2]
    assert len(list((tmp_path / "checkpoints" / "checkpoint-0000002" / "state").glob("*.distcp"))) == 2
