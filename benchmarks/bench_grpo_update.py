"""GRPO update throughput: our ``grpo_update`` vs ``trl.GRPOTrainer``'s training step, side by side.

Why: issue #3 asks whether our update (length-sorted micro-batches, one masked
PPO-clip loss, one optimizer step) trains faster than TRL's on the same tiny
model and the same batch — goal ≥ 1.5×. Generation is not part of this
comparison (the rollout engines have their own benchmarks), so both contenders
get the *same* finished episodes, token ids and advantages, and only the update
is timed.

The batch: ``--questions`` demo-world questions (DeepResearch-Wiki-v0 with the
demo's env settings) × ``--group-size`` episodes each. In every
group ``--sampled-per-group`` episodes are sampled once by our transformers
engine from the untrained tiny model (``run_rollouts``: format feedback from the
env, reward 0) and the rest are the scripted oracle's (search, retrieved
passages, answer; reward from the env's own reward function), so groups have
reward variance, varied lengths and env-written tokens to mask. Advantages come
from ``group_advantages`` and go to both sides unchanged.

What each side times, per round (one optimizer step over the whole batch):

* **ours**: ``grpo_update`` — per length-sorted micro-batch a forward over the
  micro-batch's (trimmed) width, logprobs + entropy from the LM head run only at
  response positions (``masked_forward``), the
  token-mean PPO-clip loss, backward; then grad clipping and ``optimizer.step``.
  Collation and advantages are done beforehand (as in our trainer).
* **TRL**: what ``Trainer._inner_training_loop`` runs per optimizer step —
  ``gradient_accumulation_steps`` calls of ``GRPOTrainer.training_step`` (its
  ``_prepare_inputs``: shuffle + split of the buffered generation batch; its
  ``compute_loss``: forward with TRL's fused LM head, loss, metrics;
  ``accelerator.backward``), then ``_clip_grad_norm``, ``optimizer.step``,
  ``model.zero_grad``. The generation batch is TRL's own
  ``_generate_and_score_completions`` output (``rollout_func`` returning our
  episodes with ``env_mask`` = our loss mask, as ``agents/trl_adapter.py`` does;
  rewards through ``env_reward``), computed once beforehand, with its advantages
  replaced by ours; the subclass only hands that cached batch back where TRL
  would generate. With ``steps_per_generation == gradient_accumulation_steps``
  and no vLLM TRL computes no old-policy logprobs, and with ``beta = 0`` no
  reference logprobs; ours computes neither either. Callbacks, logging and the
  LR scheduler step are not timed (nor is any scheduler on our side).

Matched settings: fp32 on CPU (``bf16=False``), no gradient checkpointing (TRL's
default is on), the same micro-batch size and accumulation steps, no KL, clip
ε 0.2 / 0.28, token-mean loss (TRL ``loss_type="dapo"``), temperature 1, max
grad norm 1, entropy computed on both sides, and the same ``torch.optim.AdamW``
(lr, no weight decay) handed to TRL through ``optimizers=`` (TRL would pick its
own fused AdamW). Each contender loads its own fresh copy of the model.

Differences that remain (they are what is being compared): TRL pads the whole
generation batch to its longest prompt (left) and completion (right) and
splits it in random order, so every micro-batch has the global width; ours
sorts by length and trims each micro-batch. TRL's fused LM head projects every
completion position (env tokens included) in tiles; ours projects only the
policy tokens that carry loss.
Both report the padded tokens they forward and the positions their LM head
scores. Tokens/s counts the same real (unpadded) tokens for both: every
sequence token (prompt + policy + env) and, separately, the policy tokens
that carry loss.

    nice -n 19 .venv/bin/python benchmarks/bench_grpo_update.py [--rounds 5] [--questions 4 --group-size 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

# TRL warns on every use of its experimental rollout_func hook; keep stderr readable.
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import gymnasium as gym
import torch

import deepresearch  # noqa: F401  (registers the env ids)
from deepresearch.agents import (
    Episode,
    RolloutBatch,
    TurnEncoder,
    collate_episodes,
    default_tiny_model,
    group_advantages,
    load_policy,
    make_engine,
    run_rollouts,
)
from deepresearch.agents.adapters.trl import env_reward
from deepresearch.agents.grpo.update import UpdateConfig, grpo_update, micro_batches
from deepresearch.agents.rollout.request import RolloutRequest
from deepresearch.agents.train.demo import DEMO_ENV_KWARGS, demo_grpo_config
from deepresearch.agents.train.sft import collect_oracle_trajectories, encode_trajectory
from deepresearch.envs.oracle import OraclePolicy

ENV_ID = "DeepResearch-Wiki-v0"
CPU = torch.device("cpu")
DEMO = demo_grpo_config()  # the demo step's sampling budget, clip range and learning rate


# ------------------------------------------------------------------ the batch
def sampled_episodes(model_path: str, questions: int, per_group: int, seed: int) -> list[Episode]:
    """``per_group`` episodes per question sampled by our transformers engine, as a GRPO step would."""
    model, tokenizer = load_policy(model_path, CPU)
    engine = make_engine("hf", model, tokenizer=tokenizer)
    slots = [question for question in range(questions) for _ in range(per_group)]
    envs = [gym.make(ENV_ID, **DEMO_ENV_KWARGS) for _ in slots]
    resets = [{"seed": seed + slot, "options": {"index": question}} for slot, question in enumerate(slots)]
    config = replace(DEMO.rollout, seed=seed)
    episodes, stats = run_rollouts(RolloutRequest(engine, envs, resets, slots, config, TurnEncoder(tokenizer, "text")))
    if stats.dropped:
        raise RuntimeError(f"{stats.dropped} sampled episodes failed the token check ({stats.drop_reasons[:2]}); try another --seed")
    return episodes


def oracle_episodes(tokenizer: Any, questions: int, per_group: int) -> list[Episode]:
    """``per_group`` copies per question of the scripted oracle's episode, with the env's reward."""
    env = gym.make(ENV_ID, **DEMO_ENV_KWARGS).unwrapped
    encoder = TurnEncoder(tokenizer, "text")
    trajectories = collect_oracle_trajectories(env, questions, OraclePolicy(env.protocol))
    episodes = []
    for question, trajectory in enumerate(trajectories):
        ids, mask = encode_trajectory(trajectory, encoder, tokenizer.eos_token_id)
        prompt = len(encoder.encode_prompt(trajectory.prompt, trajectory.messages))
        reward = trajectory.reward
        for _ in range(per_group):
            episodes.append(Episode(
                group_id=question, prompt_ids=ids[:prompt], response_ids=ids[prompt:], loss_mask=mask[prompt:],
                rollout_logprobs=[0.0] * (len(ids) - prompt), reward=reward, question=env.questions[question].question,
            ))
    return episodes


@dataclass
class Workload:
    episodes: list[Episode]  # ordered group by group: TRL reads groups as consecutive rows
    batch: RolloutBatch
    advantages: torch.Tensor
    parameters: int

    @property
    def sequence_tokens(self) -> int:
        return int(self.batch.lengths.sum())

    @property
    def policy_tokens(self) -> int:
        return int(self.batch.loss_mask.sum())


def build_workload(model_path: str, args: argparse.Namespace) -> Workload:
    model, tokenizer = load_policy(model_path, CPU)
    sampled = sampled_episodes(model_path, args.questions, args.sampled_per_group, args.seed)
    oracle = oracle_episodes(tokenizer, args.questions, args.group_size - args.sampled_per_group)
    episodes = sorted(sampled + oracle, key=lambda episode: episode.group_id)  # stable: groups become contiguous
    batch = collate_episodes(episodes, tokenizer.pad_token_id)
    advantage = group_advantages(batch.rewards, batch.group_ids, expected_group_size=args.group_size)
    return Workload(episodes, batch, advantage.advantages, sum(p.numel() for p in model.parameters()))


# ------------------------------------------------------------------ contenders
def adamw(model: Any) -> torch.optim.Optimizer:
    """The one optimizer both sides use."""
    return torch.optim.AdamW(model.parameters(), lr=DEMO.optimizer.learning_rate, weight_decay=0.0)


def update_config(args: argparse.Namespace) -> UpdateConfig:
    return replace(DEMO.update, micro_batch_size=args.micro_batch_size)


def ours(model_path: str, work: Workload, args: argparse.Namespace) -> tuple[Callable[[], float], dict[str, int]]:
    """Our update as a zero-argument step returning the pre-clip grad norm, and its forwarded shape."""
    model, _ = load_policy(model_path, CPU)
    optimizer, config = adamw(model), update_config(args)
    groups = micro_batches(work.batch, config.micro_batch_size)
    widths = [int(work.batch.lengths[rows].max()) for rows in groups]
    shape = {
        "padded_tokens_forwarded": sum(len(rows) * width for rows, width in zip(groups, widths)),
        "lm_head_positions": int(work.batch.loss_mask[:, 1:].sum()),  # masked_forward: loss positions only
    }
    return lambda: grpo_update(model, optimizer, work.batch, work.advantages, config)["grad_norm"], shape


def trl_rollout_output(episodes: list[Episode]) -> dict[str, list[Any]]:
    """What a TRL ``rollout_func`` returns for finished episodes (the keys ``TRLRolloutAdapter`` returns)."""
    return {
        "prompt_ids": [list(e.prompt_ids) for e in episodes],
        "completion_ids": [list(e.response_ids) for e in episodes],
        "logprobs": [list(e.rollout_logprobs) for e in episodes],
        "env_mask": [list(e.loss_mask) for e in episodes],
        "env_reward": [float(e.reward) for e in episodes],
    }


def trl(model_path: str, work: Workload, args: argparse.Namespace, output_dir: str) -> tuple[Callable[[], float], dict[str, int]]:
    """TRL's optimizer step as a zero-argument step returning the pre-clip grad norm, and its forwarded shape."""
    import trl as trl_module
    from datasets import Dataset

    class CachedGeneration(trl_module.GRPOTrainer):
        """Hands back one generation batch, scored beforehand, wherever TRL would generate and score."""

        cached: dict[str, Any] | None = None

        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            if self.cached is None:
                raise RuntimeError("score the generation batch before timing")
            return dict(self.cached)

        def score(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            return super()._generate_and_score_completions(inputs)

    model, tokenizer = load_policy(model_path, CPU)
    steps = len(work.episodes) // args.micro_batch_size
    config = trl_module.GRPOConfig(
        output_dir=output_dir, use_cpu=True, bf16=False, gradient_checkpointing=False, report_to=[], save_strategy="no",
        per_device_train_batch_size=args.micro_batch_size, gradient_accumulation_steps=steps, num_generations=args.group_size,
        learning_rate=DEMO.optimizer.learning_rate, max_grad_norm=DEMO.update.max_grad_norm, beta=0.0, loss_type="dapo",
        epsilon=DEMO.update.loss.clip_eps_low, epsilon_high=DEMO.update.loss.clip_eps_high, temperature=1.0,
        max_completion_length=DEMO.rollout.max_response_tokens,
    )
    prompts = [{"prompt": episode.question} for episode in work.episodes]
    trainer = CachedGeneration(
        model=model, reward_funcs=env_reward, args=config, processing_class=tokenizer, optimizers=(adamw(model), None),
        train_dataset=Dataset.from_list(prompts), rollout_func=lambda _prompts, _trainer: trl_rollout_output(work.episodes),
    )
    trainer.model.train()  # TRL scores in train mode: groups of num_generations
    cached = trainer.score([dict(prompt) for prompt in prompts])  # TRL adds the reward fields to its inputs
    cached["advantages"] = work.advantages.to(cached["advantages"].dtype)
    trainer.cached = cached
    trainer.current_gradient_accumulation_steps = steps  # set by Trainer._run_epoch in a real run

    def step() -> float:
        for _ in range(steps):
            trainer.training_step(trainer.model, prompts, None)
        grad_norm = trainer._clip_grad_norm(trainer.model)
        trainer.optimizer.step()
        trainer.model.zero_grad()
        return float(grad_norm)

    width = cached["prompt_ids"].shape[1] + cached["completion_ids"].shape[1]
    shape = {"padded_tokens_forwarded": len(work.episodes) * width, "lm_head_positions": int(cached["completion_mask"].sum())}
    return step, shape


# ------------------------------------------------------------------ measuring
def timed(step: Callable[[], float]) -> tuple[float, float]:
    start = time.perf_counter()
    grad_norm = step()
    return time.perf_counter() - start, grad_norm


def summary(seconds: list[float], work: Workload, first_grad_norm: float, shape: dict[str, int]) -> dict[str, Any]:
    median = statistics.median(seconds)
    return {
        "seconds_median": round(median, 4),
        "seconds_rounds": [round(s, 4) for s in seconds],
        "sequence_tokens_per_s": round(work.sequence_tokens / median, 1),
        "policy_tokens_per_s": round(work.policy_tokens / median, 1),
        "grad_norm_first_step": round(first_grad_norm, 6),
        **shape,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=DEMO.questions_per_step)
    parser.add_argument("--group-size", type=int, default=DEMO.group_size)
    parser.add_argument("--sampled-per-group", type=int, default=4, help="the rest of each group is the oracle's episode")
    parser.add_argument("--micro-batch-size", type=int, default=DEMO.update.micro_batch_size)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after one warm-up step each")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    episodes = args.questions * args.group_size
    if not 0 < args.sampled_per_group < args.group_size or episodes % args.micro_batch_size:
        parser.error("need 0 < --sampled-per-group < --group-size and --micro-batch-size dividing the episode count")

    torch.manual_seed(args.seed)
    load_start = os.getloadavg()[0]
    model_path = str(default_tiny_model())
    start = time.perf_counter()
    work = build_workload(model_path, args)
    setup_episodes_s = time.perf_counter() - start
    trl_output = tempfile.TemporaryDirectory(prefix="bench_grpo_update_")  # TRL wants an output_dir; nothing is saved
    contenders = {"ours": ours(model_path, work, args), "trl": trl(model_path, work, args, trl_output.name)}

    first = {name: timed(step)[1] for name, (step, _) in contenders.items()}  # warm-up; same initial weights
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for round_index in range(args.rounds):
        names = list(contenders) if round_index % 2 == 0 else list(reversed(contenders))
        for name in names:
            seconds[name].append(timed(contenders[name][0])[0])

    results = {name: summary(seconds[name], work, first[name], shape) for name, (_, shape) in contenders.items()}
    batch = work.batch
    prompt_tokens = sum(len(e.prompt_ids) for e in work.episodes)
    print(json.dumps({
        "benchmark": "grpo_update_vs_trl",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch_threads": torch.get_num_threads(),
            "load_average_1m_start": round(load_start, 2),
            "load_average_1m_end": round(os.getloadavg()[0], 2),
        },
        "versions": {"torch": torch.__version__, "trl": __import__("trl").__version__, "transformers": __import__("transformers").__version__},
        "model": {"path": model_path, "parameters": work.parameters},
        "batch": {
            "episodes": len(batch),
            "groups": args.questions,
            "group_size": args.group_size,
            "sampled_per_group": args.sampled_per_group,
            "micro_batch_size": args.micro_batch_size,
            "gradient_accumulation_steps": len(batch) // args.micro_batch_size,
            "sequence_tokens": work.sequence_tokens,
            "policy_tokens": work.policy_tokens,
            "prompt_tokens": prompt_tokens,
            "env_tokens_masked": work.sequence_tokens - prompt_tokens - work.policy_tokens,
            "max_sequence_length": int(batch.lengths.max()),
            "mean_reward": round(float(batch.rewards.mean()), 3),
            "setup_seconds": round(setup_episodes_s, 1),
        },
        "rounds": args.rounds,
        "ours": results["ours"],
        "trl": results["trl"],
        "ours_over_trl": round(results["trl"]["seconds_median"] / results["ours"]["seconds_median"], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
