"""Train a search agent with GRPO.

With no arguments this runs on a CPU laptop: it builds a tiny model locally,
warm-starts it on the demo world's scripted trajectories (SFT, env text masked;
the teacher searches on only 40% of them and otherwise echoes the question, so
the warm-started model under-uses search), then runs GRPO against
DeepResearch-Wiki-v0's demo world, and prints and plots the held-out reward
before and after GRPO.

    python examples/train_grpo.py
    python examples/train_grpo.py --model smollm2      # SmolLM2-135M-Instruct: recipes/smollm2-135m_demo.cpu.yaml
    python examples/train_grpo.py --model Qwen/Qwen2.5-7B-Instruct --engine vllm \\
        --env-kwargs '{"corpus": "wiki18_index/", "dataset": "musique/train.jsonl"}' --steps 200
    torchrun --nproc-per-node 8 examples/train_grpo.py --model Qwen/Qwen2.5-7B-Instruct --engine vllm ...

Flags left out keep the demo's (or the recipe's) values. Under torchrun every process runs
this script and trains data-parallel; a warm start (the tiny model's, SmolLM2's) runs in
process 0 while the others wait.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from deepresearch.agents import GRPOConfig, GRPOTrainer, TrainingInterrupted, plot_run, read_metrics
from deepresearch.agents.grpo.aggregation import LOSS_AGGREGATIONS
from deepresearch.agents.grpo.policy_losses import POLICY_LOSSES
from deepresearch.agents.rollout.engines import ENGINES
from deepresearch.agents.train.config_file import load_run_file, with_overrides
from deepresearch.agents.train.demo import demo_grpo_config
from deepresearch.agents.train.warm_start import WarmStartConfig
from deepresearch.envs import PROTOCOLS

# ``--model smollm2`` runs this recipe (the same file ``deepresearch train --config`` reads).
SMOLLM2_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "smollm2-135m_demo.cpu.yaml"

DEFAULT_OUTPUT_DIR = "runs/train_grpo"

# Flag -> the config key it sets (only when given on the command line).
FLAG_KEYS = {
    "env_id": "env_id",
    "engine": "engine",
    "group_size": "group_size",
    "batch_size": "questions_per_step",
    "lr": "optimizer.learning_rate",
    "steps": "steps",
    "kl": "update.loss.kl_coef",
    "policy_loss": "update.loss.policy_loss",
    "loss_agg": "update.loss.loss_agg",
    "clip_low": "update.loss.clip_eps_low",
    "clip_high": "update.loss.clip_eps_high",
    "max_staleness": "max_staleness",
    "ppo_epochs": "update.ppo_epochs",
    "mini_batch_size": "update.mini_batch_size",
    "schedule": "rollout.schedule",
    "lora_rank": "lora_rank",
    "sft_steps": "warm_start.sft.steps",
    "guess_rate": "warm_start.guess_rate",
    "eval_questions": "eval_questions",
    "eval_every": "eval_every",
    "output_dir": "output_dir",
    "seed": "seed",
    "protocol": "env_kwargs.protocol",
    "dataset": "env_kwargs.dataset",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="HF id, path, .gguf or 'smollm2' (default: the tiny local model)")
    parser.add_argument("--env-id")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS))
    parser.add_argument("--dataset", help="QA file for the env (default: the demo world)")
    parser.add_argument("--env-kwargs", default="{}", help="extra env kwargs as JSON")
    parser.add_argument("--engine", choices=sorted({"auto", *ENGINES}), help="auto: vllm when it imports, else hf")
    parser.add_argument("--group-size", type=int)
    parser.add_argument("--batch-size", type=int, help="questions per step")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--kl", type=float, help="KL coefficient to the initial policy")
    parser.add_argument("--policy-loss", choices=sorted(POLICY_LOSSES),
                        help="ppo (per-token clip, the default), gspo (sequence ratio), cispo (clipped IS weights), or a registered one")
    parser.add_argument("--loss-agg", choices=sorted(LOSS_AGGREGATIONS), help="how token losses are averaged")
    parser.add_argument("--clip-low", type=float, help="ratio clip: 1 - LOW (GSPO's paper: 3e-4)")
    parser.add_argument("--clip-high", type=float, help="ratio clip: 1 + HIGH (GSPO's paper: 4e-4)")
    parser.add_argument("--max-staleness", type=int, help="generate rollouts up to this many updates ahead, overlapping training (0: on-policy)")
    parser.add_argument("--ppo-epochs", type=int, help="passes over each rollout batch")
    parser.add_argument("--mini-batch-size", type=int, help="episodes per optimizer step (default: the whole batch)")
    parser.add_argument("--schedule", choices=["async", "sync"], help="rollouts per episode (async) or in lockstep (sync, the reference)")
    parser.add_argument("--lora-rank", type=int)
    parser.add_argument("--sft-steps", type=int, help="warm-start steps (the tiny model's and SmolLM2's; 0 = skip)")
    parser.add_argument("--guess-rate", type=float, help="share of warm-start trajectories that answer without searching")
    parser.add_argument("--eval-questions", type=int)
    parser.add_argument("--eval-every", type=int)
    parser.add_argument("--no-mask-env-tokens", action="store_true", help="ablation: train on env text too")
    parser.add_argument("--output-dir", help="default: runs/train_grpo (the recipe's for smollm2)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--verbose", action="store_true", help="engine logs on the console (default: OUTPUT/engine.log)")
    return parser.parse_args()


def run_config(args: argparse.Namespace) -> GRPOConfig:
    """The demo's (or the SmolLM2 recipe's) config with the flags given on the command line."""
    if args.model == "smollm2":
        print(f"model: SmolLM2-135M-Instruct, recipe {SMOLLM2_RECIPE.relative_to(SMOLLM2_RECIPE.parents[1])}")
        base = load_run_file(SMOLLM2_RECIPE).config
    elif args.model is None:
        print("model: the tiny local Qwen2-architecture model (built once, cached)")
        base = demo_grpo_config(output_dir=DEFAULT_OUTPUT_DIR)
    else:
        base = demo_grpo_config(model=args.model, warm_start=WarmStartConfig(), output_dir=DEFAULT_OUTPUT_DIR)
    overrides: dict[str, Any] = {key: getattr(args, flag) for flag, key in FLAG_KEYS.items() if getattr(args, flag) is not None}
    if args.seed is not None:
        overrides["warm_start.sft.seed"] = args.seed
    overrides.update({f"env_kwargs.{name}": value for name, value in json.loads(args.env_kwargs).items()})
    if args.no_mask_env_tokens:
        overrides["mask_env_tokens"] = False
    if args.resume:
        overrides["resume"] = True
    return with_overrides(base, overrides)


def main() -> None:
    args = parse_args()
    if not args.verbose:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    config = run_config(args)
    warm = config.warm_start
    if warm.enabled:
        habits = [f"{warm.guess_rate:.0%} answering without searching"] if warm.guess_rate else []
        habits += [f"{warm.single_search_rate:.0%} of multi-hop ones answered after one search"] if warm.single_search_rate else []
        print(f"warm start: SFT for {warm.sft.steps} steps on {warm.trajectories} scripted trajectories "
              f"({', '.join(habits + ['env text masked'])})")
    trainer = GRPOTrainer(config, verbose=args.verbose)
    started = time.perf_counter()
    try:
        trainer.train()
    except TrainingInterrupted as stopped:  # Ctrl-C / SIGTERM: the last step is checkpointed
        print(stopped)
        raise SystemExit(stopped.exit_code) from None
    finally:
        trainer.close()
    if not trainer.parallel.is_main:  # under torchrun, rank 0 reports
        return
    output_dir = Path(config.output_dir)
    records = read_metrics(output_dir / "metrics.jsonl")
    evals = [r for r in records if "eval/reward" in r]
    plot = plot_run(records, output_dir / "training.png")
    print(f"GRPO: {config.steps} steps in {time.perf_counter() - started:.0f}s on {trainer.device}")
    if evals:
        before, after = evals[0], evals[-1]
        print(f"held-out reward (greedy, {config.eval_questions} test questions): before {before['eval/reward']:.3f} -> "
              f"after {after['eval/reward']:.3f} ({after['eval/reward'] - before['eval/reward']:+.3f}); format ok "
              f"{before.get('eval/reward/format_ok', 0.0):.2f} -> {after.get('eval/reward/format_ok', 0.0):.2f}")
    print(f"metrics: {output_dir / 'metrics.jsonl'}  plot: {plot}  episodes: deepresearch view {output_dir}")


if __name__ == "__main__":
    main()
