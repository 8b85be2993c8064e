"""The masked GRPO policy loss: a registered variant (PPO-clip by default, GSPO, CISPO, or your
own: ``policy_losses.py``), optional TIS and KL, then a registered aggregation (``aggregation.py``).

Only tokens the policy sampled are trained (``loss_mask``); prompt, environment
text (retrieved documents) and padding are excluded. Their logprob slots may hold
anything — padding garbage, ``-inf`` from a masked vocabulary, NaN — so every
input is replaced by 0 under the mask *before* any arithmetic: ``exp`` of garbage
is inf, and ``0 * inf`` in the backward pass is NaN even if the forward masked it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from deepresearch.agents.grpo.aggregation import LOSS_AGGREGATIONS, Normalizers
from deepresearch.agents.grpo.policy_losses import POLICY_LOSSES

KLEstimator = Literal["k1", "k3"]


@dataclass(frozen=True)
class PolicyLossConfig:
    """Which policy loss, and how it is clipped, regularised and averaged.

    * ``policy_loss``: a registered variant (``POLICY_LOSSES``): ``ppo`` (per-token
      PPO-clip), ``gspo`` (sequence-level ratio), ``cispo`` (clipped IS weights), or one
      of your own (``register_policy_loss``).
    * ``clip_eps_low`` / ``clip_eps_high``: the ratio is clipped to
      ``[1 - low, 1 + high]``; a larger ``high`` (DAPO's clip-higher) lets unlikely
      tokens with positive advantage grow faster, which keeps entropy from collapsing.
    * ``loss_agg``: a registered aggregation (``LOSS_AGGREGATIONS``). ``token-mean`` weights every response token equally (DAPO);
      ``seq-mean-token-mean`` weights every sequence equally (original GRPO, which
      favours short answers); ``seq-mean-token-sum-norm`` sums each sequence's tokens
      and divides by the constant ``max_response_length`` (Dr.GRPO, no length bias).
    * ``kl_coef`` / ``kl_estimator``: penalty towards a reference policy, estimated
      per token as k1 = log(pi/ref) or k3 = ref/pi - log(ref/pi) - 1 (always >= 0).
    * ``tis_cap``: truncated importance sampling. The rollout engine (vLLM) and the
      trainer compute slightly different logprobs for the same tokens; each token's
      loss is re-weighted by ``min(pi_old_trainer / pi_rollout, tis_cap)`` so the
      gradient is for the distribution that actually generated the data.
    """

    policy_loss: str = "ppo"
    clip_eps_low: float = 0.2
    clip_eps_high: float = 0.28
    loss_agg: str = "token-mean"
    max_response_length: int | None = None
    kl_coef: float = 0.0
    kl_estimator: KLEstimator = "k3"
    tis_cap: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.clip_eps_low < 1.0 or self.clip_eps_high < 0.0:
            raise ValueError(
                f"need 0 <= clip_eps_low < 1 and clip_eps_high >= 0, "
                f"got {self.clip_eps_low}, {self.clip_eps_high}"
            )
        POLICY_LOSSES.lookup(self.policy_loss)  # unknown names fail here, listing the registered ones
        LOSS_AGGREGATIONS.lookup(self.loss_agg)
        if self.max_response_length is not None and self.max_response_length <= 0:
            raise ValueError(f"max_response_length must be > 0, got {self.max_response_length}")
        if self.kl_estimator not in ("k1", "k3"):
            raise ValueError(f"unknown kl_estimator {self.kl_estimator!r}")
        if self.kl_coef < 0.0:
            raise ValueError(f"kl_coef must be >= 0, got {self.kl_coef}")
        if self.tis_cap is not None and self.tis_cap <= 0.0:
            raise ValueError(f"tis_cap must be > 0, got {self.tis_cap}")

    @property
    def clip_range(self) -> tuple[float, float]:
        """``(1 - clip_eps_low, 1 + clip_eps_high)``: the ratios a variant's clip leaves alone."""
        return 1.0 - self.clip_eps_low, 1.0 + self.clip_eps_high


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    loss_mask: Tensor,
    config: PolicyLossConfig = PolicyLossConfig(),
    *,
    ref_logprobs: Tensor | None = None,
    rollout_logprobs: Tensor | None = None,
    total_tokens: int | None = None,
    num_sequences: int | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Clipped policy-gradient loss of one micro-batch, normalised for the whole batch.

    Args:
        logprobs: ``[B, T]`` trainer logprobs of the sampled tokens under the current
            policy (requires grad).
        old_logprobs: ``[B, T]`` trainer logprobs under the policy that sampled the
            batch (no grad). PPO's ratio is ``exp(logprobs - old_logprobs)``.
        advantages: ``[B]`` one advantage per sequence (see ``group_advantages``).
        loss_mask: ``[B, T]`` bool or 0/1: True exactly on policy-sampled tokens.
        config: clipping, aggregation, KL and TIS settings.
        ref_logprobs: ``[B, T]`` reference-policy logprobs; required when
            ``config.kl_coef > 0``, logged as ``kl_ref`` whenever given.
        rollout_logprobs: ``[B, T]`` logprobs reported by the rollout engine; required
            when ``config.tis_cap`` is set.
        total_tokens: number of masked tokens in the WHOLE batch of this optimizer step,
            across all gradient-accumulation micro-batches (``token-mean`` divides by it).
            Defaults to this micro-batch's count (correct without accumulation).
        num_sequences: number of sequences in the whole batch of this optimizer step
            (``seq-mean-*`` divide by it). Defaults to ``B``.

    Returns:
        ``(loss, metrics)``: the scalar loss to ``backward()``; metrics are floats over
        this micro-batch's masked tokens, plus ``num_tokens`` so a trainer can weight
        them when it averages over micro-batches.

    Example (``token-mean``, eps 0.2/0.28, so ratios are clipped to [0.8, 1.28])::

        advantages = [1.0, -0.5]
        ratios     = [[1.0, 1.5, 0.9, 0.5],      loss_mask = [[1, 1, 1, 1],
                      [0.5, 1.1, 1.5, 7.0]]                   [1, 1, 1, 0]]
        row 0 (A=+1): -1.0, -1.28 (clipped high), -0.9, -0.5          sum -3.68
        row 1 (A=-.5): 0.4 (clipped low), 0.55, 0.75, masked          sum  1.70
        loss = (-3.68 + 1.70) / 7 tokens = -0.282857
    """
    batch_size, seq_len = logprobs.shape
    for name, tensor in (
        ("old_logprobs", old_logprobs),
        ("loss_mask", loss_mask),
        ("ref_logprobs", ref_logprobs),
        ("rollout_logprobs", rollout_logprobs),
    ):
        if tensor is not None and tensor.shape != (batch_size, seq_len):
            raise ValueError(f"{name} must have shape {(batch_size, seq_len)}, got {tuple(tensor.shape)}")
    if advantages.shape != (batch_size,):
        raise ValueError(f"advantages must have shape ({batch_size},), got {tuple(advantages.shape)}")
    if config.kl_coef > 0.0 and ref_logprobs is None:
        raise ValueError("config.kl_coef > 0, so ref_logprobs is required")
    if config.tis_cap is not None and rollout_logprobs is None:
        raise ValueError("config.tis_cap is set, so rollout_logprobs is required")
    mask = _bool_mask(loss_mask)
    num_tokens = int(mask.sum())

    current = _masked(logprobs.float(), mask)
    old = _masked(old_logprobs.detach().float(), mask)
    adv = advantages.detach().float().unsqueeze(1)
    terms = POLICY_LOSSES.lookup(config.policy_loss)(current, old, adv, mask, config)
    token_loss = terms.token_loss

    metrics: dict[str, float] = {}
    if config.tis_cap is not None:
        # Detached: the weight corrects the sampling distribution, it is not optimised.
        raw_weight = torch.exp(old - _masked(rollout_logprobs.detach().float(), mask))
        tis_weight = torch.clamp(raw_weight, max=config.tis_cap)
        token_loss = token_loss * tis_weight
        metrics["tis_weight_mean"] = _masked_mean(tis_weight, mask, num_tokens)
        metrics["tis_clip_frac"] = _masked_mean((raw_weight > config.tis_cap).float(), mask, num_tokens)

    if ref_logprobs is not None:
        kl = _kl_to_ref(current, _masked(ref_logprobs.detach().float(), mask), config.kl_estimator)
        metrics["kl_ref"] = _masked_mean(kl.detach(), mask, num_tokens)
        if config.kl_coef > 0.0:
            # Added after TIS: the weight corrects the PG estimate's sampling
            # distribution; the KL is a regulariser of the trainer's own policy.
            token_loss = token_loss + config.kl_coef * kl

    # Without gradient accumulation the batch is this micro-batch; max(., 1) makes a batch
    # with no trainable tokens give loss 0, not NaN.
    normalizers = Normalizers(
        total_tokens=max(num_tokens, 1) if total_tokens is None else total_tokens,
        num_sequences=batch_size if num_sequences is None else num_sequences,
        max_response_length=config.max_response_length,
    )
    loss = LOSS_AGGREGATIONS.lookup(config.loss_agg)(token_loss, mask, normalizers)

    with torch.no_grad():
        log_ratio = current - old
        metrics["clip_frac_high"] = _masked_mean(terms.clipped_high.float(), mask, num_tokens)
        metrics["clip_frac_low"] = _masked_mean(terms.clipped_low.float(), mask, num_tokens)
        metrics["ratio_mean"] = _masked_mean(terms.ratio, mask, num_tokens)
        # k3 estimate of KL(old || new) from samples of old: >= 0, low variance.
        metrics["approx_kl_old"] = _masked_mean(torch.exp(log_ratio) - 1.0 - log_ratio, mask, num_tokens)
        metrics["num_tokens"] = float(num_tokens)
    return loss, metrics


def _kl_to_ref(logprobs: Tensor, ref_logprobs: Tensor, estimator: KLEstimator) -> Tensor:
    """Per-token estimate of KL(pi || ref) from tokens sampled by pi."""
    log_ratio = logprobs - ref_logprobs  # log(pi / ref)
    if estimator == "k1":
        return log_ratio
    return torch.exp(-log_ratio) + log_ratio - 1.0


def _bool_mask(loss_mask: Tensor) -> Tensor:
    """Accept bool or 0/1 masks; reject fractional weights rather than guess."""
    if loss_mask.dtype == torch.bool:
        return loss_mask
    if not ((loss_mask == 0) | (loss_mask == 1)).all():
        raise ValueError("loss_mask must be bool or contain only 0 and 1")
    return loss_mask != 0


def _masked(values: Tensor, mask: Tensor) -> Tensor:
    """Zero out unmasked slots before arithmetic; their gradient is exactly 0 too."""
    return torch.where(mask, values, 0.0)


def _masked_mean(values: Tensor, mask: Tensor, count: int) -> float:
    """Mean over the ``count`` masked tokens as a Python float (0 when there are none)."""
    if count == 0:
        return 0.0
    return float(torch.where(mask, values, 0.0).sum() / count)
