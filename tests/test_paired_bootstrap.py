"""The paired bootstrap behind every learning claim in benchmarks/RESULTS.md."""

from __future__ import annotations

import math

import pytest

from deepresearch.agents.eval.paired import paired_bootstrap


def test_identical_and_uniformly_better_scores_give_degenerate_intervals():
    same = paired_bootstrap([0, 1, 1, 0], [0, 1, 1, 0], resamples=500)
    assert (same.difference, same.low, same.high, same.excludes_zero) == (0.0, 0.0, 0.0, False)
    better = paired_bootstrap([0.0] * 50, [1.0] * 50, resamples=500)
    assert (better.difference, better.low, better.high, better.excludes_zero) == (1.0, 1.0, 1.0, True)


def test_the_interval_matches_the_normal_approximation_of_a_paired_mean():
    # 300 questions: 60 gained, 20 lost, the rest unchanged -> mean difference 40/300.
    a = [0] * 60 + [1] * 20 + [1] * 100 + [0] * 120
    b = [1] * 60 + [0] * 20 + [1] * 100 + [0] * 120
    result = paired_bootstrap(a, b, resamples=4000, seed=1)
    differences = [y - x for x, y in zip(a, b)]
    mean = sum(differences) / len(differences)
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (len(differences) - 1))
    half_width = 1.96 * sd / math.sqrt(len(differences))
    assert result.difference == pytest.approx(40 / 300)
    assert result.low == pytest.approx(mean - half_width, abs=0.012) and result.high == pytest.approx(mean + half_width, abs=0.012)
    assert result.excludes_zero and result.to_dict()["n"] == 300
    # Unpaired, the same means would not be significant at this size: pairing is what narrows it.
    assert result.high - result.low < 2 * 1.96 * math.sqrt(2 * 0.5 * 0.5 / 300)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap([1, 0], [1])
    with pytest.raises(ValueError, match="no questions"):
        paired_bootstrap([], [])
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap([1], [0], confidence=1.5)
