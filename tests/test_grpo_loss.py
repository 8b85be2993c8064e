"""The masked GRPO loss on a 2x4 batch whose every number is worked out by hand below."""

from __future__ import annotations

import math

import pytest
import torch

from deepresearch.agents.grpo.loss import PolicyLossConfig, policy_loss

# Ratios pi/pi_old chosen so each PPO case appears once; eps 0.2 / 0.28 -> clip to [0.8, 1.28].
#   row 0, A = +1:   1.0 (inside), 1.5 (above 1.28: clipped), 0.9 (inside), 0.5 (below 0.8 but A > 0: not clipped)
#   row 1, A = -0.5: 0.5 (below 0.8: clipped), 1.1 (inside), 1.5 (above 1.28 but A < 0: not clipped), masked
RATIOS = torch.tensor([[1.0, 1.5, 0.9, 0.5], [0.5, 1.1, 1.5, 1.0]])
MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
ADVANTAGES = torch.tensor([1.0, -0.5])
OLD = torch.tensor([[-1.0, -2.0, -0.5, -3.0], [-0.7, -1.2, -2.5, -0.1]])

# Per-token losses -A * ratio, or -A * clipped ratio where the clip binds:
#   row 0: -1.0, -1.28, -0.9, -0.5                        -> sum -3.68 over 4 tokens
#   row 1: 0.5 * 0.8 = 0.4, 0.5 * 1.1 = 0.55, 0.5 * 1.5 = 0.75 -> sum  1.70 over 3 tokens
ROW_SUMS = (-3.68, 1.70)


def _logprobs() -> torch.Tensor:
    return (OLD + RATIOS.log()).requires_grad_(True)


def test_token_mean_matches_hand_computation() -> None:
    logprobs = _logprobs()
    loss, metrics = policy_loss(logprobs, OLD, ADVANTAGES, MASK)
    assert loss.item() == pytest.approx((-3.68 + 1.70) / 7)  # -0.282857
    loss.backward()
    # d loss / d logprob = d(-A * ratio)/d logprob / 7 = -A * ratio / 7 where unclipped, 0 where clipped
    expected_grad = torch.tensor([[-1.0, 0.0, -0.9, -0.5], [0.0, 0.55, 0.75, 0.0]]) / 7
    torch.testing.assert_close(logprobs.grad, expected_grad)
    assert metrics["num_tokens"] == 7


def test_seq_mean_token_mean_matches_hand_computation() -> None:
    config = PolicyLossConfig(loss_agg="seq-mean-token-mean")
    loss, _ = policy_loss(_logprobs(), OLD, ADVANTAGES, MASK, config)
    # (-3.68 / 4 + 1.70 / 3) / 2 = (-0.92 + 0.566667) / 2
    assert loss.item() == pytest.approx(-0.1766667, abs=1e-6)


def test_seq_mean_token_sum_norm_matches_hand_computation() -> None:
    config = PolicyLossConfig(loss_agg="seq-mean-token-sum-norm", max_response_length=10)
    loss, _ = policy_loss(_logprobs(), OLD, ADVANTAGES, MASK, config)
    # (-3.68 / 10 + 1.70 / 10) / 2 = (-0.368 + 0.17) / 2
    assert loss.item() == pytest.approx(-0.099, abs=1e-6)


def test_clip_fractions_count_exactly_the_binding_tokens() -> None:
    _, metrics = policy_loss(_logprobs(), OLD, ADVANTAGES, MASK)
    assert metrics["clip_frac_high"] == pytest.approx(1 / 7)  # row 0, token 1
    assert metrics["clip_frac_low"] == pytest.approx(1 / 7)  # row 1, token 0
    # (1.0 + 1.5 + 0.9 + 0.5 + 0.5 + 1.1 + 1.5) / 7 = 7.0 / 7
    assert metrics["ratio_mean"] == pytest.approx(1.0)
    # per token ratio - 1 - log ratio; the masked slot (ratio 1) would add 0 anyway
    approx_kl = sum(r - 1 - math.log(r) for r in (1.0, 1.5, 0.9, 0.5, 0.5, 1.1, 1.5)) / 7
    assert metrics["approx_kl_old"] == pytest.approx(approx_kl, rel=1e-5)


def test_symmetric_clip_catches_what_clip_higher_lets_through() -> None:
    # With eps_high = 0.6 the 1.5 ratio of row 0 is inside [0.8, 1.6]: nothing clipped high.
    _, wide = policy_loss(_logprobs(), OLD, ADVANTAGES, MASK, PolicyLossConfig(clip_eps_high=0.6))
    assert wide["clip_frac_high"] == 0.0
    # With eps_low = 0.6 the 0.5 ratio of row 1 is inside [0.4, 1.28]: nothing clipped low.
    _, low = policy_loss(_logprobs(), OLD, ADVANTAGES, MASK, PolicyLossConfig(clip_eps_low=0.6))
    assert low["clip_frac_low"] == 0.0


