"""Group-relative advantages for GRPO: each sample is scored against its own group.

GRPO samples several completions per prompt (a *group*) and uses the group's own
rewards as the baseline, so no value network is needed. Groups are identified by
an explicit id per sample, never by position: rollouts come back from engines in
completion order, and a uid bug that gives every sample its own id silently turns
GRPO into "all advantages are zero" — so size-1 groups are counted, warned about,
and rejected outright when the caller said groups should be larger.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class AdvantageStats:
    """Per-sample advantages plus the group statistics a trainer logs or filters on.

    ``zero_variance_mask[i]`` is True when every sample in ``i``'s group got the same
    reward: such a group carries no learning signal (its advantages are exactly 0),
    and a trainer may drop those samples to spend compute on informative groups
    (DAPO's dynamic sampling). Size-1 groups are zero-variance too, and are also
    counted separately in ``num_singleton_groups`` because they usually mean a bug.
    """

    advantages: Tensor  # [B], dtype of the rewards (float32 for integer rewards)
    zero_variance_mask: Tensor  # [B] bool
    num_groups: int
    num_zero_variance_groups: int
    num_singleton_groups: int


def group_advantages(
    rewards: Tensor,
    group_ids: Tensor | Sequence[Hashable],
    scale_by_std: bool = True,
    eps: float = 1e-6,
    expected_group_size: int | None = None,
) -> AdvantageStats:
    """Advantage of each sample = its reward minus its group's mean, optionally / std.

    Args:
        rewards: ``[B]`` scalar reward per sample; must be finite.
        group_ids: ``[B]`` group id per sample (an integer tensor, or any sequence of
            hashables such as prompt uids). Members of a group need not be adjacent.
        scale_by_std: divide by the group's standard deviation (GRPO). ``False`` keeps
            only the mean baseline (Dr.GRPO), which avoids up-weighting groups whose
            rewards barely differ.
        eps: added to the std so nearly-uniform groups do not explode.
        expected_group_size: the group size the caller sampled. When it is > 1 and
            every group turns out to have one member, the ids are wrong: raise.

    The std is the population std (divide by n, as ``numpy.std``), so it is defined
    for every group size; Bessel's correction would only rescale a group of n by
    ``sqrt((n - 1) / n)``.

    Example (ids interleaved; group 5 has zero variance)::

        rewards   = [1.0, 2.0, 0.0, 0.1, 0.0, 0.5, 0.1]
        group_ids = [7,   3,   7,   5,   3,   7,   5  ]
        group 7: mean 0.5, std sqrt(1/6) = 0.4082 -> [ 1.2247, -1.2247, 0.0]
        group 3: mean 1.0, std 1.0                -> [ 1.0, -1.0]
        group 5: identical rewards                -> [ 0.0,  0.0] (exactly)
        advantages = [1.2247, 1.0, -1.2247, 0.0, -1.0, 0.0, 0.0]
    """
    if rewards.ndim != 1:
        raise ValueError(f"rewards must be 1-D [B], got shape {tuple(rewards.shape)}")
    batch_size = rewards.shape[0]
    if batch_size == 0:
        raise ValueError("rewards is empty: there is nothing to compute advantages for")
    if not torch.isfinite(rewards).all():
        bad = torch.nonzero(~torch.isfinite(rewards)).flatten().tolist()
        raise ValueError(f"rewards must be finite; non-finite at sample indices {bad}")
    group_index = _dense_group_index(group_ids, batch_size, rewards.device)

    num_groups = int(group_index.max()) + 1
    # Float64 for the group sums: mean/std of rewards like 0.1 must not drift.
    r = rewards.to(torch.float64)
    counts = torch.zeros(num_groups, dtype=torch.float64, device=r.device)
    counts.index_add_(0, group_index, torch.ones_like(r))
    sums = torch.zeros_like(counts).index_add_(0, group_index, r)
    means = sums / counts
    centered = r - means[group_index]
    squares = torch.zeros_like(counts).index_add_(0, group_index, centered**2)
    stds = torch.sqrt(squares / counts)

    # Zero variance decided on the exact rewards (max == min), not on std < tol, so
    # "identical rewards" means identical and their advantage is exactly 0.
    group_max = torch.full_like(counts, -torch.inf).scatter_reduce(0, group_index, r, "amax")
    group_min = torch.full_like(counts, torch.inf).scatter_reduce(0, group_index, r, "amin")
    zero_variance_groups = group_max == group_min
    zero_variance_mask = zero_variance_groups[group_index]

    if scale_by_std:
        centered = centered / (stds[group_index] + eps)
    advantages = torch.where(zero_variance_mask, torch.zeros_like(centered), centered)

    num_singletons = int((counts == 1).sum())
    _check_singletons(num_singletons, num_groups, expected_group_size)
    out_dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    assert advantages.shape == (batch_size,)
    return AdvantageStats(
        advantages=advantages.to(out_dtype),
        zero_variance_mask=zero_variance_mask,
        num_groups=num_groups,
        num_zero_variance_groups=int(zero_variance_groups.sum()),
        num_singleton_groups=num_singletons,
    )


def _dense_group_index(
    group_ids: Tensor | Sequence[Hashable], batch_size: int, device: torch.device
) -> Tensor:
    """Map arbitrary ids to ``0..G-1`` so groups can be reduced with ``index_add_``."""
    if isinstance(group_ids, Tensor):
        if group_ids.shape != (batch_size,):
            raise ValueError(
                f"group_ids must have shape ({batch_size},) like rewards, "
                f"got {tuple(group_ids.shape)}"
            )
        _, index = torch.unique(group_ids, return_inverse=True)
        return index.to(device)
    if len(group_ids) != batch_size:
        raise ValueError(f"got {len(group_ids)} group_ids for {batch_size} rewards")
    dense: dict[Hashable, int] = {}
    index_list = [dense.setdefault(gid, len(dense)) for gid in group_ids]
    return torch.tensor(index_list, dtype=torch.long, device=device)


def _check_singletons(num_singletons: int, num_groups: int, expected_group_size: int | None) -> None:
    """Size-1 groups get advantage 0 and teach nothing; all of them means broken ids."""
    if num_singletons == 0:
        return
    if expected_group_size is not None and expected_group_size > 1 and num_singletons == num_groups:
        raise ValueError(
            f"every one of the {num_groups} groups has a single sample, but groups of "
            f"{expected_group_size} were expected: the group ids are probably per-sample "
            "uids instead of per-prompt ids"
        )
    warnings.warn(
        f"{num_singletons} of {num_groups} groups have a single sample; their advantage "
        "is 0, so they contribute no gradient",
        stacklevel=3,
    )
