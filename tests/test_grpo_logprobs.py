"""Token logprobs and entropies from logits: hand values, a full-softmax cross-check, -inf logits."""

from __future__ import annotations

import math

import pytest
import torch

from deepresearch.agents.grpo.logprobs import entropy_from_logits, selective_log_softmax

# Two positions, V = 2: uniform, then probabilities (1/4, 3/4).
LOGITS = torch.tensor([[[0.0, 0.0], [0.0, math.log(3)]]])


def test_selective_log_softmax_hand_values() -> None:
    out = selective_log_softmax(LOGITS, torch.tensor([[0, 1]]))
    torch.testing.assert_close(out, torch.tensor([[math.log(0.5), math.log(0.75)]]))


def test_entropy_hand_values() -> None:
    out = entropy_from_logits(LOGITS)
    # log 2 = 0.693147; -(0.25 log 0.25 + 0.75 log 0.75) = 0.346574 + 0.215762 = 0.562335
    torch.testing.assert_close(out, torch.tensor([[0.693147, 0.562335]]))


def _random_logits(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return (4 * torch.randn(3, 7, 50, generator=gen)).to(dtype)


def test_selective_log_softmax_matches_full_log_softmax_and_its_gradient() -> None:
    logits = _random_logits().requires_grad_(True)
    ids = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(1))
    ours = selective_log_softmax(logits, ids)
    (grad_ours,) = torch.autograd.grad(ours.sum(), logits)
    reference = torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    (grad_reference,) = torch.autograd.grad(reference.sum(), logits)
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(grad_ours, grad_reference)


def test_bf16_logits_are_normalised_in_float32() -> None:
    logits = _random_logits(torch.bfloat16)
    ids = torch.zeros(3, 7, dtype=torch.long)
    out = selective_log_softmax(logits, ids)
    assert out.dtype == torch.float32
    expected = torch.log_softmax(logits.float(), -1)[..., 0]
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 100])
def test_entropy_chunking_does_not_change_the_result(chunk_size: int) -> None:
    logits = _random_logits()
    probs = torch.softmax(logits, -1)
    reference = -(probs * probs.log()).sum(-1)
    torch.testing.assert_close(entropy_from_logits(logits, chunk_size=chunk_size), reference)


def test_entropy_with_neg_inf_logits_is_finite_with_finite_gradient() -> None:
    # A masked vocabulary: token 2 impossible. Entropy is that of the other two (log 2).
    logits = torch.tensor([[[1.0, 1.0, -math.inf]]], requires_grad=True)
    entropy = entropy_from_logits(logits)
    entropy.sum().backward()
    assert entropy.item() == pytest.approx(math.log(2))
    assert torch.isfinite(logits.grad).all()


def test_entropy_of_extreme_logits_is_stable() -> None:
    # Almost one-hot: naive exp(1000) would overflow; the answer is ~0.
    logits = torch.tensor([[[1000.0, 0.0, -1000.0]]])
    assert entropy_from_logits(logits).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("logits", "ids", "message"),
    [
        (torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), "float \\[B, T, V\\]"),
        (torch.zeros(1, 2, 4), torch.zeros(1, 3, dtype=torch.long), "ids must have shape"),
        (torch.zeros(1, 2, 4), torch.tensor([[0, 4]]), "ids must lie in"),
    ],
)
def test_bad_input_raises_clear_errors(logits: torch.Tensor, ids: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        selective_log_softmax(logits, ids)