@pytest.mark.parametrize(
    ("estimator", "per_token"),
    [
        # log(pi/ref) = +log 2 on row 0, -log 2 on row 1
        ("k1", (math.log(2), -math.log(2))),
        # ref/pi - log(ref/pi) - 1: 0.5 + log 2 - 1 = 0.193147 ; 2 - log 2 - 1 = 0.306853
        ("k3", (0.5 + math.log(2) - 1, 2 - math.log(2) - 1)),
    ],
)
def test_kl_to_reference(estimator: str, per_token: tuple[float, float]) -> None:
    logprobs = _logprobs()
    ref = logprobs.detach() - torch.tensor([[math.log(2)], [-math.log(2)]])
    zero_adv = torch.zeros(2)  # isolate the KL term: the PG term is -0 * ratio = 0
    config = PolicyLossConfig(kl_coef=0.1, kl_estimator=estimator)
    loss, metrics = policy_loss(logprobs, OLD, zero_adv, MASK, config, ref_logprobs=ref)
    kl_mean = (4 * per_token[0] + 3 * per_token[1]) / 7  # 4 masked tokens in row 0, 3 in row 1
    assert metrics["kl_ref"] == pytest.approx(kl_mean, abs=1e-6)
    assert loss.item() == pytest.approx(0.1 * kl_mean, abs=1e-6)


def test_kl_is_logged_but_not_added_when_coef_is_zero() -> None:
    ref = OLD - 1.0
    plain, _ = policy_loss(_logprobs(), OLD, ADVANTAGES, MASK)
    loss, metrics = policy_loss(_logprobs(), OLD, ADVANTAGES, MASK, ref_logprobs=ref)
    assert loss.item() == plain.item()
    assert metrics["kl_ref"] > 0


def test_tis_weights_are_capped_and_detached() -> None:
    # old_trainer - rollout: log 3 on row 0 (weight 3, capped to 2), log 0.5 on row 1 (weight 0.5)
    rollout = (OLD - torch.tensor([[math.log(3)], [math.log(0.5)]])).requires_grad_(True)
    config = PolicyLossConfig(tis_cap=2.0)
    loss, metrics = policy_loss(_logprobs(), OLD, ADVANTAGES, MASK, config, rollout_logprobs=rollout)
    # (2 * -3.68 + 0.5 * 1.70) / 7 = (-7.36 + 0.85) / 7
    assert loss.item() == pytest.approx(-6.51 / 7, abs=1e-6)
    assert metrics["tis_weight_mean"] == pytest.approx((4 * 2.0 + 3 * 0.5) / 7, abs=1e-6)
    assert metrics["tis_clip_frac"] == pytest.approx(4 / 7)
    loss.backward()
    assert rollout.grad is None  # the weight is a constant correction, never optimised


