"""Is checkpoint B better than A on the same questions? A paired bootstrap interval.

Two evaluations of one question set are paired: the same hard questions pull both down.
Resampling questions (not the two score lists separately) keeps that pairing, so the
interval of the mean difference is as narrow as the data allow; it is the comparison a
learning claim needs (held-out questions, the interval excluding 0).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class PairedDifference:
    """``mean(b) - mean(a)`` over ``n`` questions with its bootstrap ``confidence`` interval."""

    n: int
    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    confidence: float
    resamples: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "excludes_zero": self.excludes_zero}


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> PairedDifference:
    """Percentile bootstrap of ``mean(b - a)``, resampling question indices with replacement.

    ``a[i]`` and ``b[i]`` are the scores of the same question ``i`` (e.g. EM before and after).

    Example::

        paired_bootstrap([0, 0, 1, 0], [1, 0, 1, 1]).difference  # 0.5
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    if not a:
        raise ValueError("no questions to compare")
    if not 0 < confidence < 1 or resamples < 1:
        raise ValueError(f"need 0 < confidence < 1 and resamples >= 1, got {confidence}, {resamples}")
    differences = [float(y) - float(x) for x, y in zip(a, b)]
    n = len(differences)
    rng = random.Random(seed)
    means = sorted(sum(differences[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    low = means[min(int(tail * resamples), resamples - 1)]
    high = means[min(int((1 - tail) * resamples), resamples - 1)]
    return PairedDifference(n, sum(a) / n, sum(b) / n, sum(differences) / n, low, high, confidence, resamples)
