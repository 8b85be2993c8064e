"""One finished trajectory in token space: what a rollout produces and a trainer consumes."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Episode:
    """One finished trajectory in token space; ``loss_mask`` is 1 exactly on sampled ids."""

    group_id: Hashable
    prompt_ids: list[int]
    response_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    rollout_logprobs: list[float] = field(default_factory=list)
    reward: float = 0.0
    reward_components: dict[str, Any] = field(default_factory=dict)
    turns: int = 0
    finish_reason: str = ""
    transcript: str = ""
    question: str = ""
    policy_texts: list[str] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    # The env's last observation when the episode ended before it was tokenised.
    untokenized_tail: str = ""
    # The policy version (training steps done) of the weights that sampled it.
    policy_version: int = 0

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.response_ids

    @property
    def searches(self) -> int:
        return int(self.reward_components.get("searches", 0))

    def append(self, ids: Sequence[int], trainable: bool, logprobs: Sequence[float] | None = None) -> None:
        self.response_ids.extend(ids)
        self.loss_mask.extend([int(trainable)] * len(ids))
        self.rollout_logprobs.extend(logprobs if logprobs is not None else [0.0] * len(ids))
