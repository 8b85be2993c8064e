"""Train a search agent with GRPO.

With no arguments this runs on a CPU laptop: it builds a tiny model locally,
warm-starts it on the demo world's scripted trajectories (SFT, env text masked;
the teacher searches on only 40% of them and otherwise echoes the question, so
the warm-started model under-uses search), then runs GRPO against
DeepResearch-Wiki-v0's demo world, and prints and plots the held-out reward
before and after GRPO.

    python examples/train_grpo.py
    python examples/train_grpo.py --model Qwen/Qwen2.5-7B-Instruct --engine vllm \
        --env-kwargs '{"corpus": "wiki18_index/", "dataset": "musique/train.jsonl"}' --steps 200
    torchrun --nproc-per-node 8 examples/train_grpo.py --model Qwen/Qwen2.5-7B-Instruct --engine vllm ...

Under torchrun every process runs this script and trains data-parallel; the tiny model's
warm start runs in one process, so warm-start first (``--steps 0``), then pass
``--model OUTPUT/warm_start`` to torchrun.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from deepresearch.agents import GRPOTrainer, PolicyLossConfig, TrainingInterrupted, UpdateConfig, default_tiny_model, plot_run, read_metrics
from deepresearch.agents.grpo.aggregation import LOSS_AGGREGATIONS
from deepresearch.agents.grpo.policy_losses import POLICY_LOSSES
from deepresearch.agents.rollout.engines import ENGINES
from deepresearch.agents.train.demo import (
    DEMO_ENV_KWARGS,
    DEMO_OPTIMIZER,
    DEMO_ROLLOUT,
    DEMO_SFT,
    DEMO_WARM_START_GUESS_RATE,
    demo_grpo_config,
    demo_warm_start,
)
from deepresearch.envs import PROTOCOLS


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="HF id or path (default: the tiny local model)")
    parser.add_argument("--env-id", default="DeepResearch-Wiki-v0")
    parser.add_argument("--protocol", default=None, choices=sorted(PROTOCOLS))
    parser.add_argument("--dataset", default=None, help="QA file for the env (default: the demo world)")
    parser.add_argument("--env-kwargs", default="{}", help="extra env kwargs as JSON")
    parser.add_argument("--engine", default="auto", choices=sorted({"auto", *ENGINES}), help="auto: vllm when it imports, else hf")
    parser.add_argument("--group-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="questions per step")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--kl", type=float, default=0.0, help="KL coefficient to the initial policy")
    loss = PolicyLossConfig()
    parser.add_argument("--policy-loss", default=loss.policy_loss, choices=sorted(POLICY_LOSSES),
                        help="ppo (per-token clip), gspo (sequence ratio), cispo (clipped IS weights), or a registered one")
    parser.add_argument("--loss-agg", default=loss.loss_agg, choices=sorted(LOSS_AGGREGATIONS), help="how token losses are averaged")
    parser.add_argument("--clip-low", type=float, default=loss.clip_eps_low, help="ratio clip: 1 - LOW (GSPO's paper: 3e-4)")
    parser.add_argument("--clip-high", type=float, default=loss.clip_eps_high, help="ratio clip: 1 + HIGH (GSPO's paper: 4e-4)")
    parser.add_argument("--max-staleness", type=int, default=0, help="generate rollouts up to this many updates ahead, overlapping training (0: on-policy)")
    parser.add_argument("--ppo-epochs", type=int, default=1, help="passes over each rollout batch")
    parser.add_argument("--mini-batch-size", type=int, default=None, help="episodes per optimizer step (default: the whole batch)")
    parser.add_argument("--schedule", default="async", choices=["async", "sync"], help="rollouts per episode (async) or in lockstep (sync, the reference)")
    parser.add_argument("--lora-rank", type=int, default=0)
    parser.add_argument("--sft-steps", type=int, default=DEMO_SFT.steps, help="warm-start steps (tiny model only; 0 = skip)")
    parser.add_argument("--guess-rate", type=float, default=DEMO_WARM_START_GUESS_RATE,
                        help="share of warm-start trajectories that answer without searching (0 = always search)")
    parser.add_argument("--eval-questions", type=int, default=None)
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--no-mask-env-tokens", action="store_true", help="ablation: train on env text too")
    parser.add_argument("--output-dir", default="runs/train_grpo")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="engine logs on the console (default: OUTPUT/engine.log)")
    return parser.parse_args()


def warm_started_tiny_model(args: argparse.Namespace, env_kwargs: dict, output_dir: Path) -> str:
    """The tiny model, SFT'd on scripted trajectories once (reused on --resume)."""
    print("model: the tiny local Qwen2-architecture model (built once, cached)")
    model = str(default_tiny_model())
    warm_dir = output_dir / "warm_start"
    if args.sft_steps > 0 and not (args.resume and warm_dir.is_dir()):
        started = time.perf_counter()
        print(f"warm start: SFT for {args.sft_steps} steps on scripted trajectories, {args.guess_rate:.0%} of them "
              "answering without searching (env text masked)")
        with tqdm(total=args.sft_steps, desc="warm start", unit="step", leave=False, dynamic_ncols=True) as bar:

            def on_step(step: int, loss: float) -> None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

            losses = demo_warm_start(model, warm_dir, args.env_id, env_kwargs, args.sft_steps, args.guess_rate, args.seed, on_step=on_step)
        print(f"warm start done in {time.perf_counter() - started:.0f}s (loss {losses[0]:.2f} -> {losses[-1]:.2f})")
    return str(warm_dir) if warm_dir.is_dir() else model


