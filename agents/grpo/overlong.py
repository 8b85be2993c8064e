"""DAPO's two treatments of episodes that ran into the response budget (arXiv 2503.14476, §3.4).

An episode cut off by the token budget (``finish_reason == "length"``) never gave
its answer; its low reward says "too long", not "wrong", and training on it
teaches the model that reasoning is bad. Two remedies, each optional:

* **overlong filtering** (``filter``): such episodes train on nothing (their loss
  mask is zeroed); they still count in their group's reward statistics.
* **soft overlong punishment** (``penalty_buffer`` > 0): the reward of an episode
  whose response is within the last ``penalty_buffer`` tokens of the budget
  ``L_max`` drops linearly, reaching ``-penalty_factor`` at the budget::

      penalty(L) = 0                                        if L <= L_max - buffer
                 = -factor * (L - (L_max - buffer)) / buffer otherwise (L <= L_max)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from deepresearch.agents.rollout.batch import RolloutBatch
from deepresearch.agents.rollout.episode import Episode


@dataclass(frozen=True)
class OverlongConfig:
    """``filter``: cut-off episodes train on nothing; ``penalty_buffer`` (0: off) and ``penalty_factor``: the soft penalty."""

    filter: bool = False
    penalty_buffer: int = 0
    penalty_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.penalty_buffer < 0 or self.penalty_factor < 0:
            raise ValueError(f"need penalty_buffer >= 0 and penalty_factor >= 0, got {self.penalty_buffer}, {self.penalty_factor}")


def overlong_penalty(response_tokens: int, max_response_tokens: int, config: OverlongConfig) -> float:
    """The soft punishment for a response of ``response_tokens`` under a budget of ``max_response_tokens``.

    Example: budget 100, buffer 20, factor 1 -> 80 tokens: 0.0, 90 tokens: -0.5, 100 tokens: -1.0.
    """
    if config.penalty_buffer == 0:
        return 0.0
    start = max_response_tokens - config.penalty_buffer
    excess = min(max(response_tokens - start, 0), config.penalty_buffer)
    return -config.penalty_factor * excess / config.penalty_buffer


def shaped_rewards(episodes: Sequence[Episode], max_response_tokens: int, config: OverlongConfig) -> list[float]:
    """Each episode's reward plus its soft overlong penalty."""
    return [e.reward + overlong_penalty(len(e.response_ids), max_response_tokens, config) for e in episodes]


def filtered_rows(episodes: Sequence[Episode], config: OverlongConfig) -> list[int]:
    """Rows whose loss is masked out by overlong filtering (episodes cut off by the budget)."""
    return [row for row, e in enumerate(episodes) if config.filter and e.finish_reason == "length"]


def apply_overlong(batch: RolloutBatch, episodes: Sequence[Episode], config: OverlongConfig, max_response_tokens: int) -> dict[str, float]:
    """Penalise ``batch.rewards`` and mask filtered rows out of ``batch.loss_mask`` in place
    (``episodes`` are the batch's rows, in order); returns the count filtered and the mean penalty."""
    rewards = shaped_rewards(episodes, max_response_tokens, config)
    penalty = sum(rewards) / len(rewards) - sum(e.reward for e in episodes) / len(episodes)
    batch.rewards = torch.tensor(rewards, dtype=torch.float32)
    rows = filtered_rows(episodes, config)
    batch.loss_mask[rows] = 0
    return {"overlong/filtered": len(rows), "overlong/reward_penalty": penalty}
