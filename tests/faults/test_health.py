"""NaN/inf losses and gradients, and the collapse signals a long run watches.

What a user sees: a step whose loss or gradient is NaN/inf is skipped (``nonfinite_steps``
1, ``optimizer_steps`` 0, weights and optimizer state untouched) with a warning line, and
the run goes on; one that keeps producing them stops with ``TrainingHalted`` after
``health.max_nonfinite_steps`` steps. Entropy collapse, response-length blow-up, reward stuck
at 0 and KL spikes each log one warning line when they start and set a ``health/*`` flag
in every step's metrics while they last.
"""

from __future__ import annotations

import copy

import pytest
import torch
from agents_helpers import HalfRightEngine
from fault_helpers import at_steps, demo_golds, fault_config, run_bounded, step_records

from deepresearch.agents import GRPOTrainer, TrainingHalted
from deepresearch.agents.train.health import HealthConfig, RunHealth

# ---------------------------------------------------------------- NaN/inf in a real run


def poisoned_trainer(tmp_path, actions, lines):
    """The tiny run with an engine that gives mixed rewards (a real gradient), and a switch that
    makes the policy's logits NaN in the update's forward passes (not in rollouts)."""
    trainer = GRPOTrainer(fault_config(tmp_path), log=at_steps(actions, lines), progress=False)
    trainer.engine = HalfRightEngine(trainer.model, trainer.tokenizer, demo_golds(), trainer.envs[0].unwrapped.protocol)
    switch = {"on": False}

    def poison(module, inputs, output):
        return output * float("nan") if switch["on"] and torch.is_grad_enabled() else None

    trainer.model.get_output_embeddings().register_forward_hook(poison)
    return trainer, switch


def snapshot(trainer):
    """Weights, optimizer state (Adam's moments, the learning rate) and the LR schedule's position."""
    params = [p.detach().clone() for p in trainer.model.parameters()]
    return params, copy.deepcopy(trainer.optimizer.state_dict()), trainer.scheduler.last_epoch


def same_state(a, b) -> bool:
    (params_a, optim_a, schedule_a), (params_b, optim_b, schedule_b) = a, b
    same_params = all(torch.equal(x, y) for x, y in zip(params_a, params_b))
    moments_a, moments_b = optim_a["state"], optim_b["state"]
    same_moments = moments_a.keys() == moments_b.keys() and all(
        torch.equal(torch.as_tensor(moments_a[k][name]), torch.as_tensor(moments_b[k][name])) for k in moments_a for name in moments_a[k]
    )
    same_lr = [group["lr"] for group in optim_a["param_groups"]] == [group["lr"] for group in optim_b["param_groups"]]
    return same_params and same_moments and same_lr and schedule_a == schedule_b


@pytest.mark.slow
def test_a_nan_step_is_skipped_with_weights_and_optimizer_state_untouched(tmp_path):
    lines: list[str] = []
    seen: dict = {}

    def before_step_2() -> None:
        seen["after_1"] = snapshot(trainer)
        switch["on"] = True

    def after_step_2() -> None:
        seen["after_2"] = snapshot(trainer)
        switch["on"] = False

    trainer, switch = poisoned_trainer(tmp_path, {1: before_step_2, 2: after_step_2}, lines)
    run_bounded(trainer)
    records = step_records(tmp_path)
    assert [records[s]["nonfinite_steps"] for s in (1, 2, 3)] == [0, 1, 0]
    assert [records[s]["optimizer_steps"] for s in (1, 2, 3)] == [1, 0, 1]
    assert same_state(seen["after_1"], seen["after_2"])  # the NaN never reached the weights, Adam's moments or the LR schedule
    assert not same_state(seen["after_2"], snapshot(trainer))  # and step 3 trained as usual
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert "warning: step 2: NaN/inf loss or gradient; 1 optimizer step(s) skipped, weights and optimizer state unchanged" in lines
    assert {"health/entropy_collapse", "health/length_blowup", "health/reward_stuck"} <= set(records[3])


@pytest.mark.slow
def test_a_run_that_keeps_producing_nan_stops_with_a_clear_error(tmp_path):
    trainer, switch = poisoned_trainer(tmp_path, {}, [])
    switch["on"] = True
    before = snapshot(trainer)
    with pytest.raises(TrainingHalted, match=r"the loss or gradient was NaN/inf on 2 steps in a row \(up to step 2\); no update was applied"):
        run_bounded(trainer)
    assert same_state(before, snapshot(trainer))
    assert [record["nonfinite_steps"] for record in step_records(tmp_path).values()] == [1, 1]


