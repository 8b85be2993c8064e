"""The distribution of per-token importance weights ``pi_old / pi_rollout``.

The rollout engine sampled each token with some policy (an older one when rollouts
run ahead of training, and always with its own numerics); the loss weights the token
by ``pi_old / pi_rollout`` (truncated at ``tis_cap``). Its mean says little — a few
huge weights hide among many ones — so the trainer logs quantiles and the extremes.
"""

from __future__ import annotations

import torch
from torch import Tensor

QUANTILES = (0.01, 0.5, 0.99)


def importance_weight_stats(log_ratios: Tensor) -> dict[str, float]:
    """``importance/{mean,min,p1,p50,p99,max}`` of ``exp(log_ratios)`` (1-D, one per trained token).

    Example: log-ratios ``[0, 0, ln 2, -ln 2]`` -> weights ``[1, 1, 2, 0.5]``: mean 1.125,
    min 0.5, p50 1.0, max 2.0. No tokens: no metrics.
    """
    if log_ratios.numel() == 0:
        return {}
    weights = torch.exp(log_ratios.double().flatten())
    stats = {"importance/mean": float(weights.mean()), "importance/min": float(weights.min()), "importance/max": float(weights.max())}
    for q, value in zip(QUANTILES, torch.quantile(weights, torch.tensor(QUANTILES, dtype=weights.dtype)).tolist()):
        stats[f"importance/p{round(q * 100)}"] = value
    return stats
