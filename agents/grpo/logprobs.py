"""Per-token logprobs and entropies from ``[B, T, V]`` logits, without a full-size copy.

With a 150k vocabulary, ``log_softmax`` over a whole batch materialises another
``B * T * V`` float32 tensor (gigabytes for a few thousand tokens). Both helpers
therefore work on a slice at a time and upcast only that slice to float32, which
also keeps bf16 logits from losing precision in the normaliser.
"""

from __future__ import annotations

import torch
from torch import Tensor


def selective_log_softmax(logits: Tensor, ids: Tensor) -> Tensor:
    """``log softmax(logits)[b, t, ids[b, t]]`` computed one row at a time.

    Args:
        logits: ``[B, T, V]`` any float dtype.
        ids: ``[B, T]`` integer token ids in ``[0, V)``.

    Returns:
        ``[B, T]`` float32 logprobs, differentiable w.r.t. ``logits``.

    Example::

        logits = [[[0.0, log 3]]]  (V = 2: probabilities 1/4 and 3/4)
        ids    = [[1]]
        -> [[log 0.75]] = [[-0.2877]]
    """
    _check_logits(logits)
    if ids.shape != logits.shape[:2]:
        raise ValueError(f"ids must have shape {tuple(logits.shape[:2])}, got {tuple(ids.shape)}")
    vocab = logits.shape[-1]
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise ValueError(f"ids must lie in [0, {vocab}), got [{int(ids.min())}, {int(ids.max())}]")
    rows = []
    for row_logits, row_ids in zip(logits, ids):  # [T, V], [T]
        row = row_logits.float()
        # log p(id) = logit(id) - logsumexp(logits): no [T, V] log_softmax is kept.
        picked = row.gather(-1, row_ids.long().unsqueeze(-1)).squeeze(-1)
        rows.append(picked - torch.logsumexp(row, dim=-1))
    return torch.stack(rows) if rows else logits.new_zeros(ids.shape, dtype=torch.float32)


def entropy_from_logits(logits: Tensor, chunk_size: int = 128) -> Tensor:
    """Entropy ``-sum_v p log p`` of each position's distribution, ``chunk_size`` positions at a time.

    Chunks bound the temporary memory of a ``no_grad`` call (metrics); under
    autograd the saved softmax of every chunk is still kept for the backward pass.
    Logits of ``-inf`` (a masked vocabulary) contribute 0, and their gradient is 0
    rather than NaN.

    Args:
        logits: ``[B, T, V]`` any float dtype.
        chunk_size: positions along ``T`` processed together.

    Returns:
        ``[B, T]`` float32 entropies in nats.

    Example::

        logits = [[[0.0, 0.0], [0.0, log 3]]]
        -> [[log 2, -(0.25 log 0.25 + 0.75 log 0.75)]] = [[0.6931, 0.5623]]
    """
    _check_logits(logits)
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
    chunks = []
    for chunk in logits.split(chunk_size, dim=1):  # [B, <=chunk_size, V]
        logp = torch.log_softmax(chunk.float(), dim=-1)
        # p = 0 where logp = -inf; 0 * -inf would be NaN, so zero those logps first.
        finite_logp = logp.masked_fill(torch.isneginf(logp), 0.0)
        chunks.append(-(logp.exp() * finite_logp).sum(dim=-1))
    return torch.cat(chunks, dim=1) if chunks else logits.new_zeros(logits.shape[:2], dtype=torch.float32)


def _check_logits(logits: Tensor) -> None:
    if logits.ndim != 3 or not logits.is_floating_point():
        raise ValueError(f"logits must be a float [B, T, V] tensor, got {logits.dtype} {tuple(logits.shape)}")
