"""What a long run watches every step: faults it stops on, and collapse signals it warns about.

Two kinds of trouble, told apart on purpose:

* **faults that keep repeating stop the run** (the trainer raises ``TrainingHalted`` with
  ``HealthReport.halt``, which says what happened): updates skipped for a NaN/inf loss or
  gradient (``nonfinite_steps``, counted by ``grpo_update``) on ``max_nonfinite_steps``
  steps in a row, or no episode surviving its rollout (engine or env failures,
  ``rollout/dropped``) on ``max_failed_rollout_steps`` steps in a row. One such step is
  skipped and logged; the run goes on.
* **collapse signals warn** (one line when a signal turns on) and set a ``health/*`` flag
  (1.0 while on, 0.0 otherwise) in every step's metrics, where dashboards can plot them:
  the symptoms users report from collapsed GRPO runs (Search-R1 #89) — entropy falling
  towards 0, responses growing to the budget, reward stuck at 0, the KL to the reference
  jumping. The entropy and length baselines are the means over the first
  ``baseline_steps`` steps; the KL is compared with its mean over the previous
  ``baseline_steps`` steps.

Every process sees the same reduced metrics, so all of them stop at the same step.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class HealthConfig:
    # Stop after this many consecutive steps whose update was skipped for a NaN/inf loss or gradient.
    max_nonfinite_steps: int = 3
    # Stop after this many consecutive steps in which every episode was dropped (engine or env failures).
    max_failed_rollout_steps: int = 3
    # Steps whose mean entropy and response length are the baselines of the collapse signals.
    baseline_steps: int = 5
    # Entropy collapse: the token entropy falls below this fraction of its baseline.
    entropy_collapse_fraction: float = 0.1
    # Length blow-up: the mean response length exceeds this multiple of its baseline.
    length_blowup_factor: float = 3.0
    # Reward stuck: the mean reward is exactly 0 this many steps in a row.
    reward_stuck_steps: int = 10
    # KL spike: the KL to the reference exceeds this multiple of its recent mean, and this floor.
    kl_spike_factor: float = 10.0
    kl_spike_floor: float = 0.01

    def __post_init__(self) -> None:
        counts = (self.max_nonfinite_steps, self.max_failed_rollout_steps, self.baseline_steps, self.reward_stuck_steps)
        if min(counts) < 1:
            raise ValueError(f"health step counts must be >= 1, got {counts}")
        if not 0 < self.entropy_collapse_fraction < 1 or self.length_blowup_factor <= 1 or self.kl_spike_factor <= 1:
            raise ValueError("need 0 < entropy_collapse_fraction < 1, length_blowup_factor > 1 and kl_spike_factor > 1")


class TrainingHalted(RuntimeError):
    """A fault repeated past its limit; the message says which, and what to look at."""


@dataclass
class HealthReport:
    """One step's ``health/*`` flags, the lines to log, and why the run must stop (None: it goes on)."""

    flags: dict[str, float]
    lines: list[str]
    halt: str | None = None


SIGNALS = ("entropy_collapse", "length_blowup", "reward_stuck", "kl_spike")