# ------------------------------------------------------------- signals on scripted metrics

CONFIG = HealthConfig(baseline_steps=3, reward_stuck_steps=3, max_nonfinite_steps=2, max_failed_rollout_steps=2)
HEALTHY = {"entropy": 2.0, "episode/response_tokens": 40.0, "reward/mean": 0.3, "kl_ref": 0.004, "episodes": 8, "rollout/dropped": 0}


def run_health(steps: list[dict], config: HealthConfig = CONFIG) -> list:
    health = RunHealth(config)
    return [health.check(number, {**HEALTHY, **changes}) for number, changes in enumerate(steps, start=1)]


def test_a_healthy_run_raises_no_flag_and_no_warning():
    reports = run_health([{"reward/mean": 0.3 + 0.01 * i, "entropy": 2.0 - 0.05 * i} for i in range(12)])
    assert all(value == 0.0 for report in reports for value in report.flags.values())
    assert not any(report.lines or report.halt for report in reports)
    assert set(reports[-1].flags) == {"health/entropy_collapse", "health/length_blowup", "health/reward_stuck", "health/kl_spike"}


@pytest.mark.parametrize(
    ("signal", "bad", "warning"),
    [
        ("entropy_collapse", {"entropy": 0.1}, "warning: step 4: entropy collapse: token entropy 0.1000, below 0.1 x its baseline 2.0000"),
        ("length_blowup", {"episode/response_tokens": 130.0}, "warning: step 4: response length blow-up: 130.0 tokens, above 3 x its baseline 40.0"),
        ("kl_spike", {"kl_ref": 0.2}, "warning: step 4: KL spike: KL to the reference 0.2000, above 10 x its recent mean 0.0040"),
    ],
)
def test_a_collapse_signal_warns_once_flags_while_it_lasts_and_clears(signal, bad, warning):
    reports = run_health([{}, {}, {}, bad, bad, {}])
    flags = [report.flags[f"health/{signal}"] for report in reports]
    assert flags == [0, 0, 0, 1, 1 if signal != "kl_spike" else 0, 0]  # a KL that stays high is the new normal
    assert [report.lines for report in reports] == [[], [], [], [warning], [], []]


def test_a_kl_near_zero_moving_within_noise_is_no_spike():
    reports = run_health([{"kl_ref": 1e-5}, {"kl_ref": 1e-5}, {"kl_ref": 1e-5}, {"kl_ref": 5e-3}])
    assert reports[-1].flags["health/kl_spike"] == 0 and not reports[-1].lines


def test_reward_stuck_at_zero_is_flagged_after_k_steps_and_reset_by_a_reward():
    reports = run_health([{"reward/mean": 0.0}] * 3 + [{"reward/mean": 0.5}, {"reward/mean": 0.0}])
    assert [report.flags["health/reward_stuck"] for report in reports] == [0, 0, 1, 0, 0]
    assert reports[2].lines == ["warning: step 3: reward stuck at 0 for 3 steps: no group has a learning signal"]


def test_nonfinite_steps_halt_only_when_consecutive():
    reports = run_health([{"nonfinite_steps": 1}, {}, {"nonfinite_steps": 1}, {"nonfinite_steps": 1}])
    assert [report.halt is not None for report in reports] == [False, False, False, True]
    assert "NaN/inf on 2 steps in a row (up to step 4)" in reports[-1].halt


def test_steps_whose_episodes_were_all_dropped_halt_with_the_reasons():
    health = RunHealth(CONFIG)
    failed = {**HEALTHY, "episodes": 0, "rollout/dropped": 8}
    first = health.check(1, failed, ["engine request failed (no answer after 600 s)"] * 8)
    second = health.check(2, failed, ["engine request failed (no answer after 600 s)"] * 6 + ["env reset raised OSError: x"] * 2)
    assert first.halt is None and first.lines == ["warning: step 1: 8 episode(s) dropped (8x engine request failed (no answer after 600 s))"]
    assert second.halt.startswith(
        "every episode was dropped on 2 steps in a row (up to step 2): 6x engine request failed (no answer after 600 s); 2x env reset raised OSError: x"
    )
    partly = RunHealth(CONFIG)
    assert all(partly.check(s, {**HEALTHY, "episodes": 1, "rollout/dropped": 7}).halt is None for s in range(1, 5))
