"""Reward functions by name: the papers' rules (ReSearch, Search-R1, DeepResearcher), our own, and yours.

``register_reward("mine", fn)`` adds ``fn`` beside the presets; envs take ``reward="mine"``
(reloadable from a run's ``config.yaml``) or the callable itself. A reward fn is
``fn(response, golden_answers, tags, *, episode=None) -> RewardResult`` (``scoring.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from deepresearch.registry import Registry
from deepresearch.rewards.extraction import observation_texts
from deepresearch.rewards.format_checks import check_search_r1_structure
from deepresearch.rewards.metrics import GoldenAnswers, substring_match
from deepresearch.rewards.replicas import DeepResearcherReward, ResearchReward, SearchR1FormatReward, SearchR1Reward
from deepresearch.rewards.replicas.deepresearcher import FORMAT_PENALTY as DEEPRESEARCHER_FORMAT_PENALTY
from deepresearch.rewards.replicas.research import FORMAT_CREDIT as RESEARCH_FORMAT_CREDIT
from deepresearch.rewards.scoring import EpisodeContext, RewardFn, RewardResult, ScoringContext
from deepresearch.rewards.tags import ProtocolTags
from deepresearch.rewards.terms import em, f1


@dataclass(frozen=True)
class RuleReward:
    """A reward fn from one rule over the :class:`ScoringContext`."""

    rule: Callable[[ScoringContext], float]

    def __call__(
        self, response: str, golden_answers: GoldenAnswers, tags: ProtocolTags, *, episode: EpisodeContext | None = None
    ) -> RewardResult:
        context = ScoringContext.build(response, golden_answers, tags, episode)
        return context.result(self.rule(context))


def _research_strict(context: ScoringContext) -> float:
    """ReSearch's values (0 / 0.1 / F1) over our format check and answer extraction."""
    if not context.format_check.ok:
        return 0.0
    return context.f1 if context.f1 > 0 else RESEARCH_FORMAT_CREDIT


def _deepresearcher_strict(context: ScoringContext) -> float:
    """DeepResearcher's values (-1 / F1) with our format check and FlashRAG's F1."""
    return context.f1 if context.format_check.ok else DEEPRESEARCHER_FORMAT_PENALTY


@dataclass(frozen=True)
class StrictSearchR1FormatReward:
    """Our Search-R1 structure-format reward (``search_r1_format_strict``): the paper's table
    over our own reading of the response.

    valid structure + correct -> 1; invalid + correct -> 1 - structure_format_score;
    valid + wrong or no answer -> structure_format_score (+ retrieval_score when some
    gold appears in a retrieved block); invalid + wrong answer -> final_format_score;
    invalid + no answer -> 0. Unlike the paper's rule (``search_r1_format``): the env's
    text is hidden (an answer in a retrieved page counts for nothing), the prompt's
    example answers are never read, and retrieval_score defaults to 0.1. Needs a tag
    protocol (not tool calls).
    """

    structure_format_score: float = 0.2
    final_format_score: float = 0.1
    retrieval_score: float = 0.1

    def __call__(
        self, response: str, golden_answers: GoldenAnswers, tags: ProtocolTags, *, episode: EpisodeContext | None = None
    ) -> RewardResult:
        if tags.uses_tools:
            raise ValueError(f"the search_r1_format reward needs a tag protocol, not the tool-call protocol {tags.name!r}")
        context = ScoringContext.build(response, golden_answers, tags, episode)
        env_spans = context.episode.env_spans
        structure = check_search_r1_structure(response, tags, env_spans=env_spans)
        observations = observation_texts(response, tags, env_spans=env_spans)
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


REWARD_PRESETS: Registry[RewardFn] = Registry("reward", signature="fn(response, golden_answers, tags, *, episode=None) -> RewardResult")


def register_reward(name: str, fn: RewardFn | None = None, *, replace: bool = False):
    """Register ``fn`` as the reward ``name``; without ``fn``, a decorator that does."""
    return REWARD_PRESETS.register(name, fn, replace=replace)


# Paper names reproduce the paper's code on every input (``replicas``); ``*_strict`` are our
# own rules for the same protocol (env text hidden, one answer, a stricter format).
_BUILT_IN: dict[str, RewardFn] = {
    "research": ResearchReward(),
    "research_strict": RuleReward(_research_strict),
    "search_r1": SearchR1Reward(),
    "search_r1_strict": RuleReward(em),
    "search_r1_format": SearchR1FormatReward(),
    "search_r1_format_strict": StrictSearchR1FormatReward(),
    "deepresearcher": DeepResearcherReward(),
    "deepresearcher_strict": RuleReward(_deepresearcher_strict),
    "f1": RuleReward(f1),
    "em": RuleReward(em),
}
for _name, _fn in _BUILT_IN.items():
    register_reward(_name, _fn)


def get_reward_fn(reward: str | RewardFn) -> RewardFn:
    """The reward fn registered as ``reward``, or ``reward`` itself when it is callable; a ValueError lists the names."""
    if callable(reward):
        return reward
    if isinstance(reward, str) and reward in REWARD_PRESETS:
        return REWARD_PRESETS[reward]
    known = ", ".join(REWARD_PRESETS)
    raise ValueError(f"unknown reward preset {reward!r}; known presets: {known} (or register_reward one, or pass a callable)")


def compute_reward(
    preset: str | RewardFn, response: str, golden_answers: GoldenAnswers, tags: ProtocolTags, *, episode: EpisodeContext | None = None
) -> RewardResult:
    """Score ``response`` (text after the prompt) with the named (or given) reward fn and the protocol's tags."""
    return get_reward_fn(preset)(response, golden_answers, tags, episode=episode)