def main() -> None:
    args = parse_args()
    if not args.verbose:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    output_dir = Path(args.output_dir)
    env_kwargs = {**DEMO_ENV_KWARGS, **json.loads(args.env_kwargs)}
    if args.protocol:
        env_kwargs["protocol"] = args.protocol
    if args.dataset:
        env_kwargs["dataset"] = args.dataset
    if args.model is None and args.sft_steps > 0 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SystemExit("the warm start runs in one process: run it first without torchrun (--steps 0), "
                         f"then torchrun ... --model {output_dir / 'warm_start'}")
    model = args.model or warm_started_tiny_model(args, env_kwargs, output_dir)
    loss = PolicyLossConfig(
        policy_loss=args.policy_loss, loss_agg=args.loss_agg, clip_eps_low=args.clip_low, clip_eps_high=args.clip_high, kl_coef=args.kl
    )
    flags = {
        "group_size": args.group_size,
        "questions_per_step": args.batch_size,
        "steps": args.steps,
        "eval_questions": args.eval_questions,
        "eval_every": args.eval_every,
    }
    config = demo_grpo_config(
        model=model,
        env_id=args.env_id,
        env_kwargs=env_kwargs,
        engine=args.engine,
        optimizer=replace(DEMO_OPTIMIZER, learning_rate=args.lr or DEMO_OPTIMIZER.learning_rate),
        update=UpdateConfig(loss=loss, ppo_epochs=args.ppo_epochs, mini_batch_size=args.mini_batch_size),
        rollout=replace(DEMO_ROLLOUT, schedule=args.schedule),
        max_staleness=args.max_staleness,
        lora_rank=args.lora_rank,
        mask_env_tokens=not args.no_mask_env_tokens,
        output_dir=str(output_dir),
        resume=args.resume,
        seed=args.seed,
        **{name: value for name, value in flags.items() if value is not None},
    )
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
    records = read_metrics(output_dir / "metrics.jsonl")
    evals = [r for r in records if "eval/reward" in r]
    plot = plot_run(records, output_dir / "training.png")
    print(f"GRPO: {config.steps} steps in {time.perf_counter() - started:.0f}s on {trainer.device}")
    if evals:
        before, after = evals[0]["eval/reward"], evals[-1]["eval/reward"]
        print(f"held-out reward (greedy, {config.eval_questions} test questions): before {before:.3f} -> after {after:.3f} ({after - before:+.3f})")
    print(f"metrics: {output_dir / 'metrics.jsonl'}  plot: {plot}  episodes: deepresearch view {output_dir}")


if __name__ == "__main__":
    main()
