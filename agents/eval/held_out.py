"""Greedy evaluation on held-out questions, as the trainer runs it every few steps.

Episodes run on the schedule ``rollout_config.schedule`` names (per-episode async by
default; ``sync`` is the turn-synchronous reference — greedy, both give the same episodes).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Sequence

from deepresearch.agents.rollout.engines.base import RolloutEngine
from deepresearch.agents.rollout.episode import Episode
from deepresearch.agents.rollout.episode_state import RolloutConfig
from deepresearch.agents.rollout.request import RolloutRequest
from deepresearch.agents.rollout.schedules import collect_rollouts
from deepresearch.agents.rollout.stats import episode_metrics
from deepresearch.agents.rollout.turns import TurnEncoder
from deepresearch.envs import question_reset


def evaluate(
    engine: RolloutEngine,
    encoder: TurnEncoder,
    envs: Sequence[Any],
    rollout_config: RolloutConfig,
    on_finished: Callable[[int], None] | None = None,
    first_index: int = 0,
) -> tuple[dict[str, float], list[Episode]]:
    """Greedy episodes on questions ``first_index ..`` of the envs' dataset, one per env
    (data-parallel processes each take their own block of the held-out questions)."""
    greedy = replace(rollout_config, temperature=0.0)
    indices = list(range(first_index, first_index + len(envs)))
    resets = [question_reset(env, index, seed=index) for index, env in zip(indices, envs)]
    episodes, stats = collect_rollouts(RolloutRequest(engine, envs, resets, indices, greedy, encoder, on_finished))
    metrics = episode_metrics(episodes)
    metrics["reward"] = metrics.get("reward/mean", 0.0)
    metrics["dropped"] = stats.dropped
    return metrics, episodes
