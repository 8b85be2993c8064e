"""Statistics of a batch of episodes: reward and its components, searches, turns, lengths."""

from __future__ import annotations

from statistics import mean, pstdev
from typing import Sequence

from deepresearch.agents.rollout.episode import Episode


def _component_mean(episodes: Sequence[Episode], name: str) -> float | None:
    values = [float(e.reward_components[name]) for e in episodes if isinstance(e.reward_components.get(name), (int, float, bool))]
    return mean(values) if values else None


def episode_metrics(episodes: Sequence[Episode], prefix: str = "") -> dict[str, float]:
    """Reward and its components, format-error rate, searches, turns, lengths, finish reasons."""
    if not episodes:
        return {f"{prefix}episodes": 0}
    rewards = [e.reward for e in episodes]
    metrics: dict[str, float] = {
        f"{prefix}episodes": len(episodes),
        f"{prefix}reward/mean": mean(rewards),
        f"{prefix}reward/std": pstdev(rewards),
        f"{prefix}episode/searches": mean(e.searches for e in episodes),
        f"{prefix}episode/turns": mean(e.turns for e in episodes),
        f"{prefix}episode/response_tokens": mean(len(e.response_ids) for e in episodes),
        f"{prefix}episode/policy_tokens": mean(sum(e.loss_mask) for e in episodes),
    }
    for name in ("f1", "em", "acc", "format_ok"):
        value = _component_mean(episodes, name)
        if value is not None:
            metrics[f"{prefix}reward/{name}"] = value
    if f"{prefix}reward/format_ok" in metrics:
        metrics[f"{prefix}episode/format_error_rate"] = 1.0 - metrics[f"{prefix}reward/format_ok"]
    for reason in ("terminated", "truncated", "length"):
        metrics[f"{prefix}finish/{reason}"] = mean(e.finish_reason == reason for e in episodes)
    return metrics
