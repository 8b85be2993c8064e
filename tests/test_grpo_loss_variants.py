"""GSPO and CISPO on the 2x4 batch of ``test_grpo_loss.py``, every number worked out by hand below,
and a policy loss and an aggregation registered here, outside the package, chosen by name."""

from __future__ import annotations

import pytest
import torch
from test_grpo_loss import ADVANTAGES, MASK, OLD, RATIOS, _logprobs

from deepresearch.agents import GRPOConfig, PolicyLossConfig, policy_loss, register_loss_aggregation, register_policy_loss
from deepresearch.agents.grpo.aggregation import LOSS_AGGREGATIONS, sequence_sums
from deepresearch.agents.grpo.policy_losses import POLICY_LOSSES, PolicyTerms, clipped_surrogate
from deepresearch.agents.train.config_file import load_config

# GSPO: one ratio per sequence, the geometric mean of its tokens' ratios.
#   row 0 (A = +1, 4 tokens):   s0 = (1.0 * 1.5 * 0.9 * 0.5) ** (1/4) = 0.675 ** 0.25 = 0.9064126
#   row 1 (A = -0.5, 3 tokens): s1 = (0.5 * 1.1 * 1.5) ** (1/3)       = 0.825 ** (1/3) = 0.9378887
S0, S1 = 0.9064126192, 0.9378887277


def test_gspo_gives_every_token_its_sequence_ratio() -> None:
    logprobs = _logprobs()
    config = PolicyLossConfig(policy_loss="gspo", loss_agg="seq-mean-token-mean")
    loss, metrics = policy_loss(logprobs, OLD, ADVANTAGES, MASK, config)
    # Inside [0.8, 1.28]: nothing clipped. Per sequence -A * s: (-0.9064126 + 0.5 * 0.9378887) / 2
    assert loss.item() == pytest.approx((-S0 + 0.5 * S1) / 2)  # -0.2187341
    loss.backward()
    # d/d logprob_t of -A * s_i = -A * s_i / |y_i|, then / 2 sequences:
    #   row 0: -0.9064126 / 8 = -0.1133016 on each token; row 1: 0.5 * 0.9378887 / 6 = 0.0781574
    expected = torch.tensor([[-S0 / 8] * 4, [0.5 * S1 / 6] * 3 + [0.0]])
    torch.testing.assert_close(logprobs.grad, expected)
    # ratio_mean is over tokens: (4 * s0 + 3 * s1) / 7
    assert metrics["ratio_mean"] == pytest.approx((4 * S0 + 3 * S1) / 7)


def test_gspo_equals_its_sequence_level_definition_in_value_and_gradient() -> None:
    """The GSPO-token form used here vs the paper's objective written directly: same loss, same gradient."""
    config = PolicyLossConfig(policy_loss="gspo", loss_agg="seq-mean-token-mean", clip_eps_low=0.05, clip_eps_high=0.05)
    ours = _logprobs()
    loss, _ = policy_loss(ours, OLD, ADVANTAGES, MASK, config)
    loss.backward()
    direct = _logprobs()
    s = torch.exp(((direct - OLD) * MASK).sum(1) / MASK.sum(1))
    surrogate = torch.minimum(s * ADVANTAGES, torch.clamp(s, 0.95, 1.05) * ADVANTAGES)
    (-surrogate.mean()).backward()
    assert loss.item() == pytest.approx(float(-surrogate.mean().detach()))
    torch.testing.assert_close(ours.grad, direct.grad * MASK)


def test_gspo_clips_a_whole_sequence_together() -> None:
    # Clip range [0.95, 1.05]: row 1's s1 = 0.938 < 0.95 with A < 0 is clipped, so all three of its
    # tokens lose their gradient; row 0's s0 = 0.906 < 0.95 with A > 0 is not (PPO's pessimism).
    config = PolicyLossConfig(policy_loss="gspo", loss_agg="seq-mean-token-mean", clip_eps_low=0.05, clip_eps_high=0.05)
    logprobs = _logprobs()
    loss, metrics = policy_loss(logprobs, OLD, ADVANTAGES, MASK, config)
    assert loss.item() == pytest.approx((-S0 + 0.5 * 0.95) / 2)  # row 1 at the clip: 0.5 * 0.95
    loss.backward()
    assert (logprobs.grad[1] == 0).all() and (logprobs.grad[0] != 0).all()
    assert metrics["clip_frac_low"] == pytest.approx(3 / 7) and metrics["clip_frac_high"] == 0.0


