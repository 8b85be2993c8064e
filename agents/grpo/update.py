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


@dataclass(frozen=True)
class StepShare:
    """The whole optimizer step when several data-parallel processes take it together.

    Each process normalises its loss by the step's totals over all processes, so the sum
    of their gradients (FSDP sums them) is the single-process gradient; and each runs the
    same number of micro-batches (forward and backward are collectives under FSDP),
    padding with idle passes (``idle_batch``) that contribute nothing. One process: its own
    totals (``StepShare.of(batch, size)``).
    """

    total_tokens: int
    num_sequences: int
    micro_batches: int

    @classmethod
    def of(cls, batch: RolloutBatch, micro_batch_size: int) -> StepShare:
        return cls(int(batch.loss_mask[:, 1:].sum()), len(batch), len(micro_batches(batch, micro_batch_size)))


def idle_batch(token_id: int) -> RolloutBatch:
    """One two-token row (any in-vocabulary ``token_id``) with nothing to train: a process runs it to
    keep in step with the others when it has fewer rows (its loss and gradient are exactly 0)."""
    return RolloutBatch(
        input_ids=torch.full((1, 2), token_id, dtype=torch.long),
        attention_mask=torch.ones((1, 2), dtype=torch.long),
        loss_mask=torch.zeros((1, 2), dtype=torch.long),
        rollout_logprobs=torch.zeros((1, 2)),
        rewards=torch.zeros(1),
        group_ids=["idle"],
        lengths=torch.tensor([2]),
    )


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
    share: StepShare | None = None,
) -> dict[str, float]:
    """Accumulate the policy loss over micro-batches, clip, and step once. Returns metrics.

    ``share``: the step's totals when data-parallel processes take it together (None: this
    batch is the whole step). Metrics are then this process's part of each whole-step
    value (sum them over processes); ``grad_norm`` and ``response_tokens`` are already global.

    ``temperature`` is the sampling temperature (1 for greedy): logits are divided by it
    so the trainer's logprobs are those of the distribution the engine sampled from.
    ``on_micro_batch()`` is called after each micro-batch's backward (for a progress bar).
    """
    model.train()
    device = next(model.parameters()).device
    share = share or StepShare.of(batch, config.micro_batch_size)
    total_tokens = max(share.total_tokens, 1)
    plan = micro_batches(batch, config.micro_batch_size)
    plan += [[]] * (share.micro_batches - len(plan))  # idle passes: other processes have more rows
    sums: dict[str, float] = defaultdict(float)
    optimizer.zero_grad(set_to_none=True)
    for rows in plan:
        part = batch.select(rows) if rows else idle_batch(int(batch.input_ids[0, 0]))
        part_advantages = advantages[rows] if rows else torch.zeros(1)
        logprobs, entropy = token_logprobs(model, part, temperature, config.log_entropy)
        mask = part.loss_mask[:, 1:].to(device)
        ref = None
        if ref_model is not None:
            with torch.no_grad():
                ref = token_logprobs(ref_model, part, temperature)[0]
        loss, metrics = policy_loss(
            logprobs,
            logprobs.detach(),  # one update per batch: the sampling policy is the current one
            part_advantages.to(device),
            mask,
            config.loss,
            ref_logprobs=ref,
            rollout_logprobs=part.rollout_logprobs[:, 1:].to(device),
            total_tokens=total_tokens,
            num_sequences=share.num_sequences,
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
