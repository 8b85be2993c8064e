"""Policy-loss variants by name: how each token's loss follows from its importance ratio and advantage.

A variant is a function ``(logprobs, old_logprobs, advantages, mask, config) -> PolicyTerms``
over one micro-batch, registered with :func:`register_policy_loss` and chosen by
``PolicyLossConfig.policy_loss`` (``update.loss.policy_loss`` in a YAML recipe). Inputs are
already safe: ``logprobs`` / ``old_logprobs`` are ``[B, T]`` floats with 0 outside ``mask``
(``[B, T]`` bool), ``advantages`` is ``[B, 1]``, detached. What the variant returns is
then TIS-weighted, KL-regularised and aggregated (``aggregation.py``) by ``policy_loss``,
identically for every variant. Built in:

* ``ppo``: PPO-clip on each token's ratio (GRPO, DAPO's clip-higher) — the default;
* ``gspo``: GSPO (Zheng et al. 2025, Qwen), PPO-clip on the sequence's length-normalised ratio;
* ``cispo``: CISPO (MiniMax-M1, 2025), REINFORCE weighted by the clipped, detached ratio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from deepresearch.registry import Registry

if TYPE_CHECKING:
    from deepresearch.agents.grpo.loss import PolicyLossConfig


@dataclass(frozen=True)
class PolicyTerms:
    """A variant's ``[B, T]`` per-token loss (with grad), the ratio it used and where its clip bound (detached)."""

    token_loss: Tensor
    ratio: Tensor
    clipped_high: Tensor
    clipped_low: Tensor


PolicyLossFn = Callable[[Tensor, Tensor, Tensor, Tensor, "PolicyLossConfig"], PolicyTerms]


POLICY_LOSSES: Registry[PolicyLossFn] = Registry("policy loss", signature="fn(logprobs, old_logprobs, advantages, mask, config) -> PolicyTerms")


def register_policy_loss(name: str, fn: PolicyLossFn | None = None, *, replace: bool = False):
    """Register ``fn`` as the policy loss ``name``; without ``fn``, a decorator that does."""
    return POLICY_LOSSES.register(name, fn, replace=replace)


def clipped_surrogate(ratio: Tensor, advantages: Tensor, config: PolicyLossConfig) -> PolicyTerms:
    """PPO's pessimistic objective over ``ratio``: the max of the two *losses* is the min of the two
    surrogates, so a ratio past ``[1 - low, 1 + high]`` in the advantage's direction gets no gradient."""
    low, high = config.clip_range
    token_loss = torch.maximum(-advantages * ratio, -advantages * torch.clamp(ratio, low, high))
    ratio = ratio.detach()
    return PolicyTerms(token_loss, ratio, (ratio > high) & (advantages > 0), (ratio < low) & (advantages < 0))


@register_policy_loss("ppo")
def ppo_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, config: PolicyLossConfig) -> PolicyTerms:
    """Per-token ratio ``pi / pi_old``, clipped per token."""
    return clipped_surrogate(torch.exp(logprobs - old_logprobs), advantages, config)


@register_policy_loss("gspo")
def gspo_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, config: PolicyLossConfig) -> PolicyTerms:
    """GSPO: one ratio per sequence, ``s_i = (pi(y_i) / pi_old(y_i)) ** (1 / |y_i|)`` = exp(mean log-ratio),
    clipped per sequence, so a whole response is kept or dropped together.

    Every token carries ``s_i`` as its value and ``s_i * d log pi(y_t)`` as its gradient (the value
    detached, plus ``logprobs - logprobs.detach()``): averaged over the sequence's tokens that is
    exactly GSPO's gradient ``A_i * grad s_i``. Pair it with ``loss_agg="seq-mean-token-mean"`` (the
    paper's 1/G sum over sequences) and the paper's narrow clip (``clip_eps_low=3e-4``,
    ``clip_eps_high=4e-4``: a sequence ratio moves far less than a token's).
    """
    lengths = mask.sum(dim=1, keepdim=True).clamp(min=1)
    sequence_log_ratio = (logprobs - old_logprobs).sum(dim=1, keepdim=True) / lengths  # masked slots are 0
    log_ratio = logprobs - logprobs.detach() + sequence_log_ratio.detach()
    return clipped_surrogate(torch.exp(log_ratio), advantages, config)


@register_policy_loss("cispo")
def cispo_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, config: PolicyLossConfig) -> PolicyTerms:
    """CISPO: ``-sg(clip(r, 1 - low, 1 + high)) * A * log pi`` per token.

    PPO drops the gradient of a token whose ratio left the clip range; CISPO clips the
    importance *weight* instead and keeps every token's gradient ``-w * A * grad log pi``
    (MiniMax-M1 found the rare tokens PPO drops are the reflective ones). The loss value is
    ``-w * A * log pi``, not a surrogate near ``-A``; its gradient at ``r = 1`` equals PPO's.
    """
    ratio = torch.exp(logprobs - old_logprobs).detach()
    low, high = config.clip_range
    weight = torch.clamp(ratio, low, high)
    return PolicyTerms(-advantages * weight * logprobs, ratio, ratio > high, ratio < low)
