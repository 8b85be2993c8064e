"""One GRPO optimizer step over a rollout batch, with gradient accumulation.

Micro-batches are length-sorted so each pads only to its own longest sequence.
The loss of every micro-batch is normalised by the whole batch's token count
(``token-mean``), so accumulating micro-batches gives exactly the full-batch
gradient regardless of how lengths fall into micro-batches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from deepresearch.agents.grpo.loss import PolicyLossConfig, policy_loss
from deepresearch.agents.grpo.masked_forward import masked_next_token_logprobs
from deepresearch.agents.rollout.batch import RolloutBatch


@dataclass(frozen=True)
class UpdateConfig:
    """One optimizer step per rollout batch, accumulated over length-sorted micro-batches.

    With one step per batch the policy that sampled the batch is the one being
    updated, so the PPO ratio is exactly 1 and ``loss.clip_eps_low/high`` never bind
    (``clip_frac_*`` stay 0); they matter once several steps are taken per batch.
    """

    micro_batch_size: int = 8
    max_grad_norm: float = 1.0
    loss: PolicyLossConfig = field(default_factory=PolicyLossConfig)
    log_entropy: bool = True

    def __post_init__(self) -> None:
        if self.micro_batch_size < 1 or self.max_grad_norm <= 0:
            raise ValueError(f"need micro_batch_size >= 1 and max_grad_norm > 0, got {self.micro_batch_size}, {self.max_grad_norm}")


def autocast_for(device: torch.device):
    """bf16 autocast on GPU; full precision on CPU (bf16 matmuls are slow on most CPUs)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def token_logprobs(model: Any, batch: RolloutBatch, temperature: float, with_entropy: bool = False) -> tuple[Tensor, Tensor | None]:
    """``[B, L-1]`` log p(input_ids[:, 1:]) under ``model`` on the loss positions (0 elsewhere),
    and each loss position's entropy; the head runs only where ``loss_mask`` reads."""
    device = next(model.parameters()).device
    with autocast_for(device):
        return masked_next_token_logprobs(
            model,
            batch.input_ids.to(device),
            batch.attention_mask.to(device),
            batch.loss_mask[:, 1:].to(device),
            temperature,
            with_entropy,
        )


def micro_batches(batch: RolloutBatch, size: int) -> list[list[int]]:
    """Row indices grouped by length (longest first) into chunks of ``size``."""
    order = torch.argsort(batch.lengths, descending=True).tolist()
    return [order[i : i + size] for i in range(0, len(order), size)]


def grpo_update(
    model: Any,
    optimizer: torch.optim.Optimizer,
    batch: RolloutBatch,
    advantages: Tensor,
    config: UpdateConfig,
    ref_model: Any | None = None,
    temperature: float = 1.0,
    on_micro_batch: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Accumulate the policy loss over micro-batches, clip, and step once. Returns metrics.

    ``temperature`` is the sampling temperature (1 for greedy): logits are divided by it
    so the trainer's logprobs are those of the distribution the engine sampled from.
    ``on_micro_batch()`` is called after each micro-batch's backward (for a progress bar).
    """
    model.train()
    device = next(model.parameters()).device
    response_mask = batch.loss_mask[:, 1:]
    total_tokens = max(int(response_mask.sum()), 1)
    sums: dict[str, float] = defaultdict(float)
    optimizer.zero_grad(set_to_none=True)
    for rows in micro_batches(batch, config.micro_batch_size):
        part = batch.select(rows)
        logprobs, entropy = token_logprobs(model, part, temperature, config.log_entropy)
        mask = part.loss_mask[:, 1:].to(device)
        ref = None
        if ref_model is not None:
            with torch.no_grad():
                ref = token_logprobs(ref_model, part, temperature)[0]
        loss, metrics = policy_loss(
            logprobs,
            logprobs.detach(),  # one update per batch: the sampling policy is the current one
            advantages[rows].to(device),
            mask,
            config.loss,
            ref_logprobs=ref,
            rollout_logprobs=part.rollout_logprobs[:, 1:].to(device),
            total_tokens=total_tokens,
            num_sequences=len(batch),
        )
        loss.backward()
        tokens = metrics.pop("num_tokens")
        for name, value in metrics.items():
            sums[name] += value * tokens
        sums["loss"] += float(loss.detach())
        if entropy is not None:
            sums["entropy"] += float((entropy * mask).sum())
        with torch.no_grad():
            sums["engine_logprob_abs_diff"] += float(((logprobs.detach() - part.rollout_logprobs[:, 1:].to(device)).abs() * mask).sum())
        if on_micro_batch is not None:
            on_micro_batch()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    result = {name: value / total_tokens for name, value in sums.items() if name != "loss"}
    result["loss"] = sums["loss"]
    result["grad_norm"] = float(grad_norm)
    result["response_tokens"] = float(total_tokens)
    return result
