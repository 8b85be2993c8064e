"""A few GRPO steps of the SmolLM2 recipe on whatever device is here; steps/hour by phase, as JSON.

The GPU machine has no network and takes at most 64 MiB with it, so SmolLM2's 94 MiB GGUF cannot
travel: ``--prepare DIR`` (run here) writes SmolLM2's config and tokenizer into DIR, and the run
builds a model of that shape with random weights there. Random weights write no valid tag, so
every episode is one turn of the recipe's per-turn token limit (the env ends it on the invalid
action): a fixed workload, the same on every device, lighter than the recipe's real multi-turn one. Run it here on CPU for the baseline and there on the GPU; compare steps/hour.

    .venv/bin/python benchmarks/gpu/bench_grpo_steps.py --prepare .gpu_assets/smollm2-shape
    # on the GPU machine (carry .gpu_assets; ≤ 9 minutes):
    python3 benchmarks/gpu/bench_grpo_steps.py --shape .gpu_assets/smollm2-shape --steps 4
    # CPU dry run (one tiny step):
    .venv/bin/python benchmarks/gpu/bench_grpo_steps.py --shape .gpu_assets/smollm2-shape --engine hf --dry-run
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "smollm2-135m_demo.cpu.yaml"


def prepare(folder: Path) -> None:
    """SmolLM2's config and tokenizer (no weights) from the installed package's GGUF."""
    from transformers import AutoConfig, AutoTokenizer

    from deepresearch.agents.models.gguf import resolve_model_source

    source = resolve_model_source("smollm2")
    AutoConfig.from_pretrained(source).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)


def random_model(shape: Path, into: Path) -> Path:
    """A model of ``shape``'s architecture with seeded random weights, saved to ``into``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(shape)).save_pretrained(into)
    AutoTokenizer.from_pretrained(shape).save_pretrained(into)
    return into


def overrides(model: Path, out: Path, steps: int, engine: str, dry_run: bool) -> list[str]:
    settings = [f"model={model}", f"output_dir={out}", f"steps={steps}", f"engine={engine}", "eval_every=0",
                f"save_every={steps}", "warm_start.trajectories=0", "report_to=[jsonl]"]
    if dry_run:
        settings += ["questions_per_step=1", "group_size=2", "rollout.max_new_tokens_per_turn=8", "rollout.max_response_tokens=32"]
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", type=Path, help="write SmolLM2's config and tokenizer here and exit")
    parser.add_argument("--shape", type=Path, help="a folder --prepare wrote")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--engine", choices=("vllm", "hf"), default="vllm", help="hf where vLLM is not installed")
    parser.add_argument("--dry-run", action="store_true", help="one tiny step on this machine's device")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare)
        return
    if args.shape is None:
        parser.error("--shape (or --prepare) is required")

    from deepresearch.agents import GRPOTrainer, read_metrics
    from deepresearch.agents.train.config_file import load_run_file

    steps = 1 if args.dry_run else args.steps
    with tempfile.TemporaryDirectory() as scratch:
        model = random_model(args.shape, Path(scratch) / "model")
        out = Path(scratch) / "run"
        config = load_run_file(RECIPE, overrides(model, out, steps, args.engine, args.dry_run)).config
        started = time.perf_counter()
        trainer = GRPOTrainer(config)
        setup = time.perf_counter() - started
        trainer.train()
        trainer.close()
        records = [r for r in read_metrics(out / "metrics.jsonl") if "time/update" in r]
    phases = {name: [r[f"time/{name}"] for r in records] for name in ("rollout", "update", "sync")}
    # The first step compiles and warms caches; steps/hour counts the others where there are any.
    timed = records[1:] or records
    per_step = sum(r["time/rollout"] + r["time/update"] + r["time/sync"] for r in timed) / len(timed)
    print(json.dumps({
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "engine": config.engine, "dry_run": args.dry_run, "steps": len(records), "setup_seconds": setup,
        "seconds_by_phase": phases, "response_tokens": [r.get("episode/response_tokens") for r in records],
        "seconds_per_step": per_step, "steps_per_hour": 3600 / per_step,
    }, indent=1))


if __name__ == "__main__":
    main()
