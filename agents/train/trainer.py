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
RNG, the exact data position and the rollouts generated ahead.

Faults cost at most the step in flight (``health.py``, ``stop_signals.py``): an
update with a NaN/inf gradient is skipped, episodes the engine or a tool failed are
dropped and counted, and either stops the run with ``TrainingHalted`` when it repeats;
collapse signals set ``health/*`` flags and log a warning; SIGTERM/SIGINT finish the
step in flight, checkpoint it and raise ``TrainingInterrupted``.

Launched by ``torchrun`` with several processes it trains data-parallel: the policy
(and reference) are sharded with FSDP2, each process runs its own block of the step's
questions (whole groups) on its own engine, the processes agree on the update's plan
(each step's whole token and sequence counts) so the loss is normalised as in one
process, metrics are reduced across processes, and rank 0 alone logs and writes
episodes, plots and checkpoint metadata (``distributed.py``, ``sharding.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from tqdm.auto import tqdm

from deepresearch.agents.eval.held_out import evaluate
from deepresearch.agents.grpo.advantages import group_advantages
from deepresearch.agents.grpo.overlong import apply_overlong
from deepresearch.agents.grpo.update import UpdatePlan, grpo_update, idle_batch, row_tokens
from deepresearch.agents.models.demo_model import default_tiny_model
from deepresearch.agents.models.loading import engine_weights, load_policy
from deepresearch.agents.rollout.batch import collate_episodes
from deepresearch.agents.rollout.engines import EngineRequest, RolloutEngine, build_training_engine
from deepresearch.agents.rollout.engines.console import engine_log_path
from deepresearch.agents.rollout.stats import episode_metrics
from deepresearch.agents.rollout.turns import TurnEncoder
from deepresearch.agents.train.checkpoint import export_hf_model, latest_checkpoint, load_checkpoint, load_rank_state, save_checkpoint
from deepresearch.agents.train.config import GRPOConfig
from deepresearch.agents.train.distributed import Parallel, reduce_metrics, update_reduction
from deepresearch.agents.train.health import RunHealth, TrainingHalted
from deepresearch.agents.train.metrics_log import MetricsLogger, console_line
from deepresearch.agents.train.producer import ProducedBatch, RolloutProducer
from deepresearch.agents.train.sampler import QuestionSampler
from deepresearch.agents.train.sharding import check_same_weights, shard_model
from deepresearch.agents.train.stop_signals import StopSignals, TrainingInterrupted
from deepresearch.agents.train.warm_start import warm_started_model
from deepresearch.agents.trajectories import episode_record
from deepresearch.envs import question_count

CONSOLE_KEYS = ("reward/mean", "reward/format_ok", "episode/searches", "episode/response_tokens", "eval/reward")


def make_envs(env_id: str, count: int, kwargs: dict[str, Any]) -> list[Any]:
    """``count`` independent env instances (our envs share one index through the retriever cache)."""
    import deepresearch  # noqa: F401  (registers our env ids)

    return [gym.make(env_id, **kwargs) for _ in range(count)]


def _silent(line: str) -> None:
    """The console of ranks other than 0."""


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
        self.parallel = Parallel.from_environment(config.device, config.distributed.timeout_minutes)
        if self.parallel.is_distributed and config.dynamic_sampling_rounds > 0:
            raise ValueError("dynamic_sampling_rounds > 0 needs a single process: it refills from one process's own groups")
        self.log = log if self.parallel.is_main else _silent
        self.progress = progress and self.parallel.is_main
        if not verbose:
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
        torch.manual_seed(config.seed)  # the same LoRA initialisation on every process
        self.output_dir = Path(config.output_dir)
        self.device = self.parallel.device(config.device)
        self.model_path = self._warm_started(str(config.model) if config.model else str(default_tiny_model()))
        # Sharded runs load on the CPU: fully_shard moves only each process's shards to its GPU.
        self.load_device = torch.device("cpu") if self.parallel.is_distributed else self.device
        self.model, self.tokenizer = load_policy(
            self.model_path, self.load_device, config.lora_rank, config.lora_alpha, config.gradient_checkpointing,
            trainable_layers=config.trainable_layers,
        )
        if self.parallel.is_distributed:
            check_same_weights(self.model, self.parallel)
            shard_model(self.model, config.distributed, self.device)
        # This process's questions of each step (whole groups): a block of the step's questions.
        self.questions = self.parallel.block(config.questions_per_step)
        self.envs = make_envs(config.env_id, config.group_size * len(self.questions), config.env_kwargs)
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
            request = EngineRequest(
                model_path=self.model_path,
                model=self.model,
                tokenizer=self.tokenizer,
                device=self.device,
                log_file=engine_log_path(self.output_dir, verbose),
                sharded=self.parallel.is_distributed,
                overlapped=config.max_staleness > 0,
            )
            built = build_training_engine(config.engine, request)
            self.engine, self.engine_shares_model = built.engine, built.shares_model
        self.step = 0
        self.health = RunHealth(config.health)
        self._drop_reasons: list[str] = []
        self.best_eval_reward = float("-inf")
        self._producer: RolloutProducer | None = None
        if config.resume:
            self._resume()

    def _warm_started(self, base: str) -> str:
        """The model GRPO starts from: ``base``, or its warm start (``config.warm_start``), built
        once into ``OUTPUT/warm_start`` by process 0 and reused while the settings are unchanged."""
        config, warm = self.config, self.config.warm_start
        if not warm.enabled:
            return base
        directory = self.output_dir / "warm_start"
        if self.parallel.is_main:
            started = time.perf_counter()
            with self._bar(warm.sft.steps, "warm start", "step") as bar:

                def on_step(step: int, loss: float) -> None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

                _, built = warm_started_model(base, directory, config.env_id, config.env_kwargs, warm, config.prompt_mode, config.device, on_step)
            done = f"SFT for {warm.sft.steps} steps on {warm.trajectories} scripted trajectories in {time.perf_counter() - started:.0f}s"
            self.log(f"warm start: {done if built else 'reusing the finished one'}; model in {directory}")
        self.parallel.barrier()
        return str(directory)

    def _reference_model(self) -> Any:
        reference, _ = load_policy(self.model_path, self.load_device)
        reference.eval().requires_grad_(False)
        if self.parallel.is_distributed:
            shard_model(reference, self.config.distributed, self.device)
        return reference

    # ------------------------------------------------------------------ loop
    def train(self) -> list[dict[str, Any]]:
        report_to = self.config.report_to if self.parallel.is_main else ()
        logger = MetricsLogger(self.output_dir, self.step if self.config.resume else None, report_to, self.config.to_dict())
        history = []
        try:
            with StopSignals() as signals:
                if self.step == 0 and self.config.eval_every > 0:
                    logger.log(0, self.evaluate())
                while self.step < self.config.steps:
                    metrics = self.train_step()
                    self.step += 1
                    report = self.health.check(self.step, metrics, self._drop_reasons)
                    metrics.update(report.flags)
                    for line in report.lines:
                        self.log(line)
                    if not report.halt and self.config.eval_every > 0 and self.step % self.config.eval_every == 0:
                        metrics.update(self.evaluate())
                        self._export_if_best(metrics["eval/reward"])
                    due = self.config.save_every > 0 and (self.step % self.config.save_every == 0 or self.step == self.config.steps)
                    checkpoint = self.save() if due else None
                    # Asked after the checkpoint: a signal that came during its write is seen now.
                    stop = None if report.halt else self._stop_signal(signals)
                    if stop and checkpoint is None:
                        checkpoint = self.save()
                    logger.log(self.step, metrics)
                    history.append(metrics)
                    self.log(console_line(self.step, metrics, CONSOLE_KEYS))
                    if report.halt:
                        raise TrainingHalted(report.halt)
                    if stop and self.step < self.config.steps:
                        raise TrainingInterrupted(stop, self.step, checkpoint)
        finally:
            self.close_producer()
            logger.close()
        export_hf_model(self.model, self.tokenizer, self.output_dir / "final_model", self.parallel)
        return history

    def _stop_signal(self, signals: StopSignals) -> str | None:
        """The signal that asked this run to stop, agreed by every process (any one's counts)."""
        received = signals.received
        if self.parallel.is_distributed:
            names = [name for name in self.parallel.all_gather_objects(received) if name]
            received = names[0] if names else None
        return received

    def _export_if_best(self, reward: float) -> None:
        """``OUTPUT/best_model``: a plain HF model of the best held-out reward so far."""
        if reward > self.best_eval_reward:
            self.best_eval_reward = reward
            export_hf_model(self.model, self.tokenizer, self.output_dir / "best_model", self.parallel)

    def close(self) -> None:
        """Stop the producer thread and leave the process group (a no-op in a single process);
        no rollouts after this."""
        self.close_producer()
        self.parallel.close()

    @property
    def producer(self) -> RolloutProducer:
        """Built on first use, so ``self.engine`` may be replaced after construction."""
        if self._producer is None:
            self._producer = RolloutProducer(
                self.engine,
                self.envs,
                self.encoder,
                self.sampler,
                self.config,
                self.step,
                lambda total, description: self._bar(total, description, "episode"),
                self.questions,
                self.parallel.rank,
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
        self._drop_reasons = produced.stats.drop_reasons
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
        return {**metrics, **reduce_metrics(self.parallel, timings)}

    def _rollout_metrics(self, produced: ProducedBatch) -> dict[str, Any]:
        """This process's rollout metrics, reduced over processes (``data/questions``: the whole step's)."""
        episodes, stats = produced.episodes, produced.stats
        metrics: dict[str, Any] = episode_metrics(episodes)
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
        return {**reduce_metrics(self.parallel, metrics), "data/questions": produced.questions}

    def _learn(self, produced: ProducedBatch, metrics: dict[str, Any]) -> bool:
        """Advantages and the policy update on the batch (adding to ``metrics``); False when no
        process had a row to train on. Every process calls it, with or without rows of its own."""
        config = self.config
        batch, advantages, local = None, None, {}
        if produced.episodes:
            batch = collate_episodes(produced.episodes, self.tokenizer.pad_token_id, config.mask_env_tokens)
            local.update(apply_overlong(batch, produced.episodes, config.overlong, config.rollout.max_response_tokens))
            advantage = group_advantages(batch.rewards, batch.group_ids, config.scale_rewards_by_std, expected_group_size=config.group_size)
            local.update({"grpo/zero_variance_groups": advantage.num_zero_variance_groups, "grpo/groups": advantage.num_groups})
            advantages = advantage.advantages
            if config.filter_zero_variance:
                keep = (~advantage.zero_variance_mask).nonzero().flatten().tolist()
                batch, advantages = (batch.select(keep), advantages[keep]) if keep else (None, None)
        metrics.update(reduce_metrics(self.parallel, local, {name: float(len(produced.episodes)) for name in local}))
        tokens_by_process = self.parallel.all_gather_objects(row_tokens(batch) if batch is not None else [])
        plan = UpdatePlan.across(tokens_by_process, self.parallel.rank, config.update)
        if plan.num_sequences == 0:  # no process has a row to train on
            if config.filter_zero_variance and metrics.get("episodes"):
                metrics["grpo/skipped"] = 1
            return False
        local_tokens = sum(tokens_by_process[self.parallel.rank])
        if batch is None:  # other processes have rows: take part in the step with idle passes
            batch, advantages = idle_batch(self.tokenizer.pad_token_id), torch.zeros(1)
        temperature = config.rollout.temperature if config.rollout.temperature > 0 else 1.0
        with self._bar(plan.training_passes(config.update.ppo_epochs), f"step {self.step + 1}/{config.steps} update", "micro-batch") as bar:
            update = grpo_update(
                self.model, self.optimizer, batch, advantages, config.update, self.ref_model, temperature, lambda: bar.update(1), plan
            )
        weights = {name: float(local_tokens) for name in update if name.startswith("importance/")}
        metrics.update(reduce_metrics(self.parallel, update, weights, rule=update_reduction))
        if update["optimizer_steps"] > 0:  # an update skipped for a NaN/inf gradient leaves the schedule too
            self.scheduler.step()
        return True

    def evaluate(self) -> dict[str, float]:
        """Greedy reward on the held-out questions (the eval envs are built once)."""
        block = self.parallel.block(self.config.eval_questions)  # this process's held-out questions
        if self.eval_envs is None:
            self.eval_envs = make_envs(self.config.env_id, len(block), self.config.eval_kwargs())
        envs = self.eval_envs

        def held_out(engine: RolloutEngine) -> tuple[dict[str, float], list[Any]]:
            with self._bar(len(envs), f"evaluation at step {self.step}", "episode") as bar:
                return evaluate(engine, self.encoder, envs, self.config.rollout, bar.update, block.start)

        result, episodes = self.producer.run_on_engine(held_out)
        self._write_episodes(f"eval_{self.step:07d}", episodes, gather=True)
        return {f"eval/{name}": value for name, value in reduce_metrics(self.parallel, result).items()}

    def _bar(self, total: int, description: str, unit: str) -> tqdm:
        """A transient progress bar for one phase (gone once the phase ends; off without ``progress``)."""
        return tqdm(total=total, desc=description, unit=unit, leave=False, disable=not self.progress, dynamic_ncols=True)

    def _write_episodes(self, name: str, episodes: list[Any], gather: bool = False) -> None:
        """Episodes as JSON lines under ``episodes/``, for ``deepresearch view RUN_DIR``, written by
        rank 0: its own (a sample), or with ``gather`` every process's (held-out evaluation)."""
        lines = [json.dumps(episode_record(e, step=self.step, run=name)) for e in episodes]
        if gather:
            lines = [line for part in self.parallel.all_gather_objects(lines) for line in part]
        if not lines or not self.parallel.is_main:
            return
        directory = self.output_dir / "episodes"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def sync_engine(self, version: int, changed: bool = True) -> None:
        """Publish the policy after ``version`` steps to the producer, which loads its weights into a
        separate engine (vLLM, or the HF engine's own copy) between batches; a shared HF model
        needs nothing, nor do weights that did not ``change``. On-policy the weights stream into
        the engine one tensor at a time (gathered from the shards when sharded: every process
        calls this at the same point); with rollouts overlapping training they are cloned first.
        """
        weights: Iterable[tuple[str, torch.Tensor]] | None = None
        if changed and not self.engine_shares_model:
            weights = engine_weights(self.model)
            if self.producer.overlapped:
                weights = [(name, tensor.clone()) for name, tensor in weights]
        self.producer.publish(version, weights)

    # ----------------------------------------------------------- checkpoints
    def save(self) -> Path:
        state = {
            "step": self.step,
            "config": self.config.to_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.producer.sampler_state(self.step),
            "best_eval_reward": self.best_eval_reward,
        }
        rank_state = {"producer": self.producer.checkpoint_state(self.step)}
        return save_checkpoint(
            self.output_dir / "checkpoints", self.step, self.model, self.optimizer, state, self.parallel, self.config.keep_checkpoints, rank_state
        )

    def _resume(self) -> None:
        checkpoint = latest_checkpoint(self.output_dir / "checkpoints")
        if checkpoint is None:
            self.log("resume: no complete checkpoint found; starting from scratch")
            return
        state = load_checkpoint(checkpoint, self.model, self.optimizer, self.parallel)
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        self.best_eval_reward = state["best_eval_reward"]
        self.step = int(state["step"])
        rank_state = load_rank_state(checkpoint, self.parallel)
        if rank_state is not None:  # the rollouts generated ahead, and the sampler position after them
            self.producer.restore(rank_state["producer"])
        elif self.config.max_staleness > 0:
            self.log("resume: rollouts generated ahead are regenerated (checkpoint written at another world size)")
        self.sync_engine(self.step)
        self.log(f"resumed from {checkpoint} at step {self.step}")
