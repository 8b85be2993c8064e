"""Pick the rollout schedule a ``RolloutConfig`` names: ``async`` (default) or the ``sync`` reference."""

from __future__ import annotations

from typing import Any

from deepresearch.agents.rollout.async_runner import run_rollouts_async
from deepresearch.agents.rollout.episode import Episode
from deepresearch.agents.rollout.episode_state import RolloutStats
from deepresearch.agents.rollout.request import RolloutRequest, as_request
from deepresearch.agents.rollout.runner import run_rollouts


def collect_rollouts(request: RolloutRequest, *legacy: Any, **legacy_kwargs: Any) -> tuple[list[Episode], RolloutStats]:
    """``run_rollouts_async`` or ``run_rollouts``, as ``request.config.schedule`` says."""
    request = as_request("collect_rollouts", request, legacy, legacy_kwargs)
    run = run_rollouts_async if request.config.schedule == "async" else run_rollouts
    return run(request)