class RunHealth:
    """Feed it each step's metrics (``check``); it returns the ``health/*`` flags and the lines to log."""

    def __init__(self, config: HealthConfig) -> None:
        self.config = config
        self._nonfinite_run = 0
        self._failed_rollout_run = 0
        self._zero_reward_run = 0
        self._baseline: dict[str, list[float]] = {"entropy": [], "episode/response_tokens": []}
        self._recent_kl: deque[float] = deque(maxlen=config.baseline_steps)
        self._on = dict.fromkeys(SIGNALS, False)

    def check(self, step: int, metrics: dict[str, Any], drop_reasons: Sequence[str] = ()) -> HealthReport:
        """The step's flags, warning lines and, when a fault repeated too often, the reason to halt."""
        report = HealthReport({}, [])
        self._faults(step, metrics, list(drop_reasons), report)
        for name, on, detail in self._signals(metrics):
            report.flags[f"health/{name}"] = float(on)
            if on and not self._on[name]:
                report.lines.append(f"warning: step {step}: {detail}")
            self._on[name] = on
        return report

    def _faults(self, step: int, metrics: dict[str, Any], drop_reasons: list[str], report: HealthReport) -> None:
        config, lines = self.config, report.lines
        skipped = float(metrics.get("nonfinite_steps", 0.0))
        self._nonfinite_run = self._nonfinite_run + 1 if skipped > 0 else 0
        if skipped > 0:
            lines.append(f"warning: step {step}: NaN/inf loss or gradient; {skipped:g} optimizer step(s) skipped, weights and optimizer state unchanged")
        if self._nonfinite_run >= config.max_nonfinite_steps:
            report.halt = (
                f"the loss or gradient was NaN/inf on {self._nonfinite_run} steps in a row (up to step {step}); "
                "no update was applied on them. Lower the learning rate, check the rewards and the rollout logprobs, "
                "and resume from the last checkpoint"
            )
        dropped = float(metrics.get("rollout/dropped", 0.0))
        if dropped > 0:
            lines.append(f"warning: step {step}: {dropped:g} episode(s) dropped ({summarise(drop_reasons)})")
        failed = dropped > 0 and float(metrics.get("episodes", 0.0)) == 0
        self._failed_rollout_run = self._failed_rollout_run + 1 if failed else 0
        if self._failed_rollout_run >= config.max_failed_rollout_steps:
            report.halt = (
                f"every episode was dropped on {self._failed_rollout_run} steps in a row (up to step {step}): "
                f"{summarise(drop_reasons)}. Check the rollout engine and the retriever or web backend, then resume"
            )

    def _signals(self, metrics: dict[str, Any]) -> list[tuple[str, bool, str]]:
        config, found = self.config, []
        entropy = self._against_baseline("entropy", metrics)
        if entropy is not None:
            value, baseline = entropy
            found.append((
                "entropy_collapse", baseline is not None and value < config.entropy_collapse_fraction * baseline,
                f"entropy collapse: token entropy {value:.4f}, below {config.entropy_collapse_fraction:g} x its baseline {baseline or 0:.4f}",
            ))
        length = self._against_baseline("episode/response_tokens", metrics)
        if length is not None:
            value, baseline = length
            found.append((
                "length_blowup", baseline is not None and value > config.length_blowup_factor * baseline,
                f"response length blow-up: {value:.1f} tokens, above {config.length_blowup_factor:g} x its baseline {baseline or 0:.1f}",
            ))
        if "reward/mean" in metrics:
            self._zero_reward_run = self._zero_reward_run + 1 if float(metrics["reward/mean"]) == 0 else 0
            found.append((
                "reward_stuck", self._zero_reward_run >= config.reward_stuck_steps,
                f"reward stuck at 0 for {self._zero_reward_run} steps: no group has a learning signal",
            ))
        if "kl_ref" in metrics:
            kl = float(metrics["kl_ref"])
            recent = sum(self._recent_kl) / len(self._recent_kl) if self._recent_kl else None
            spike = recent is not None and kl > config.kl_spike_floor and kl > config.kl_spike_factor * recent
            found.append(("kl_spike", spike, f"KL spike: KL to the reference {kl:.4f}, above {config.kl_spike_factor:g} x its recent mean {recent or 0:.4f}"))
            self._recent_kl.append(kl)
        return found

    def _against_baseline(self, name: str, metrics: dict[str, Any]) -> tuple[float, float | None] | None:
        """``(value, baseline)``, the baseline None while its steps are collected; None without the metric."""
        if name not in metrics:
            return None
        value, seen = float(metrics[name]), self._baseline[name]
        if len(seen) < self.config.baseline_steps:
            seen.append(value)
            return value, None
        return value, sum(seen) / len(seen)


def summarise(reasons: list[str], most: int = 3) -> str:
    """The commonest drop reasons with their counts: ``"6x engine request failed (...); 2x ..."``."""
    if not reasons:
        return "reasons on other processes"
    return "; ".join(f"{count}x {reason}" for reason, count in Counter(reasons).most_common(most))
