"""Pick the rollout schedule a ``RolloutConfig`` names: ``async`` (default) or the ``sync`` reference."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from deepresearch.agents.rollout.async_runner import run_rollouts_async
from deepresearch.agents.rollout.engines.base import RolloutEngine
from deepresearch.agents.rollout.episode import Episode
from deepresearch.agents.rollout.episode_state import RolloutConfig, RolloutStats
from deepresearch.agents.rollout.runner import run_rollouts
from deepresearch.agents.rollout.turns import TurnEncoder


def collect_rollouts(
    engine: RolloutEngine,
    envs: Sequence[Any],
    resets: Sequence[dict[str, Any]],
    group_ids: Sequence[Hashable],
    config: RolloutConfig,
    encoder: TurnEncoder,
    on_finished: Callable[[int], None] | None = None,
) -> tuple[list[Episode], RolloutStats]:
    """``run_rollouts_async`` or ``run_rollouts``, as ``config.schedule`` says; same arguments and result."""
    run = run_rollouts_async if config.schedule == "async" else run_rollouts
    return run(engine, envs, resets, group_ids, config, encoder, on_finished)
