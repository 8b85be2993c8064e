"""What every reward is called with, what it sees (``ScoringContext``) and what it returns (``RewardResult``).

A reward fn is ``reward_fn(response, golden_answers, tags, *, episode=None)``:
``response`` is the text after the prompt, ``tags`` the protocol's vocabulary, and
``episode`` (optional) what the producer of the response knows beyond its text: the
prompt before it, the spans the env wrote, and whether the policy finished on its own.
Called with the first three arguments only, every preset still works: the paper
replicas then assume the paper's own prompt (see ``deepresearch.rewards.replicas``),
and our own presets hide observation blocks by their tags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from deepresearch.rewards.blocks import Spans
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
class EpisodeContext:
    """What is known about a response beyond its text; every field may be left unknown.

    ``prompt``: the text before the response (the env passes its prompt).
    ``env_spans``: ``(start, end)`` character spans of the response that the env wrote
    (observations, feedback), sorted and disjoint; our presets hide exactly these.
    ``finished``: True when the policy ended the episode itself (it answered, or its
    turn ended it), False when a budget cut it short (turns or tokens), None unknown.
    """

    prompt: str | None = None
    env_spans: Spans | None = None
    finished: bool | None = None

    def __post_init__(self) -> None:
        if self.prompt is not None and not isinstance(self.prompt, str):
            raise TypeError(f"prompt must be a string or None, got {type(self.prompt).__name__}")
        if self.finished is not None and not isinstance(self.finished, bool):
            raise TypeError(f"finished must be a bool or None, got {type(self.finished).__name__}")
        if self.env_spans is not None:
            spans = tuple((int(start), int(end)) for start, end in self.env_spans)
            previous_end = 0
            for start, end in spans:
                if not previous_end <= start <= end:
                    raise ValueError(f"env_spans must be sorted, disjoint (start, end) pairs from 0, got {self.env_spans!r}")
                previous_end = end
            object.__setattr__(self, "env_spans", spans)

    def check_fits(self, response: str) -> None:
        """The spans must lie inside ``response`` (a span past its end means they index another text)."""
        if self.env_spans and self.env_spans[-1][1] > len(response):
            raise ValueError(f"env span {self.env_spans[-1]} ends past the response ({len(response)} characters)")


NO_CONTEXT = EpisodeContext()


@dataclass(frozen=True)
class ScoringContext:
    """One response to score; the answer, the format check and the metrics are computed once, lazily."""

    response: str
    golden_answers: tuple[str, ...]
    tags: ProtocolTags
    episode: EpisodeContext = field(default=NO_CONTEXT)

    @classmethod
    def build(
        cls, response: str, golden_answers: GoldenAnswers, tags: ProtocolTags, episode: EpisodeContext | None = None
    ) -> ScoringContext:
        """Validate the inputs up front so a bad call fails here with a clear message."""
        if not isinstance(tags, ProtocolTags):
            raise TypeError(f"score with a protocol's ProtocolTags (protocol.tags), not {type(tags).__name__}")
        if not isinstance(response, str):
            raise TypeError(f"response must be a string, got {type(response).__name__}")
        episode = NO_CONTEXT if episode is None else episode
        if not isinstance(episode, EpisodeContext):
            raise TypeError(f"episode must be an EpisodeContext or None, got {type(episode).__name__}")
        episode.check_fits(response)
        return cls(response, tuple(as_gold_list(golden_answers)), tags, episode)

    @cached_property
    def answer(self) -> str | None:
        return extract_answer(self.response, self.tags, env_spans=self.episode.env_spans)

    @cached_property
    def format_check(self) -> FormatCheck:
        return check_format(self.response, self.tags, env_spans=self.episode.env_spans)

    @cached_property
    def metrics(self) -> dict[str, Any]:
        """Our answer and its FlashRAG metrics: every preset reports them, so evaluations
        compare across presets (on Search-R1 transcripts the answer is FlashRAG's ``pred``)."""
        answer, golds = self.answer, self.golden_answers
        return {"answer": answer, "em": exact_match(answer, golds), "f1": f1_score(answer, golds), "acc": substring_match(answer, golds)}

    @property
    def em(self) -> float:
        return self.metrics["em"]

    @property
    def f1(self) -> float:
        return self.metrics["f1"]

    @property
    def acc(self) -> float:
        return self.metrics["acc"]

    @cached_property
    def searches(self) -> int:
        return count_searches(self.response, self.tags, env_spans=self.episode.env_spans)

    def result(self, reward: float, **extra: Any) -> RewardResult:
        """A RewardResult carrying the standard components plus ``extra`` ones."""
        components = self.metrics | {"format_ok": self.format_check.ok, "format_reasons": list(self.format_check.reasons)}
        return RewardResult(float(reward), components | extra)

    def paper_result(self, reward: float, paper_answer: str | None, problem: str | None, **extra: Any) -> RewardResult:
        """A paper replica's result: the metrics of our answer (as every preset reports them),
        the answer the paper's rule read (``paper_answer``) and its format verdict."""
        verdict = {"format_ok": problem is None, "format_reasons": [problem] if problem else []}
        return RewardResult(float(reward), self.metrics | {"paper_answer": paper_answer} | verdict | extra)


class RewardFn(Protocol):
    """``reward_fn(response, golden_answers, tags, *, episode=None) -> RewardResult``."""

    def __call__(
        self, response: str, golden_answers: GoldenAnswers, tags: ProtocolTags, *, episode: EpisodeContext | None = None
    ) -> RewardResult: ...
