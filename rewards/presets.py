"""The reward rules of ReSearch, Search-R1 and DeepResearcher, selectable by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from deepresearch.rewards.extraction import observation_texts
from deepresearch.rewards.format_checks import check_search_r1_structure
from deepresearch.rewards.metrics import GoldenAnswers, substring_match
from deepresearch.rewards.scoring import RewardFn, RewardResult, ScoringContext
from deepresearch.rewards.tags import ProtocolTags
from deepresearch.rewards.terms import em, f1

# Partial credit ReSearch gives a well-formatted answer with F1 = 0.
RESEARCH_FORMAT_CREDIT = 0.1
# DeepResearcher's reward for a response whose format is broken.
DEEPRESEARCHER_FORMAT_PENALTY = -1.0


@dataclass(frozen=True)
class RuleReward:
    """A reward fn from one rule over the :class:`ScoringContext`."""

    rule: Callable[[ScoringContext], float]

    def __call__(self, response: str, golden_answers: GoldenAnswers, tags: ProtocolTags) -> RewardResult:
        context = ScoringContext.build(response, golden_answers, tags)
        return context.result(self.rule(context))


def _research(context: ScoringContext) -> float:
    if not context.format_check.ok:
        return 0.0
    return context.f1 if context.f1 > 0 else RESEARCH_FORMAT_CREDIT


def _deepresearcher(context: ScoringContext) -> float:
    return context.f1 if context.format_check.ok else DEEPRESEARCHER_FORMAT_PENALTY


@dataclass(frozen=True)
class SearchR1FormatReward:
    """Search-R1's optional structure-format reward (EM plus partial credit for structure).

    valid structure + correct -> 1; invalid + correct -> 1 - structure_format_score;
    valid + wrong or no answer -> structure_format_score (+ retrieval_score when some
    gold appears in an ``<information>`` block); invalid + wrong answer ->
    final_format_score; invalid + no answer -> 0. Needs a tag protocol (not tool calls).
    """

    structure_format_score: float = 0.2
    final_format_score: float = 0.1
    retrieval_score: float = 0.1

    def __call__(self, response: str, golden_answers: GoldenAnswers, tags: ProtocolTags) -> RewardResult:
        if tags.uses_tools:
            raise ValueError(f"the search_r1_format reward needs a tag protocol, not the tool-call protocol {tags.name!r}")
        context = ScoringContext.build(response, golden_answers, tags)
        structure = check_search_r1_structure(response, tags)
        observations = observation_texts(response, tags)
        retrieved = any(substring_match(text, context.golden_answers) for text in observations)
        if context.em:
            reward = 1.0 if structure.ok else 1.0 - self.structure_format_score
        elif structure.ok:
            reward = self.structure_format_score + (self.retrieval_score if retrieved else 0.0)
        else:
            reward = self.final_format_score if context.answer is not None else 0.0
        return context.result(
            reward,
            structure_ok=structure.ok,
            structure_reasons=list(structure.reasons),
            gold_in_retrieval=retrieved,
        )


REWARD_PRESETS: dict[str, RewardFn] = {
    "research": RuleReward(_research),
    "search_r1": RuleReward(em),
    "search_r1_format": SearchR1FormatReward(),
    "deepresearcher": RuleReward(_deepresearcher),
    "f1": RuleReward(f1),
    "em": RuleReward(em),
}

def get_reward_fn(preset: str) -> RewardFn:
    """The reward fn named ``preset``; a ValueError lists the known presets."""
    try:
        return REWARD_PRESETS[preset]
    except KeyError:
        known = ", ".join(REWARD_PRESETS)
        raise ValueError(f"unknown reward preset {preset!r}; known presets: {known}") from None


def compute_reward(preset: str, response: str, golden_answers: GoldenAnswers, tags: ProtocolTags) -> RewardResult:
    """Score ``response`` (text after the prompt) with the named preset and the protocol's tags."""
    return get_reward_fn(preset)(response, golden_answers, tags)
