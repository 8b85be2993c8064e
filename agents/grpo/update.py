"""PPO-style GRPO update over a rollout batch: epochs x mini-batches of optimizer steps.

Each optimizer step takes one mini-batch, accumulated over length-sorted
micro-batches (each pads only to its own longest sequence). The loss of every
micro-batch is normalised by the whole mini-batch's token count (``token-mean``),
so accumulating micro-batches gives exactly the mini-batch gradient regardless of
how lengths fall into micro-batches.

With one epoch and one mini-batch (the default) the policy being updated is the one
that sampled the batch (on-policy, up to engine/trainer numerics): the old logprobs
are the current ones, detached, and the PPO ratio is exactly 1. With more steps, the
old logprobs are computed once before the first step (``old_logprobs="policy"``) or
taken from the rollout engine (``"engine"``); the ratio then moves away from 1 and
the clip binds (``clip_frac_*``).

Data-parallel processes take each optimizer step together: they agree on an
``UpdatePlan`` first (which rows each step trains, its token and sequence totals, and how
many passes each process runs), so that their summed gradients equal the single-process
gradient, step by step.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from deepresearch.agents.grpo.importance import importance_weight_stats
from deepresearch.agents.grpo.loss import PolicyLossConfig, policy_loss
from deepresearch.agents.grpo.masked_forward import masked_next_token_logprobs
from deepresearch.agents.rollout.batch import RolloutBatch


@dataclass(frozen=True)
class UpdateConfig:
    """Optimizer steps per rollout batch and how each is accumulated.

    * ``ppo_epochs`` passes over the batch, each in mini-batches of ``mini_batch_size``
      sequences (None: the whole batch), one optimizer step per mini-batch. The default,
      one step per batch, is on-policy: the PPO ratio is 1 and ``loss.clip_eps_low/high``
      never bind (``clip_frac_*`` stay 0). With several steps the policy moves away
      from the one that sampled the batch and the clip bounds each step's ratio.
    * ``old_logprobs``: the policy the ratio is measured against — ``policy`` is the
      trainer's policy before this update (a no-grad forward pass, only needed when
      there is more than one step), ``engine`` the rollout engine's logprobs.
    * ``micro_batch_size``: sequences per forward/backward (gradient accumulation).
    """

    micro_batch_size: int = 8
    max_grad_norm: float = 1.0
    loss: PolicyLossConfig = field(default_factory=PolicyLossConfig)
    log_entropy: bool = True
    ppo_epochs: int = 1
    mini_batch_size: int | None = None
    old_logprobs: Literal["policy", "engine"] = "policy"

    def __post_init__(self) -> None:
        if self.micro_batch_size < 1 or self.max_grad_norm <= 0:
            raise ValueError(f"need micro_batch_size >= 1 and max_grad_norm > 0, got {self.micro_batch_size}, {self.max_grad_norm}")
        if self.ppo_epochs < 1 or (self.mini_batch_size is not None and self.mini_batch_size < 1):
            raise ValueError(f"need ppo_epochs >= 1 and mini_batch_size >= 1 (or None), got {self.ppo_epochs}, {self.mini_batch_size}")
        if self.old_logprobs not in ("policy", "engine"):
            raise ValueError(f"old_logprobs must be 'policy' or 'engine', not {self.old_logprobs!r}")


@dataclass(frozen=True)
class StepShare:
    """One optimizer step's totals over every process that takes it.

    Each process normalises its loss by the step's totals over all processes, so the sum
    of their gradients (FSDP sums them) is the single-process gradient; and each runs the
    same number of micro-batches (forward and backward are collectives under FSDP),
    padding with idle passes (``idle_batch``) that contribute nothing.
    """

    total_tokens: int
    num_sequences: int
    micro_batches: int


@dataclass(frozen=True)
class UpdatePlan:
    """Which rows each optimizer step trains, agreed by every process before the update.

    Mini-batches are consecutive rows of the step's batch in order; under data parallelism
    that batch is the processes' rows one process after another (each holds a contiguous
    block of the step's groups), so any number of processes takes exactly the optimizer
    steps one process would. ``steps``: each step's totals over all processes;
    ``rows``: this process's rows (its own indices) in each step, empty where it only runs
    idle passes; ``full_passes``: micro-batches of a no-grad pass over the whole batch (old
    or reference logprobs), the most any process needs.
    """

    steps: tuple[StepShare, ...]
    rows: tuple[tuple[int, ...], ...]
    full_passes: int

    @classmethod
    def of(cls, batch: RolloutBatch, config: UpdateConfig) -> UpdatePlan:
        """The plan of one process training ``batch`` alone."""
        return cls.across([row_tokens(batch)], 0, config)

    @classmethod
    def across(cls, tokens_by_process: Sequence[Sequence[int]], rank: int, config: UpdateConfig) -> UpdatePlan:
        """The plan from every process's trained tokens per row (``row_tokens``; [] for a
        process without rows), as seen by process ``rank``."""
        offsets = [sum(len(tokens) for tokens in tokens_by_process[:p]) for p in range(len(tokens_by_process))]
        total = sum(len(tokens) for tokens in tokens_by_process)
        size = config.micro_batch_size
        step_size = config.mini_batch_size or max(total, 1)
        steps, mine = [], []
        for start in range(0, total, step_size):
            stop = min(start + step_size, total)
            parts = [
                range(max(start, first) - first, max(min(stop, first + len(tokens)) - first, 0))
                for first, tokens in zip(offsets, tokens_by_process)
            ]
            tokens = sum(sum(tokens_by_process[p][i] for i in part) for p, part in enumerate(parts))
            steps.append(StepShare(tokens, stop - start, max(-(-len(part) // size) for part in parts)))
            mine.append(tuple(parts[rank]))
        full_passes = max(-(-len(tokens) // size) for tokens in tokens_by_process)
        return cls(tuple(steps), tuple(mine), full_passes)

    @property
    def num_sequences(self) -> int:
        return sum(step.num_sequences for step in self.steps)

    @property
    def total_tokens(self) -> int:
        return sum(step.total_tokens for step in self.steps)

    def training_passes(self, ppo_epochs: int) -> int:
        """Forward/backward passes of the update (for a progress bar)."""
        return ppo_epochs * sum(step.micro_batches for step in self.steps)


def row_tokens(batch: RolloutBatch) -> list[int]:
    """Trained (loss-mask) tokens of each row."""
    return batch.loss_mask[:, 1:].sum(dim=1).tolist()


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


@torch.no_grad()
def batch_logprobs(model: Any, batch: RolloutBatch, micro_batch_size: int, temperature: float, passes: int = 0) -> Tensor:
    """``[B, L-1]`` no-grad logprobs of the whole batch (the old or the reference policy's),
    padded with idle forward passes up to ``passes`` (other processes have more rows)."""
    was_training = model.training
    model.eval()
    try:
        full = torch.zeros(batch.input_ids.shape[0], batch.input_ids.shape[1] - 1)
        plan = micro_batches(batch, micro_batch_size)
        for rows in plan + [[]] * (passes - len(plan)):
            if not rows:
                token_logprobs(model, idle_batch(int(batch.input_ids[0, 0])), temperature)
                continue
            part = token_logprobs(model, batch.select(rows), temperature)[0].float().cpu()
            full[rows, : part.shape[1]] = part
        return full
    finally:
        model.train(was_training)


def grpo_update(
    model: Any,
    optimizer: torch.optim.Optimizer,
    batch: RolloutBatch,
    advantages: Tensor,
    config: UpdateConfig,
    ref_model: Any | None = None,
    temperature: float = 1.0,
    on_micro_batch: Callable[[], None] | None = None,
    plan: UpdatePlan | None = None,
) -> dict[str, float]:
    """``ppo_epochs`` x mini-batches of clipped policy-gradient steps. Returns metrics.

    ``temperature`` is the sampling temperature (1 for greedy): logits are divided by it
    so the trainer's logprobs are those of the distribution the engine sampled from.
    ``on_micro_batch()`` is called after each micro-batch's backward (for a progress bar).
    ``plan``: the update agreed by data-parallel processes (``UpdatePlan.across``); None:
    this batch is the whole update.

    Metrics are token-weighted means over every step (``clip_frac_*``, ``ratio_mean``,
    ...), ``grad_norm`` and ``loss`` averaged over steps, ``optimizer_steps`` (applied) and
    ``nonfinite_steps`` (skipped: NaN/inf gradient, nothing changed), and the
    distribution of the importance weights ``pi_old / pi_rollout`` (``importance/*``).
    Under a data-parallel plan the token-weighted means and ``loss`` are this process's part
    (the sum over processes is the whole update's value); ``grad_norm``,
    ``optimizer_steps``, ``nonfinite_steps`` and ``response_tokens`` are already global;
    ``importance/*`` are this process's tokens only.
    """
    model.train()
    plan = plan or UpdatePlan.of(batch, config)
    single_step = config.ppo_epochs == 1 and len(plan.steps) == 1
    old: Tensor | None = None
    if config.old_logprobs == "engine":
        old = batch.rollout_logprobs[:, 1:]
    elif not single_step:
        old = batch_logprobs(model, batch, config.micro_batch_size, temperature, plan.full_passes)
    ref = None
    if ref_model is not None and not single_step:
        ref = batch_logprobs(ref_model, batch, config.micro_batch_size, temperature, plan.full_passes)
    step = _StepRunner(model, optimizer, batch, advantages, config, ref_model, ref, old, temperature, on_micro_batch)
    for epoch in range(config.ppo_epochs):
        for rows, share in zip(plan.rows, plan.steps):
            step.run(list(rows), share, first_epoch=epoch == 0)
    return step.result(plan)


class _StepRunner:
    """Optimizer steps over mini-batches of one rollout batch, and their summed metrics."""

    def __init__(
        self,
        model: Any,
        optimizer: torch.optim.Optimizer,
        batch: RolloutBatch,
        advantages: Tensor,
        config: UpdateConfig,
        ref_model: Any | None,
        ref: Tensor | None,
        old: Tensor | None,
        temperature: float,
        on_micro_batch: Callable[[], None] | None,
    ) -> None:
        self.model, self.optimizer, self.batch, self.advantages, self.config = model, optimizer, batch, advantages, config
        self.ref_model, self.ref, self.old, self.temperature, self.on_micro_batch = ref_model, ref, old, temperature, on_micro_batch
        self.device = next(model.parameters()).device
        self.idle = idle_batch(int(batch.input_ids[0, 0]))
        self.sums: dict[str, float] = defaultdict(float)
        self.grad_norms: list[float] = []
        self.losses: list[float] = []
        self.nonfinite_steps = 0
        # log(pi_old / pi_rollout) of every trained token, from the first epoch.
        self.old_vs_rollout: list[Tensor] = []

    def run(self, rows: list[int], share: StepShare, first_epoch: bool) -> None:
        """One optimizer step on ``rows`` (this process's part of the step ``share`` describes)."""
        plan = (
            [[rows[i] for i in micro_rows] for micro_rows in micro_batches(self.batch.select(rows), self.config.micro_batch_size)]
            if rows
            else []
        )
        plan += [[]] * (share.micro_batches - len(plan))  # idle passes: other processes have more rows
        loss_sum = 0.0
        self.optimizer.zero_grad(set_to_none=True)
        for micro_rows in plan:
            loss_sum += self._micro_batch(micro_rows, max(share.total_tokens, 1), share.num_sequences, first_epoch)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        # A NaN/inf loss makes the gradient NaN/inf; one such step would poison the weights and
        # Adam's moments for good. Skip it (counted as ``nonfinite_steps``): the norm is taken
        # over every process's gradient, so all of them skip the same step.
        norm = float(grad_norm)
        if math.isfinite(norm):
            self.optimizer.step()
        else:
            self.nonfinite_steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        self.grad_norms.append(norm)
        self.losses.append(loss_sum)

    def _micro_batch(self, rows: list[int], total_tokens: int, num_sequences: int, first_epoch: bool) -> float:
        part = self.batch.select(rows) if rows else self.idle
        width = part.input_ids.shape[1] - 1
        logprobs, entropy = token_logprobs(self.model, part, self.temperature, self.config.log_entropy)
        mask = part.loss_mask[:, 1:].to(self.device)
        rollout = part.rollout_logprobs[:, 1:].to(self.device)
        old = logprobs.detach() if self.old is None or not rows else self.old[rows, :width].to(self.device)
        loss, metrics = policy_loss(
            logprobs,
            old,
            self.advantages[rows].to(self.device) if rows else torch.zeros(1, device=self.device),
            mask,
            self.config.loss,
            ref_logprobs=self._reference(part, rows, width, logprobs),
            rollout_logprobs=rollout,
            total_tokens=total_tokens,
            num_sequences=num_sequences,
        )
        loss.backward()
        tokens = metrics.pop("num_tokens")
        for name, value in metrics.items():
            self.sums[name] += value * tokens
        if entropy is not None:
            self.sums["entropy"] += float((entropy * mask).sum())
        with torch.no_grad():
            self.sums["engine_logprob_abs_diff"] += float(((logprobs.detach() - rollout).abs() * mask).sum())
            if first_epoch and rows:
                self.old_vs_rollout.append((old.float() - rollout)[mask.bool()].cpu())
        if self.on_micro_batch is not None:
            self.on_micro_batch()
        return float(loss.detach())

    def _reference(self, part: RolloutBatch, rows: list[int], width: int, logprobs: Tensor) -> Tensor | None:
        """The reference policy's logprobs: precomputed, or a forward pass (idle ones too: a collective when sharded)."""
        if self.ref is not None:
            return self.ref[rows, :width].to(self.device) if rows else torch.zeros_like(logprobs)
        if self.ref_model is None:
            return None
        with torch.no_grad():
            return token_logprobs(self.ref_model, part, self.temperature)[0]

    def result(self, plan: UpdatePlan) -> dict[str, float]:
        trained = max(plan.total_tokens * self.config.ppo_epochs, 1)  # every process's tokens, every epoch
        result = {name: value / trained for name, value in self.sums.items()}
        result["loss"] = sum(self.losses) / len(self.losses)
        result["grad_norm"] = sum(self.grad_norms) / len(self.grad_norms)
        result["optimizer_steps"] = float(len(self.grad_norms) - self.nonfinite_steps)
        result["nonfinite_steps"] = float(self.nonfinite_steps)
        result["response_tokens"] = float(plan.total_tokens)
        result.update(importance_weight_stats(torch.cat(self.old_vs_rollout) if self.old_vs_rollout else torch.zeros(0)))
        return result
