"""Small reward terms and a weighted sum of them (a verifiers-style rubric).

Each term maps one :class:`ScoringContext` to a float, so the answer, the format check
and the metrics are computed once however many terms read them::

    from deepresearch.rewards.terms import WeightedReward, f1, format_error, searched

    reward_fn = WeightedReward([("f1", f1, 1.0), ("searched", searched, 0.1), ("format", format_error, -1.0)])
    result = reward_fn("<think>x</think><answer>Paris</answer>", ["Paris"], protocol.tags)
    result.reward                    # 1.0: f1 1, no search, format ok
    result.components["term/f1"]     # 1.0 (each term's value is reported under its name)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from deepresearch.rewards.metrics import GoldenAnswers
from deepresearch.rewards.scoring import EpisodeContext, RewardResult, ScoringContext
from deepresearch.rewards.tags import ProtocolTags

Term = Callable[[ScoringContext], float]


def f1(context: ScoringContext) -> float:
    return context.f1


def em(context: ScoringContext) -> float:
    return context.em


def acc(context: ScoringContext) -> float:
    return context.acc


def format_ok(context: ScoringContext) -> float:
    return float(context.format_check.ok)


def format_error(context: ScoringContext) -> float:
    """1 when the format check fails: give it a negative weight for a penalty."""
    return float(not context.format_check.ok)


def answered(context: ScoringContext) -> float:
    return float(context.answer is not None)


def searched(context: ScoringContext) -> float:
    """1 when the policy issued at least one search."""
    return float(context.searches > 0)


@dataclass(frozen=True)
class WeightedReward:
    """``reward = sum(weight * term(context))`` over named ``(name, term, weight)`` terms.

    Each term's value lands in ``components["term/<name>"]``. Names are given, not read
    off the function (two lambdas, or a ``functools.partial``, have no telling name), and
    two terms with one name would overwrite each other's value: that is a ValueError.
    """

    terms: tuple[tuple[str, Term, float], ...]

    def __init__(self, terms: Sequence[tuple[str, Term, float]]) -> None:
        if not terms:
            raise ValueError("WeightedReward needs at least one (name, term, weight) triple")
        for entry in terms:
            if len(entry) != 3 or not isinstance(entry[0], str) or not entry[0] or not callable(entry[1]):
                raise ValueError(f"a term is (name, callable, weight), got {entry!r}")
        names = [name for name, _, _ in terms]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"WeightedReward terms need distinct names; repeated: {repeated}")
        object.__setattr__(self, "terms", tuple((name, term, float(weight)) for name, term, weight in terms))

    def __call__(
        self, response: str, golden_answers: GoldenAnswers, tags: ProtocolTags, *, episode: EpisodeContext | None = None
    ) -> RewardResult:
        context = ScoringContext.build(response, golden_answers, tags, episode)
        values = {name: term(context) for name, term, _ in self.terms}
        reward = sum(weight * values[name] for name, _, weight in self.terms)
        return context.result(reward, **{f"term/{name}": value for name, value in values.items()})
