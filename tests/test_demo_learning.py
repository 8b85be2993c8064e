"""``make train`` still learns: a reduced demo run must lift held-out reward (slow suite).

An earlier change took ``make train`` from 0.01 to 0.02 and nothing noticed; this run is the
demo's own settings with a shorter warm start, fewer GRPO steps and one evaluation at each end.
Calibrated on this machine (benchmarks/RESULTS.md, issue 21): held-out 0.04 → 0.30+ at the
full demo's size, and the reduced run below lands near that; the bounds leave room for seeds
and CPUs while failing a run that no longer learns or whose warm start stops writing the
protocol's format.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_examples import run_example

from deepresearch.agents import read_metrics

MIN_GAIN = 0.15
MIN_WARM_START_FORMAT_OK = 0.85


@pytest.mark.slow
def test_the_reduced_demo_run_lifts_held_out_reward(tmp_path: Path) -> None:
    run_example("train_grpo.py", "--sft-steps", "1500", "--steps", "15", "--eval-questions", "100",
                "--eval-every", "15", "--output-dir", str(tmp_path), timeout=2400)
    evals = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "eval/reward" in r]
    assert [r["step"] for r in evals] == [0, 15]
    before, after = evals
    assert before["eval/reward/format_ok"] >= MIN_WARM_START_FORMAT_OK, before
    assert after["eval/reward"] - before["eval/reward"] >= MIN_GAIN, (before, after)
