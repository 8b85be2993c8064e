"""GRPO training of search agents against any env that follows the text contract.

Subpackages, by role:

* ``rollout/`` — engines (vLLM, transformers: token ids in, token ids out; continuous
  batching), turn encoding of the env's text, the multi-turn episode loop (per-episode
  async, and the turn-synchronous reference), batch collation;
* ``grpo/`` — group-relative advantages, the masked PPO-clip loss, the update;
* ``train/`` — the trainer and its config, checkpoints, metrics, plots, the question
  sampler, SFT warm start, the CPU demo's settings;
* ``eval/`` — greedy held-out evaluation and the ``deepresearch eval`` harness;
* ``adapters/`` — our envs inside TRL and verl;
* ``models/`` — loading policies, the tiny offline model;
* ``viewer/`` — ``deepresearch view``.

The public names below are imported on first use (PEP 562), so ``deepresearch view``
or a replayed ``deepresearch eval`` never pays for torch, which only the trainer and
engines need. Type checkers see them through the ``TYPE_CHECKING`` imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepresearch.agents.adapters.trl import TRLRolloutAdapter, env_reward
    from deepresearch.agents.eval.harness import EngineRunner, TextPolicyRunner, load_dataset, markdown_table, run_evaluation, summarize
    from deepresearch.agents.eval.judge import LLMJudge
    from deepresearch.agents.eval.text_policies import ChatPolicy, ReplayPolicy
    from deepresearch.agents.grpo.advantages import AdvantageStats, group_advantages
    from deepresearch.agents.grpo.aggregation import register_loss_aggregation
    from deepresearch.agents.grpo.logprobs import entropy_from_logits, selective_log_softmax
    from deepresearch.agents.grpo.loss import PolicyLossConfig, policy_loss
    from deepresearch.agents.grpo.policy_losses import register_policy_loss
    from deepresearch.agents.grpo.update import UpdateConfig, grpo_update
    from deepresearch.agents.models.demo_model import default_tiny_model
    from deepresearch.agents.models.loading import load_policy
    from deepresearch.agents.models.tiny import TinyModelConfig, build_tiny_model
    from deepresearch.agents.rollout.async_runner import run_rollouts_async
    from deepresearch.agents.rollout.batch import RolloutBatch, collate_episodes
    from deepresearch.agents.rollout.end_of_turn import end_of_turn_ids
    from deepresearch.agents.rollout.engines import Generation, RolloutEngine, SamplingConfig, TrainingEngine, make_engine, register_engine
    from deepresearch.agents.rollout.episode import Episode
    from deepresearch.agents.rollout.request import RolloutRequest
    from deepresearch.agents.rollout.runner import RolloutConfig, run_rollouts
    from deepresearch.agents.rollout.turns import TurnEncoder
    from deepresearch.agents.train.checkpoint import CheckpointError
    from deepresearch.agents.train.config import GRPOConfig
    from deepresearch.agents.train.health import HealthConfig, TrainingHalted
    from deepresearch.agents.train.metrics_log import read_metrics
    from deepresearch.agents.train.plots import plot_run
    from deepresearch.agents.train.sft import SFTConfig, sft_train
    from deepresearch.agents.train.stop_signals import TrainingInterrupted
    from deepresearch.agents.train.trainer import GRPOTrainer
    from deepresearch.agents.train.warm_start import warm_start
    from deepresearch.agents.trajectories import Trajectory, episode_record, read_trajectories
    from deepresearch.agents.viewer.page import write_viewer

# Module (relative to this package) -> the public names it defines, in layer order.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "rollout.engines": ("Generation", "RolloutEngine", "SamplingConfig", "TrainingEngine", "make_engine", "register_engine"),
    "rollout.end_of_turn": ("end_of_turn_ids",),
    "rollout.turns": ("TurnEncoder",),
    "rollout.episode": ("Episode",),
    "rollout.request": ("RolloutRequest",),
    "rollout.runner": ("RolloutConfig", "run_rollouts"),
    "rollout.async_runner": ("run_rollouts_async",),
    "rollout.batch": ("RolloutBatch", "collate_episodes"),
    "grpo.advantages": ("AdvantageStats", "group_advantages"),
    "grpo.logprobs": ("entropy_from_logits", "selective_log_softmax"),
    "grpo.aggregation": ("register_loss_aggregation",),
    "grpo.policy_losses": ("register_policy_loss",),
    "grpo.loss": ("PolicyLossConfig", "policy_loss"),
    "grpo.update": ("UpdateConfig", "grpo_update"),
    "models.loading": ("load_policy",),
    "models.tiny": ("TinyModelConfig", "build_tiny_model"),
    "models.demo_model": ("default_tiny_model",),
    "trajectories": ("Trajectory", "episode_record", "read_trajectories"),
    "train.config": ("GRPOConfig",),
    "train.health": ("HealthConfig", "TrainingHalted"),
    "train.stop_signals": ("TrainingInterrupted",),
    "train.checkpoint": ("CheckpointError",),
    "train.trainer": ("GRPOTrainer",),
    "train.sft": ("SFTConfig", "sft_train"),
    "train.warm_start": ("warm_start",),
    "train.metrics_log": ("read_metrics",),
    "train.plots": ("plot_run",),
    "eval.harness": ("EngineRunner", "TextPolicyRunner", "load_dataset", "markdown_table", "run_evaluation", "summarize"),
    "eval.judge": ("LLMJudge",),
    "eval.text_policies": ("ChatPolicy", "ReplayPolicy"),
    "adapters.trl": ("TRLRolloutAdapter", "env_reward"),
    "viewer.page": ("write_viewer",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})
