"""Group-relative advantages on hand-computed examples: interleaved ids, std on/off, singletons."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from deepresearch.agents.grpo.advantages import group_advantages

# Three interleaved groups: 7 -> rewards (1, 0, 0.5), 3 -> (2, 0), 5 -> (0.1, 0.1).
REWARDS = torch.tensor([1.0, 2.0, 0.0, 0.1, 0.0, 0.5, 0.1])
GROUP_IDS = torch.tensor([7, 3, 7, 5, 3, 7, 5])


def test_std_scaled_advantages_match_hand_computation() -> None:
    stats = group_advantages(REWARDS, GROUP_IDS, scale_by_std=True, eps=0.0)
    # group 7: mean 0.5; deviations (0.5, -0.5, 0); population std sqrt(0.5 / 3) = 0.408248
    dev7 = 0.5 / math.sqrt(0.5 / 3)  # 1.224745
    # group 3: mean 1; deviations (1, -1); std 1
    expected = torch.tensor([dev7, 1.0, -dev7, 0.0, -1.0, 0.0, 0.0])
    torch.testing.assert_close(stats.advantages, expected)
    assert stats.num_groups == 3
    assert stats.num_zero_variance_groups == 1
    assert stats.num_singleton_groups == 0
    assert stats.zero_variance_mask.tolist() == [False, False, False, True, False, False, True]


def test_eps_is_added_to_std() -> None:
    stats = group_advantages(REWARDS, GROUP_IDS, eps=0.1)
    # group 3 has std exactly 1, so its advantages are +-1 / 1.1
    assert stats.advantages[1].item() == pytest.approx(1.0 / 1.1)
    assert stats.advantages[4].item() == pytest.approx(-1.0 / 1.1)


def test_mean_only_advantages_dr_grpo() -> None:
    stats = group_advantages(REWARDS, GROUP_IDS, scale_by_std=False)
    # reward minus group mean: group 7 mean 0.5, group 3 mean 1.0, group 5 mean 0.1
    expected = torch.tensor([0.5, 1.0, -0.5, 0.0, -1.0, 0.0, 0.0])
    torch.testing.assert_close(stats.advantages, expected)


def test_zero_variance_group_is_exactly_zero() -> None:
    # 0.1 is not representable: a computed mean of three 0.1s need not equal 0.1,
    # yet the advantage of identical rewards must be exactly 0, not 1e-9 / eps.
    rewards = torch.tensor([0.1, 0.1, 0.1, 1.0, 0.0], dtype=torch.float32)
    stats = group_advantages(rewards, ["a", "a", "a", "b", "b"], eps=1e-8)
    assert stats.advantages[:3].tolist() == [0.0, 0.0, 0.0]
    assert stats.advantages[3:].tolist() == pytest.approx([1.0, -1.0], abs=1e-6)
    assert stats.num_zero_variance_groups == 1


def test_string_ids_group_by_identity_not_position() -> None:
    ids = ["q7", "q3", "q7", "q5", "q3", "q7", "q5"]
    by_strings = group_advantages(REWARDS, ids).advantages
    by_tensor = group_advantages(REWARDS, GROUP_IDS).advantages
    torch.testing.assert_close(by_strings, by_tensor)


def test_integer_rewards_give_float_advantages() -> None:
    stats = group_advantages(torch.tensor([1, 0, 0, 0]), [0, 0, 1, 1], scale_by_std=False)
    assert stats.advantages.dtype == torch.float32
    assert stats.advantages.tolist() == [0.5, -0.5, 0.0, 0.0]


def test_some_singleton_groups_are_counted_and_warned() -> None:
    with pytest.warns(UserWarning, match="2 of 3 groups have a single sample"):
        stats = group_advantages(torch.tensor([1.0, 0.0, 1.0, 0.5]), [0, 0, 1, 2], expected_group_size=2)
    assert stats.num_singleton_groups == 2
    assert stats.num_zero_variance_groups == 2  # a lone sample has nothing to differ from
    # group 0: mean 0.5, std 0.5 -> (+1, -1); the singletons get 0
    assert stats.advantages.tolist() == pytest.approx([1.0, -1.0, 0.0, 0.0], abs=1e-5)


def test_all_singleton_groups_raise_when_groups_were_expected() -> None:
    with pytest.raises(ValueError, match="per-sample uids"):
        group_advantages(torch.tensor([1.0, 0.0, 0.5]), ["u1", "u2", "u3"], expected_group_size=4)


def test_all_singletons_without_expectation_only_warn() -> None:
    with pytest.warns(UserWarning):
        stats = group_advantages(torch.tensor([1.0, 0.0]), [0, 1])
    assert stats.num_singleton_groups == 2
    assert stats.num_zero_variance_groups == 2
    assert stats.advantages.tolist() == [0.0, 0.0]


def test_regular_groups_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        group_advantages(REWARDS, GROUP_IDS, expected_group_size=2)


@pytest.mark.parametrize(
    ("rewards", "ids", "message"),
    [
        (torch.tensor([1.0, float("nan")]), [0, 0], "finite"),
        (torch.tensor([1.0, 0.0]), [0], "2 rewards"),
        (torch.tensor([1.0, 0.0]), torch.tensor([0, 0, 1]), "shape"),
        (torch.tensor([[1.0, 0.0]]), [0, 0], "1-D"),
        (torch.tensor([]), [], "empty"),
    ],
)
def test_bad_input_raises_clear_errors(rewards: torch.Tensor, ids: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        group_advantages(rewards, ids)