def _random_batch(seed: int) -> dict[str, torch.Tensor]:
    """Four sequences of different response lengths, with every optional input."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([6, 2, 5, 1])
    mask = torch.arange(6).unsqueeze(0) < lengths.unsqueeze(1)  # [4, 6]
    old = -torch.rand(4, 6, generator=gen) * 3
    return {
        "logprobs": old + 0.3 * torch.randn(4, 6, generator=gen),
        "old_logprobs": old,
        "advantages": torch.tensor([1.2, -0.7, 0.4, -1.5]),
        "loss_mask": mask,
        "ref_logprobs": old + 0.2 * torch.randn(4, 6, generator=gen),
        "rollout_logprobs": old + 0.1 * torch.randn(4, 6, generator=gen),
    }


ALL_MODES = [
    PolicyLossConfig(kl_coef=0.05, tis_cap=1.5),
    PolicyLossConfig(loss_agg="seq-mean-token-mean", kl_coef=0.05, kl_estimator="k1", tis_cap=1.5),
    PolicyLossConfig(loss_agg="seq-mean-token-sum-norm", max_response_length=8, kl_coef=0.05, tis_cap=1.5),
]


def _loss_and_grad(batch: dict[str, torch.Tensor], config: PolicyLossConfig, **kwargs: int):
    logprobs = batch["logprobs"].clone().requires_grad_(True)
    rest = {k: v for k, v in batch.items() if k != "logprobs"}
    loss, _ = policy_loss(logprobs, config=config, **rest, **kwargs)
    loss.backward()
    return loss.detach(), logprobs.grad


@pytest.mark.parametrize("config", ALL_MODES, ids=lambda c: c.loss_agg)
def test_gradient_accumulation_equals_full_batch(config: PolicyLossConfig) -> None:
    batch = _random_batch(seed=0)
    full_loss, full_grad = _loss_and_grad(batch, config)
    total_tokens = int(batch["loss_mask"].sum())  # 6 + 2 + 5 + 1 = 14
    halves = [{k: v[rows] for k, v in batch.items()} for rows in (slice(0, 2), slice(2, 4))]
    parts = [_loss_and_grad(half, config, total_tokens=total_tokens, num_sequences=4) for half in halves]
    torch.testing.assert_close(parts[0][0] + parts[1][0], full_loss)
    torch.testing.assert_close(torch.cat([parts[0][1], parts[1][1]]), full_grad)


def test_local_token_counts_would_break_accumulation() -> None:
    # The reason total_tokens exists: micro-batches of 8 and 6 tokens each dividing by
    # their own count weight a token by 1/16 or 1/12 instead of 1/14.
    batch = _random_batch(seed=0)
    config = PolicyLossConfig()
    _, full_grad = _loss_and_grad(batch, config)
    halves = [{k: v[rows] for k, v in batch.items()} for rows in (slice(0, 2), slice(2, 4))]
    local = torch.cat([_loss_and_grad(half, config)[1] for half in halves]) / 2
    assert not torch.allclose(local, full_grad)


@pytest.mark.parametrize("garbage", [1e4, -1e4, math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("config", ALL_MODES, ids=lambda c: c.loss_agg)
def test_garbage_in_masked_positions_never_leaks(config: PolicyLossConfig, garbage: float) -> None:
    batch = _random_batch(seed=1)
    clean_loss, clean_grad = _loss_and_grad(batch, config)
    unmasked = ~batch["loss_mask"]
    dirty = dict(batch)
    for key in ("logprobs", "old_logprobs", "ref_logprobs", "rollout_logprobs"):
        dirty[key] = batch[key].masked_fill(unmasked, garbage)
    loss, grad = _loss_and_grad(dirty, config)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert torch.equal(loss, clean_loss)
    assert torch.equal(grad, clean_grad)
    assert (grad[unmasked] == 0).all()


def test_metrics_are_finite_with_garbage_and_an_empty_mask() -> None:
    batch = _random_batch(seed=2)
    batch["loss_mask"] = torch.zeros(4, 6, dtype=torch.bool)
    batch["logprobs"] = torch.full((4, 6), math.nan)
    logprobs = batch.pop("logprobs").requires_grad_(True)
    loss, metrics = policy_loss(logprobs, config=ALL_MODES[0], **batch)
    loss.backward()
    assert loss.item() == 0.0 and (logprobs.grad == 0).all()
    assert all(value == 0.0 for value in metrics.values())


def test_integer_mask_is_accepted_and_fractional_rejected() -> None:
    as_int, _ = policy_loss(_logprobs(), OLD, ADVANTAGES, MASK.long())
    as_bool, _ = policy_loss(_logprobs(), OLD, ADVANTAGES, MASK)
    assert as_int.item() == as_bool.item()
    with pytest.raises(ValueError, match="only 0 and 1"):
        policy_loss(_logprobs(), OLD, ADVANTAGES, MASK.float() * 0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"config": PolicyLossConfig(kl_coef=0.1)}, "ref_logprobs is required"),
        ({"config": PolicyLossConfig(tis_cap=2.0)}, "rollout_logprobs is required"),
        ({"total_tokens": 0}, "total_tokens must be > 0"),
        ({"advantages": torch.zeros(3)}, "advantages must have shape"),
        ({"old_logprobs": torch.zeros(2, 5)}, "old_logprobs must have shape"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs: dict, message: str) -> None:
    args = {"old_logprobs": OLD, "advantages": ADVANTAGES, "loss_mask": MASK} | kwargs
    with pytest.raises(ValueError, match=message):
        policy_loss(_logprobs(), **args)


@pytest.mark.parametrize(
    "fields",
    [
        {"loss_agg": "seq-mean-token-sum-norm", "max_response_length": 0},
        {"loss_agg": "sum"},
        {"kl_estimator": "k2"},
        {"clip_eps_low": 1.0},
        {"tis_cap": 0.0},
        {"kl_coef": -0.1},
    ],
)
def test_invalid_config_is_rejected(fields: dict) -> None:
    with pytest.raises(ValueError):
        PolicyLossConfig(**fields)


def test_dr_grpo_without_its_length_constant_is_an_error_at_the_loss() -> None:
    """The trainer fills max_response_length from the rollout budget; a bare config must say so."""
    config = PolicyLossConfig(loss_agg="seq-mean-token-sum-norm")
    with pytest.raises(ValueError, match="set PolicyLossConfig.max_response_length"):
        policy_loss(_logprobs(), OLD, ADVANTAGES, MASK, config)
