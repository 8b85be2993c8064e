"""GRPO training of search agents against any env that follows the text contract.

Rollout engines (vLLM or transformers, token ids in and out), batched multi-turn
rollouts with env tokens masked, group-relative advantages, a masked PPO-clip
loss, the trainer, SFT warm start, and the tiny offline model.

Names are imported on first use (PEP 562), so ``deepresearch view`` or a replayed
``deepresearch eval`` never pays for torch, which only the trainer and engines need.
"""

from __future__ import annotations

import importlib
from typing import Any

# Submodule of deepresearch.agents -> the public names it defines.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "advantages": ("AdvantageStats", "group_advantages"),
    "batch": ("RolloutBatch", "collate_episodes"),
    "config": ("GRPOConfig",),
    "engines": ("Generation", "RolloutEngine", "SamplingConfig", "make_engine"),
    "eval_harness": ("EngineRunner", "TextPolicyRunner", "load_dataset", "markdown_table", "run_evaluation", "summarize"),
    "grpo_loss": ("PolicyLossConfig", "policy_loss"),
    "judge": ("LLMJudge",),
    "logprobs": ("entropy_from_logits", "selective_log_softmax"),
    "metrics_log": ("read_metrics",),
    "models": ("default_tiny_model", "load_policy"),
    "oracle_warm_start": ("warm_start",),
    "plots": ("plot_run",),
    "rollout": ("Episode", "RolloutConfig", "run_rollouts"),
    "sft": ("SFTConfig", "Trajectory", "read_trajectories", "sft_train"),
    "text_policies": ("ChatPolicy", "ReplayPolicy"),
    "tiny_model": ("TinyModelConfig", "build_tiny_model"),
    "tokenization": ("TurnEncoder",),
    "trainer": ("GRPOTrainer",),
    "trl_adapter": ("TRLRolloutAdapter", "env_reward"),
    "viewer": ("episode_record", "write_viewer"),
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
