"""What every reward sees (``ScoringContext``) and what every reward returns (``RewardResult``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from deepresearch.rewards.extraction import count_searches, extract_answer
from deepresearch.rewards.format_checks import FormatCheck, check_format
from deepresearch.rewards.metrics import GoldenAnswers, as_gold_list, exact_match, f1_score, substring_match
from deepresearch.rewards.tags import ProtocolTags


@dataclass(frozen=True)
class RewardResult:
    """The scalar reward and the components that explain it (answer, em, f1, acc, format...)."""

    reward: float
    components: dict[str, Any]


@dataclass(frozen=True)
class ScoringContext:
    """One response to score; the answer, the format check and the metrics are computed once, lazily."""

    response: str
    golden_answers: tuple[str, ...]
    tags: ProtocolTags

    @classmethod
    def build(cls, response: str, golden_answers: GoldenAnswers, tags: ProtocolTags) -> ScoringContext:
        """Validate the inputs up front so a bad call fails here with a clear message."""
        if not isinstance(tags, ProtocolTags):
            raise TypeError(f"score with a protocol's ProtocolTags (protocol.tags), not {type(tags).__name__}")
        if not isinstance(response, str):
            raise TypeError(f"response must be a string, got {type(response).__name__}")
        return cls(response, tuple(as_gold_list(golden_answers)), tags)

    @cached_property
    def answer(self) -> str | None:
        return extract_answer(self.response, self.tags)

    @cached_property
    def format_check(self) -> FormatCheck:
        return check_format(self.response, self.tags)

    @cached_property
    def em(self) -> float:
        return exact_match(self.answer, self.golden_answers)

    @cached_property
    def f1(self) -> float:
        return f1_score(self.answer, self.golden_answers)

    @cached_property
    def acc(self) -> float:
        return substring_match(self.answer, self.golden_answers)

    @cached_property
    def searches(self) -> int:
        return count_searches(self.response, self.tags)

    def result(self, reward: float, **extra: Any) -> RewardResult:
        """A RewardResult carrying the standard components plus ``extra`` ones."""
        components = {
            "answer": self.answer,
            "em": self.em,
            "f1": self.f1,
            "acc": self.acc,
            "format_ok": self.format_check.ok,
            "format_reasons": list(self.format_check.reasons),
        }
        return RewardResult(float(reward), components | extra)


# ``reward_fn(response, golden_answers, tags)``: the text after the prompt, the gold
# answers, and the protocol's vocabulary (``protocol.tags``).
RewardFn = Callable[[str, GoldenAnswers, ProtocolTags], RewardResult]
