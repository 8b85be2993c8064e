"""Finished episodes -> the rollout-batch tensors any trainer can consume.

Tensors are right-padded. ``loss_mask[b, t]`` is 1 exactly where ``input_ids[b, t]``
was sampled by the policy — taken from the rollout, never inferred from pad ids.
Position ``t`` of ``logprob_targets`` is the token predicted from positions ``< t``,
so trainers compute ``log p(input_ids[:, 1:])`` from ``logits[:, :-1]`` and use
``loss_mask[:, 1:]``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from deepresearch.agents.rollout.runner import Episode


@dataclass
class RolloutBatch:
    input_ids: Tensor  # [B, L] long
    attention_mask: Tensor  # [B, L] long
    loss_mask: Tensor  # [B, L] long: 1 on policy-sampled ids
    rollout_logprobs: Tensor  # [B, L] float: engine logprob of sampled ids, 0 elsewhere
    rewards: Tensor  # [B] float
    group_ids: list[Hashable]
    lengths: Tensor  # [B] long: unpadded lengths

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, indices: Sequence[int]) -> "RolloutBatch":
        """Rows ``indices``, trimmed to their longest length (length-sorted micro-batches pad less)."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        width = int(self.lengths[index].max())
        return RolloutBatch(
            input_ids=self.input_ids[index, :width],
            attention_mask=self.attention_mask[index, :width],
            loss_mask=self.loss_mask[index, :width],
            rollout_logprobs=self.rollout_logprobs[index, :width],
            rewards=self.rewards[index],
            group_ids=[self.group_ids[i] for i in index.tolist()],
            lengths=self.lengths[index],
        )


def collate_episodes(episodes: Sequence[Episode], pad_token_id: int, mask_env_tokens: bool = True) -> RolloutBatch:
    """Pad episodes into a ``RolloutBatch``.

    ``mask_env_tokens=False`` trains on env-written tokens too — only for the ablation
    that shows why masking matters; every real run keeps the default.

    Example: prompt ``[5, 6]``, response ``[7, 8, 9]`` with ``loss_mask [1, 0, 1]``
    -> ``input_ids [5, 6, 7, 8, 9]``, ``loss_mask [0, 0, 1, 0, 1]``.
    """
    if not episodes:
        raise ValueError("no episodes to collate")
    lengths = [len(e.prompt_ids) + len(e.response_ids) for e in episodes]
    width = max(lengths)
    batch = len(episodes)
    input_ids = torch.full((batch, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((batch, width), dtype=torch.long)
    loss_mask = torch.zeros((batch, width), dtype=torch.long)
    rollout_logprobs = torch.zeros((batch, width), dtype=torch.float32)
    for row, episode in enumerate(episodes):
        prompt, response = len(episode.prompt_ids), len(episode.response_ids)
        input_ids[row, : prompt + response] = torch.tensor(episode.input_ids, dtype=torch.long)
        attention_mask[row, : prompt + response] = 1
        mask = episode.loss_mask if mask_env_tokens else [1] * response
        loss_mask[row, prompt : prompt + response] = torch.tensor(mask, dtype=torch.long)
        rollout_logprobs[row, prompt : prompt + response] = torch.tensor(episode.rollout_logprobs, dtype=torch.float32)
    return RolloutBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        loss_mask=loss_mask,
        rollout_logprobs=rollout_logprobs,
        rewards=torch.tensor([e.reward for e in episodes], dtype=torch.float32),
        group_ids=[e.group_id for e in episodes],
        lengths=torch.tensor(lengths, dtype=torch.long),
    )