# CISPO: loss -sg(w) * A * log pi with w = clip(ratio, 0.8, 1.28), token-mean.
#   log pi = OLD + log(ratio): row 0 [-1.0, -1.5945349, -0.6053605, -3.6931472]
#                              row 1 [-1.3931472, -1.1046898, -2.0945349]
#   w:                         row 0 [1.0, 1.28, 0.9, 0.8]    row 1 [0.8, 1.1, 1.28]
#   row 0 (A = +1):   1.0 + 1.28 * 1.5945349 + 0.9 * 0.6053605 + 0.8 * 3.6931472 = 6.5403469
#   row 1 (A = -0.5): -0.5 * (0.8 * 1.3931472 + 1.1 * 1.1046898 + 1.28 * 2.0945349) = -2.5053406
#   loss = (6.5403469 - 2.5053406) / 7 = 0.5764295


def test_cispo_matches_hand_computation() -> None:
    logprobs = _logprobs()
    loss, metrics = policy_loss(logprobs, OLD, ADVANTAGES, MASK, PolicyLossConfig(policy_loss="cispo"))
    assert loss.item() == pytest.approx(0.5764295, abs=1e-6)
    loss.backward()
    # d/d log pi = -A * w / 7: unlike PPO, the clipped tokens (ratio 1.5, both rows) keep a gradient.
    expected = torch.tensor([[-1.0, -1.28, -0.9, -0.8], [0.4, 0.55, 0.64, 0.0]]) / 7
    torch.testing.assert_close(logprobs.grad, expected)
    assert metrics["clip_frac_high"] == pytest.approx(2 / 7) and metrics["clip_frac_low"] == pytest.approx(2 / 7)


def test_cispo_weights_are_constants() -> None:
    """The clipped weight is detached: on-policy (ratio 1) CISPO's gradient is REINFORCE's, -A * grad log pi / N."""
    logprobs = OLD.clone().requires_grad_(True)
    loss, _ = policy_loss(logprobs, OLD, ADVANTAGES, MASK, PolicyLossConfig(policy_loss="cispo"))
    loss.backward()
    torch.testing.assert_close(logprobs.grad, -ADVANTAGES.unsqueeze(1).expand(2, 4) * MASK / 7)


# ---------------------------------------------------------------- registration from user code


def halved_ppo(logprobs, old_logprobs, advantages, mask, config) -> PolicyTerms:
    """A user's variant: PPO's clipped surrogate with every advantage halved."""
    return clipped_surrogate(torch.exp(logprobs - old_logprobs), advantages / 2, config)


def sum_over_sequences(token_loss, mask, normalizers):
    """A user's aggregation: the plain sum over the batch's sequences."""
    return sequence_sums(token_loss, mask).sum()


@pytest.fixture
def registered():
    register_policy_loss("halved_ppo", halved_ppo)
    register_loss_aggregation("sum", sum_over_sequences)
    yield
    POLICY_LOSSES.unregister("halved_ppo")
    LOSS_AGGREGATIONS.unregister("sum")


def test_a_registered_variant_and_aggregation_are_chosen_by_name(registered, tmp_path) -> None:
    ours, _ = policy_loss(_logprobs(), OLD, ADVANTAGES, MASK, PolicyLossConfig(policy_loss="halved_ppo", loss_agg="sum"))
    # PPO's row sums (-3.68 and 1.70, see test_grpo_loss) halved and added: (-3.68 + 1.70) / 2
    assert ours.item() == pytest.approx(-0.99)
    recipe = tmp_path / "run.yaml"
    recipe.write_text("update:\n  loss: {policy_loss: halved_ppo, loss_agg: sum}\n")
    config = load_config(recipe)
    assert isinstance(config, GRPOConfig) and (config.update.loss.policy_loss, config.update.loss.loss_agg) == ("halved_ppo", "sum")


def test_unknown_and_duplicate_names_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown policy loss 'gspo2'; registered: cispo, gspo, ppo"):
        PolicyLossConfig(policy_loss="gspo2")
    with pytest.raises(ValueError, match="already registered"):
        register_policy_loss("ppo", halved_ppo)
    with pytest.raises(TypeError, match="must be callable as fn"):
        register_loss_aggregation("not-a-function", 3)


def test_ppo_by_name_is_the_default_loss() -> None:
    by_name, _ = policy_loss(_logprobs(), OLD, ADVANTAGES, MASK, PolicyLossConfig(policy_loss="ppo"))
    default, _ = policy_loss(_logprobs(), OLD, ADVANTAGES, MASK)
    assert by_name.item() == default.item() == pytest.approx((-3.68 + 1.70) / 7)
    assert RATIOS.shape == (2, 4)
