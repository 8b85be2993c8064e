"""Does GRPO make a pretrained chat model better than its SFT start? SmolLM2-135M-Instruct, 2 CPU cores; prints JSON.

1. **The recipe**, as ``deepresearch train --config recipes/smollm2-135m_demo.cpu.yaml`` runs it:
   warm start (SFT on the scripted teacher, into OUTPUT/run/warm_start), then GRPO
   (OUTPUT/run/final_model, metrics.jsonl, training.png). ``--resume`` continues a killed run.
2. **A control of equal compute**: the SFT start trained further by SFT alone, on the same
   teacher's trajectories, for as many steps as the GRPO phase's rollout + update + sync time
   buys at the warm start's measured time per step.
3. **Held-out evaluation**, greedy, of the SFT start, the GRPO model and the control: the demo
   world's test questions (never trained on; by hop count) and real questions (TriviaQA and
   PopQA over ``wiki18_sample`` with BM25, never trained on). Per-question EM, and paired
   bootstrap 95% intervals of GRPO − SFT start and GRPO − control.

    flock /work/bench.lock .venv/bin/python benchmarks/bench_smollm2_learning.py [key=value overrides of the recipe]

A smoke run: ``--demo-questions 4 --real-questions 2 steps=1 questions_per_step=1 group_size=2
warm_start.trajectories=8 warm_start.sft.steps=1 eval_every=0``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from statistics import mean
from typing import Any

import gymnasium as gym
import torch

import deepresearch  # noqa: F401  (registers the env ids)
from deepresearch.agents import GRPOTrainer, RolloutConfig, TurnEncoder, load_policy, make_engine, read_metrics
from deepresearch.agents.eval.held_out import evaluate
from deepresearch.agents.eval.paired import paired_bootstrap
from deepresearch.agents.models.gguf import resolve_model_source
from deepresearch.agents.train.config import GRPOConfig
from deepresearch.agents.train.config_file import load_run_file
from deepresearch.agents.train.warm_start import WARM_START_INFO_FILE, warm_start
from deepresearch.envs import load_qa

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEEPRESEARCH_SHARED_DATA", REPO.parent / "shared" / "data"))
RECIPE = REPO / "recipes" / "smollm2-135m_demo.cpu.yaml"
REAL_DATASETS = ("triviaqa", "popqa")


def run_recipe(config: GRPOConfig) -> dict[str, Any]:
    """Warm start + GRPO as the recipe says; the phases' times."""
    started = time.perf_counter()
    trainer = GRPOTrainer(config, log=lambda line: print(line, flush=True))
    warm_seconds = time.perf_counter() - started
    phase = time.perf_counter()
    try:
        trainer.train()
    finally:
        trainer.close()
    records = read_metrics(Path(config.output_dir) / "metrics.jsonl")
    steps = [r for r in records if "time/update" in r]
    compute = sum(r["time/rollout"] + r["time/update"] + r["time/sync"] for r in steps)
    return {"construct_and_warm_start_seconds": warm_seconds, "train_seconds": time.perf_counter() - phase,
            "grpo_compute_seconds": compute, "steps_logged": len(steps)}


