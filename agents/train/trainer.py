"""The GRPO trainer, readable top to bottom.

Each step: take the step's rollout batch from the producer (G episodes per question,
each episode asynchronous against its env; see ``producer.py``) -> DAPO's overlong
shaping (optional) -> group-normalised advantages -> PPO-style masked
policy-gradient update (``ppo_epochs`` x mini-batches; one step by default) ->
publish the new weights to the producer -> log. With ``max_staleness = 0`` the
producer generates each batch on demand with the newest weights (wake engine,
roll out, sleep; sync after the update); with ``k > 0`` it generates up to ``k``
versions ahead in its own thread while the update runs. Held-out evaluation and
atomic checkpoints every N steps; ``resume`` restores model, optimizer, scheduler,
RNG and the exact data position.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from tqdm.auto import tqdm

from deepresearch.agents.eval.held_out import evaluate
from deepresearch.agents.grpo.advantages import group_advantages
from deepresearch.agents.grpo.overlong import apply_overlong
from deepresearch.agents.grpo.update import count_micro_batches, grpo_update
from deepresearch.agents.models.demo_model import default_tiny_model
from deepresearch.agents.models.loading import engine_weights, load_policy, resolve_device
from deepresearch.agents.rollout.batch import collate_episodes
from deepresearch.agents.rollout.engines import RolloutEngine, make_engine, resolve_engine_kind
from deepresearch.agents.rollout.stats import episode_metrics
from deepresearch.agents.rollout.turns import TurnEncoder
from deepresearch.agents.train.checkpoint import latest_checkpoint, load_trainer_state, restore_rng_state, rng_state, save_checkpoint
from deepresearch.agents.train.config import GRPOConfig
from deepresearch.agents.train.metrics_log import MetricsLogger, console_line
from deepresearch.agents.train.producer import ProducedBatch, RolloutProducer
from deepresearch.agents.train.sampler import QuestionSampler
from deepresearch.agents.trajectories import episode_record
from deepresearch.envs import question_count

CONSOLE_KEYS = ("reward/mean", "reward/format_ok", "episode/searches", "episode/response_tokens", "eval/reward")


def make_envs(env_id: str, count: int, kwargs: dict[str, Any]) -> list[Any]:
    """``count`` independent env instances (our envs share one index through the retriever cache)."""
    import deepresearch  # noqa: F401  (registers our env ids)

    return [gym.make(env_id, **kwargs) for _ in range(count)]


def build_engine(
    kind: str, model_path: str, model: Any, tokenizer: Any, device: torch.device, log_file: Path | None, overlapped: bool = False
) -> tuple[RolloutEngine, bool]:
    """The rollout engine and whether it generates with the trainer's own model object.

    The transformers engine shares the live model (no weight sync needed), except when
    rollouts overlap training (``overlapped``): then it gets its own copy, synced like
    vLLM's. vLLM loads its own copy (eager on CPU, where graph compilation costs ~30 s
    and gains little), writes its own output to ``log_file`` (None: the console), and is
    synced after every update.
    """
    if resolve_engine_kind(kind) == "hf":
        if overlapped:
            own_copy, _ = load_policy(model_path, device)
            own_copy.requires_grad_(False)
            return make_engine("hf", own_copy, tokenizer=tokenizer), False
        return make_engine("hf", model, tokenizer=tokenizer), True
    max_len = min(model.config.get_text_config().max_position_embeddings, 8192)
    engine = make_engine(
        "vllm", model_path, tokenizer=tokenizer, max_model_len=max_len, enforce_eager=device.type == "cpu", log_file=log_file
    )
    return engine, False


class GRPOTrainer:
    def __init__(
        self,
        config: GRPOConfig,
        log: Callable[[str], None] = print,
        engine: RolloutEngine | None = None,
        progress: bool = True,
        verbose: bool = False,
    ) -> None:
        """``engine`` overrides ``config.engine`` with any object following the engine contract.

        ``log`` receives one line of metrics per step; ``progress`` shows a bar per phase
        (rollouts, update, evaluation); unless ``verbose``, the engine's own output goes to
        ``OUTPUT/engine.log`` and model-loading progress bars are off.
        """
        self.config = config
        self.log = log
        self.progress = progress
        if not verbose:
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
        torch.manual_seed(config.seed)
        self.output_dir = Path(config.output_dir)
        self.device = resolve_device(config.device)
        self.model_path = str(config.model) if config.model else str(default_tiny_model())
        self.model, self.tokenizer = load_policy(
            self.model_path, self.device, config.lora_rank, config.lora_alpha, config.gradient_checkpointing
        )
        self.envs = make_envs(config.env_id, config.group_size * config.questions_per_step, config.env_kwargs)
        self.eval_envs: list[Any] | None = None
        # Other envs pick a question by reset seed: draw seeds from a large range.
        self.sampler = QuestionSampler(question_count(self.envs[0], default=1_000_000), seed=config.seed)
        self.optimizer = torch.optim.AdamW(
            (p for p in self.model.parameters() if p.requires_grad),
            lr=config.optimizer.learning_rate,
            weight_decay=config.optimizer.weight_decay,
        )
        warmup = max(config.warmup_steps, 1)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: min(1.0, (step + 1) / warmup))
        self.ref_model = self._reference_model() if config.kl_coef > 0 else None
        self.encoder = TurnEncoder.for_tokenizer(self.tokenizer, config.prompt_mode)
        if engine is not None:
            self.engine, self.engine_shares_model = engine, False
        else:
            log_file = None if verbose else self.output_dir / "engine.log"
            self.engine, self.engine_shares_model = build_engine(
                config.engine, self.model_path, self.model, self.tokenizer, self.device, log_file, config.max_staleness > 0
            )
        self.step = 0
        self._producer: RolloutProducer | None = None
        if config.resume:
            self._resume()

    def _reference_model(self) -> Any:
        reference, _ = load_policy(self.model_path, self.device)
        reference.eval().requires_grad_(False)
        return reference

    # ------------------------------------------------------------------ loop
    def train(self) -> list[dict[str, Any]]:
        logger = MetricsLogger(self.output_dir, resumed_at=self.step if self.config.resume else None)
        history = []
        try:
            if self.step == 0 and self.config.eval_every > 0:
                logger.log(0, self.evaluate())
            while self.step < self.config.steps:
                metrics = self.train_step()
                self.step += 1
                if self.config.eval_every > 0 and self.step % self.config.eval_every == 0:
                    metrics.update(self.evaluate())
                if self.config.save_every > 0 and (self.step % self.config.save_every == 0 or self.step == self.config.steps):
                    self.save()
                logger.log(self.step, metrics)
                history.append(metrics)
                self.log(console_line(self.step, metrics, CONSOLE_KEYS))
        finally:
            self.close_producer()
            logger.close()
        return history

    @property
    def producer(self) -> RolloutProducer:
        """Built on first use, so ``self.engine`` may be replaced after construction."""
        if self._producer is None:
            self._producer = RolloutProducer(
                self.engine, self.envs, self.encoder, self.sampler, self.config, self.step,
                lambda total, description: self._bar(total, description, "episode"),
            )
        return self._producer

    def close_producer(self) -> None:
        """Stop the producer thread (rollouts generated ahead are discarded; resume regenerates them)."""
        if self._producer is not None:
            self._producer.close()
            self._producer = None

    def train_step(self) -> dict[str, Any]:
        config = self.config
        timings: dict[str, float] = {}
        started = time.perf_counter()
        produced = self.producer.next_batch(self.step)
        timings["time/rollout"] = time.perf_counter() - started
        metrics = self._rollout_metrics(produced)
        self._write_episodes(f"step_{self.step + 1:07d}", produced.episodes[: config.episodes_to_log])
        started = time.perf_counter()
        updated = self._learn(produced, metrics)
        timings["time/update"] = time.perf_counter() - started
        started = time.perf_counter()
        # Published even when nothing was learned: versions count steps, and the producer waits for them.
        self.sync_engine(self.step + 1, changed=updated)
        timings["time/sync"] = time.perf_counter() - started
        metrics["lr"] = self.scheduler.get_last_lr()[0]
        return {**metrics, **timings}

    def _rollout_metrics(self, produced: ProducedBatch) -> dict[str, Any]:
        episodes, stats = produced.episodes, produced.stats
        metrics: dict[str, Any] = episode_metrics(episodes)
        metrics["data/questions"] = produced.questions
        metrics.update(produced.metrics)
        metrics.update(
            {
                "rollout/dropped": stats.dropped,
                "rollout/engine_busy": stats.engine_busy_fraction,
                "time/generate": stats.generate_seconds,
                "time/env": stats.env_seconds,
                "staleness/mean": sum(self.step - e.policy_version for e in episodes) / max(len(episodes), 1),
                "staleness/max": max((self.step - e.policy_version for e in episodes), default=0),
            }
        )
        return metrics

    def _learn(self, produced: ProducedBatch, metrics: dict[str, Any]) -> bool:
        """Advantages and the policy update on the batch (adding to ``metrics``); False when skipped."""
        config = self.config
        if not produced.episodes:
            return False
        batch = collate_episodes(produced.episodes, self.tokenizer.pad_token_id, config.mask_env_tokens)
        metrics.update(apply_overlong(batch, produced.episodes, config.overlong, config.rollout.max_response_tokens))
        advantage = group_advantages(batch.rewards, batch.group_ids, config.scale_rewards_by_std, expected_group_size=config.group_size)
        metrics.update({"grpo/zero_variance_groups": advantage.num_zero_variance_groups, "grpo/groups": advantage.num_groups})
        advantages = advantage.advantages
        if config.filter_zero_variance:
            keep = (~advantage.zero_variance_mask).nonzero().flatten().tolist()
            if not keep:
                metrics["grpo/skipped"] = 1
                return False
            batch, advantages = batch.select(keep), advantages[keep]
        temperature = config.rollout.temperature if config.rollout.temperature > 0 else 1.0
        with self._bar(count_micro_batches(batch, config.update), f"step {self.step + 1}/{config.steps} update", "micro-batch") as bar:
            metrics.update(grpo_update(self.model, self.optimizer, batch, advantages, config.update, self.ref_model, temperature, lambda: bar.update(1)))
        self.scheduler.step()
        return True

    def evaluate(self) -> dict[str, float]:
        """Greedy reward on the held-out questions (the eval envs are built once)."""
        if self.eval_envs is None:
            self.eval_envs = make_envs(self.config.env_id, self.config.eval_questions, self.config.eval_kwargs())
        envs = self.eval_envs

        def held_out(engine: RolloutEngine) -> tuple[dict[str, float], list[Any]]:
            with self._bar(len(envs), f"evaluation at step {self.step}", "episode") as bar:
                return evaluate(engine, self.encoder, envs, self.config.rollout, bar.update)

        result, episodes = self.producer.run_on_engine(held_out)
        self._write_episodes(f"eval_{self.step:07d}", episodes)
        return {f"eval/{name}": value for name, value in result.items()}

    def _bar(self, total: int, description: str, unit: str) -> tqdm:
        """A transient progress bar for one phase (gone once the phase ends; off without ``progress``)."""
        return tqdm(total=total, desc=description, unit=unit, leave=False, disable=not self.progress, dynamic_ncols=True)

    def _write_episodes(self, name: str, episodes: list[Any]) -> None:
        """Sampled episodes as JSON lines under ``episodes/``, for ``deepresearch view RUN_DIR``."""
        if not episodes:
            return
        directory = self.output_dir / "episodes"
        directory.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps(episode_record(e, step=self.step, run=name)) for e in episodes]
        (directory / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def sync_engine(self, version: int, changed: bool = True) -> None:
        """Publish the policy after ``version`` steps to the producer, which loads its weights into a
        separate engine (vLLM, or the HF engine's own copy) between batches; a shared HF model
        needs nothing, nor do weights that did not ``change``. With rollouts overlapping training,
        the tensors are cloned first."""
        weights = None
        if changed and not self.engine_shares_model:
            weights = [(name, tensor.detach().clone() if self.producer.overlapped else tensor) for name, tensor in engine_weights(self.model)]
        self.producer.publish(version, weights)

    # ----------------------------------------------------------- checkpoints
    def save(self) -> Path:
        state = {
            "step": self.step,
            "config": self.config.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.producer.sampler_state(self.step),
            "rng": rng_state(),
        }
        return save_checkpoint(self.output_dir / "checkpoints", self.step, self.model, self.tokenizer, state, self.config.keep_checkpoints)

    def _resume(self) -> None:
        checkpoint = latest_checkpoint(self.output_dir / "checkpoints")
        if checkpoint is None:
            self.log("resume: no complete checkpoint found; starting from scratch")
            return
        state = load_trainer_state(checkpoint)
        from transformers import AutoModelForCausalLM

        if self.config.lora_rank > 0:
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(self.model, load_file(str(checkpoint / "model" / "adapter_model.safetensors")))
        else:
            saved = AutoModelForCausalLM.from_pretrained(str(checkpoint / "model"), dtype=torch.float32)
            self.model.load_state_dict(saved.state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        restore_rng_state(state["rng"])
        self.step = int(state["step"])
        self.sync_engine(self.step)
        self.log(f"resumed from {checkpoint} at step {self.step}")
