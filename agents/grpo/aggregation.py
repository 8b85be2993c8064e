"""Loss aggregations by name: how ``[B, T]`` per-token losses become the scalar to ``backward()``.

An aggregation is ``(token_loss, mask, normalizers) -> scalar``, registered with
:func:`register_loss_aggregation` and chosen by ``PolicyLossConfig.loss_agg``. Its
divisors are whole-batch constants (``Normalizers``) supplied by the caller, not this
micro-batch's own counts: gradient accumulation sums micro-batch gradients, so it
equals the full-batch gradient only if every micro-batch divides by the same
full-batch count; dividing by the local count would give a token in a micro-batch of
short responses more weight than one in a batch of long ones. ``token_loss`` holds
garbage outside ``mask``: read it through ``mask`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from deepresearch.registry import Registry


@dataclass(frozen=True)
class Normalizers:
    """Whole-step constants: trained tokens and sequences over every micro-batch (and process), and
    the response budget (Dr.GRPO's constant; None when not set)."""

    total_tokens: int
    num_sequences: int
    max_response_length: int | None


Aggregation = Callable[[Tensor, Tensor, Normalizers], Tensor]


LOSS_AGGREGATIONS: Registry[Aggregation] = Registry("loss aggregation", signature="fn(token_loss, mask, normalizers) -> scalar")


def register_loss_aggregation(name: str, fn: Aggregation | None = None, *, replace: bool = False):
    """Register ``fn`` as the aggregation ``name``; without ``fn``, a decorator that does."""
    return LOSS_AGGREGATIONS.register(name, fn, replace=replace)


def sequence_sums(token_loss: Tensor, mask: Tensor) -> Tensor:
    """``[B]``: each sequence's summed loss over its masked tokens."""
    return torch.where(mask, token_loss, 0.0).sum(dim=1)


def per_sequence_mean(per_sequence: Tensor, normalizers: Normalizers) -> Tensor:
    if normalizers.num_sequences <= 0:
        raise ValueError(f"num_sequences must be > 0, got {normalizers.num_sequences}")
    return per_sequence.sum() / normalizers.num_sequences


@register_loss_aggregation("token-mean")
def token_mean(token_loss: Tensor, mask: Tensor, normalizers: Normalizers) -> Tensor:
    """Every response token weighs the same (DAPO)."""
    if normalizers.total_tokens <= 0:
        raise ValueError(f"total_tokens must be > 0, got {normalizers.total_tokens}")
    return sequence_sums(token_loss, mask).sum() / normalizers.total_tokens


@register_loss_aggregation("seq-mean-token-mean")
def seq_mean_token_mean(token_loss: Tensor, mask: Tensor, normalizers: Normalizers) -> Tensor:
    """Every sequence weighs the same (original GRPO, which favours short answers; GSPO)."""
    return per_sequence_mean(sequence_sums(token_loss, mask) / mask.sum(dim=1).clamp(min=1), normalizers)


@register_loss_aggregation("seq-mean-token-sum-norm")
def seq_mean_token_sum_norm(token_loss: Tensor, mask: Tensor, normalizers: Normalizers) -> Tensor:
    """Each sequence's sum over a constant (Dr.GRPO: no length bias)."""
    if normalizers.max_response_length is None:
        raise ValueError("seq-mean-token-sum-norm divides by a constant: set PolicyLossConfig.max_response_length")
    return per_sequence_mean(sequence_sums(token_loss, mask) / normalizers.max_response_length, normalizers)