def curves(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The per-step training figures the issue asks for (None where a step lacks one)."""
    steps = [r for r in records if "reward/mean" in r]
    zero = [r.get("grpo/zero_variance_groups", 0) / max(r.get("grpo/groups", 1), 1) for r in steps]
    names = {
        "reward": "reward/mean", "reward_std": "reward/std", "entropy": "entropy", "kl_ref": "kl_ref",
        "searches": "episode/searches", "response_tokens": "episode/response_tokens", "grad_norm": "grad_norm",
        "engine_logprob_abs_diff": "engine_logprob_abs_diff", "importance_min": "importance/min", "importance_max": "importance/max",
    }
    result = {name: [r.get(key) for r in steps] for name, key in names.items()}
    result["zero_variance_share"] = zero
    result["held_out"] = [[r["step"], r["eval/reward"]] for r in records if "eval/reward" in r]
    return result


def control_sft(config: GRPOConfig, start: Path, out: Path, grpo_seconds: float, warm_step_seconds: float) -> dict[str, Any]:
    """The SFT start trained further by SFT alone for the GRPO phase's compute time."""
    steps = max(1, round(grpo_seconds / warm_step_seconds))
    settings = replace(config.warm_start, sft=replace(config.warm_start.sft, steps=steps, seed=config.warm_start.sft.seed + 1))
    started = time.perf_counter()
    _, losses = warm_start(start, out, config.env_id, config.env_kwargs, settings, config.prompt_mode, config.device)
    return {"steps": steps, "seconds": time.perf_counter() - started, "loss_first": losses[0], "loss_last": losses[-1]}


def held_out_sets(config: GRPOConfig, args: argparse.Namespace) -> dict[str, list[Any]]:
    """One env per held-out question: the demo world's test split and the real datasets."""
    sets = {"demo": [gym.make(config.env_id, **config.eval_kwargs()) for _ in range(args.demo_questions)]}
    real = {
        "protocol": config.env_kwargs.get("protocol", "search_r1"), "corpus": str(SHARED / "wiki18_sample" / "passages.jsonl"),
        "retriever": "bm25", "top_k": config.env_kwargs.get("top_k", 1), "max_turns": config.env_kwargs.get("max_turns", 4),
    }
    for name in REAL_DATASETS:
        sets[name] = [gym.make(config.env_id, **real, dataset=str(SHARED / "qa" / f"{name}.jsonl")) for _ in range(args.real_questions)]
    return sets


def evaluate_checkpoint(engine: Any, encoder: TurnEncoder, sets: dict[str, list[Any]], rollout: RolloutConfig) -> dict[str, Any]:
    """Per-question EM (by question index) and summary metrics for each held-out set."""
    result: dict[str, Any] = {}
    for name, envs in sets.items():
        metrics, episodes = evaluate(engine, encoder, envs, rollout)
        em = {int(e.group_id): float(e.reward_components.get("em", 0.0)) for e in episodes}
        result[name] = {
            "em_by_question": [em.get(i, 0.0) for i in range(len(envs))],
            "em": metrics.get("reward/em", 0.0),
            "f1": metrics.get("reward/f1", 0.0),
            "format_ok": metrics.get("reward/format_ok", 0.0),
            "searches": metrics.get("episode/searches", 0.0),
            "dropped": metrics["dropped"],
        }
    return result


def by_hops(scores: list[float]) -> dict[str, float]:
    hops = [item.metadata["hops"] for item in load_qa("demo", split="test")[: len(scores)]]
    return {f"{h}-hop": mean(s for s, k in zip(scores, hops) if k == h) for h in sorted(set(hops))}


def compare(points: dict[str, dict[str, Any]], a: str, b: str, sets: list[str]) -> dict[str, Any]:
    """Paired bootstrap of ``b - a`` per held-out set (real datasets also pooled)."""
    result = {name: paired_bootstrap(points[a][name]["em_by_question"], points[b][name]["em_by_question"]).to_dict() for name in sets}
    real = [name for name in sets if name in REAL_DATASETS]
    if real:
        pooled_a = [x for name in real for x in points[a][name]["em_by_question"]]
        pooled_b = [x for name in real for x in points[b][name]["em_by_question"]]
        result["real"] = paired_bootstrap(pooled_a, pooled_b).to_dict()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides of the recipe, as for deepresearch train")
    parser.add_argument("--config", default=str(RECIPE))
    parser.add_argument("--out", default="runs/bench_smollm2_learning")
    parser.add_argument("--demo-questions", type=int, default=300)
    parser.add_argument("--real-questions", type=int, default=100, help="per real dataset")
    parser.add_argument("--resume", action="store_true", help="continue the recipe's run in OUT/run (after a kill)")
    parser.add_argument("--skip-control", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    config = load_run_file(args.config, [*args.overrides, f"output_dir={out / 'run'}", f"resume={str(args.resume).lower()}"]).config
    result: dict[str, Any] = {"benchmark": "smollm2_grpo_vs_sft", "config": args.config, "overrides": args.overrides,
                              "load_average_1m_at_start": os.getloadavg()[0], "cpu_count": os.cpu_count()}
    started = time.perf_counter()
    result["recipe"] = run_recipe(config)
    run_dir = Path(config.output_dir)
    warm_dir = run_dir / "warm_start"
    warm_info = json.loads((warm_dir / WARM_START_INFO_FILE).read_text())
    records = read_metrics(run_dir / "metrics.jsonl")
    result["curves"] = curves(records)
    # The warm start's own time per SFT step (its training loop only, recorded when it was built).
    warm_step_seconds = warm_info["sft_seconds"] / config.warm_start.sft.steps
    result["warm_start"] = {key: warm_info[key] for key in ("loss_first", "loss_last", "sft_seconds")}
    result["recipe_wall_seconds"] = time.perf_counter() - started
    print(json.dumps({"recipe": result["recipe"], "recipe_wall_seconds": result["recipe_wall_seconds"]}), flush=True)

    checkpoints = {"sft_start": warm_dir, "grpo": run_dir / "final_model"}
    if not args.skip_control:
        result["control"] = control_sft(config, warm_dir, out / "control", result["recipe"]["grpo_compute_seconds"], warm_step_seconds)
        checkpoints["control"] = out / "control"
        print(json.dumps({"control": result["control"]}), flush=True)

    base = resolve_model_source(config.model)
    _, tokenizer = load_policy(warm_dir, torch.device("cpu"))
    engine = make_engine("vllm", base, tokenizer=tokenizer, max_model_len=4096, enforce_eager=True, log_file=out / "engine.log")
    encoder = TurnEncoder.for_tokenizer(tokenizer, config.prompt_mode)
    sets = held_out_sets(config, args)
    points: dict[str, dict[str, Any]] = {}
    for name, path in checkpoints.items():
        model, _ = load_policy(path, torch.device("cpu"))
        engine.sync_weights(model.state_dict().items())
        del model
        phase = time.perf_counter()
        points[name] = evaluate_checkpoint(engine, encoder, sets, config.rollout)
        points[name]["demo"]["em_by_hops"] = by_hops(points[name]["demo"]["em_by_question"])
        points[name]["seconds"] = time.perf_counter() - phase
        print(json.dumps({name: {s: {k: v for k, v in m.items() if k != "em_by_question"} for s, m in points[name].items() if isinstance(m, dict)}}), flush=True)
    result["points"] = points
    result["grpo_minus_sft_start"] = compare(points, "sft_start", "grpo", list(sets))
    if "control" in points:
        result["grpo_minus_control"] = compare(points, "control", "grpo", list(sets))
        result["control_minus_sft_start"] = compare(points, "sft_start", "control", list(sets))
    result["total_seconds"] = time.perf_counter() - started
    result["load_average_1m_at_end"] = os.getloadavg()[0]
    text = json.dumps(result, indent=2)
    (out / "result.json").write_text(text + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k not in ("points", "curves")}, indent=2))


if __name__ == "__main__":
    main()
