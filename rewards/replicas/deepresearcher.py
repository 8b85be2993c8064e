"""DeepResearcher's reward, rule for rule (GAIR-NLP/DeepResearcher @c93be8f,
``verl/utils/reward_score/format_and_f1.py``, F1 mode as in training).

Re-implemented from the rules (see ``docs/protocols.md``), not copied. The original
lower-cases the whole response, gives -1 when the tool-call, think or answer tags are
unbalanced or there is no answer, and otherwise scores the FIRST ``<answer>`` with an
F1 over token SETS after replacing punctuation by spaces (articles kept, no yes/no rule).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from deepresearch.rewards.blocks import first_block
from deepresearch.rewards.metrics import GoldenAnswers
from deepresearch.rewards.scoring import EpisodeContext, RewardResult, ScoringContext
from deepresearch.rewards.tags import ProtocolTags

ANSWER_SEPARATOR = "<|answer_split|>"
# Paid when the tags are unbalanced or there is no answer.
FORMAT_PENALTY = -1.0
_PUNCTUATION_TO_SPACE = str.maketrans({character: " " for character in string.punctuation})
_WHITESPACE = re.compile(r"\s+")


def tags_balanced(text: str, tags: ProtocolTags) -> bool:
    """For the call, think and answer tags: as many openings as closings, and every opening
    has a closing after it (looked for from that opening; nesting is not checked)."""
    for name in (tags.call, tags.think, tags.answer):
        opening, closing = f"<{name}>".lower(), f"</{name}>".lower()
        if text.count(opening) != text.count(closing):
            return False
        position = 0
        while (start := text.find(opening, position)) != -1:
            end = text.find(closing, start)
            if end == -1:
                return False
            position = end + 1
    return True


def preprocess(text: str) -> str:
    """Every ASCII punctuation character becomes a space; whitespace runs become one space; stripped."""
    return _WHITESPACE.sub(" ", text.translate(_PUNCTUATION_TO_SPACE)).strip()


def set_f1(answer: str, golds: list[str]) -> float:
    """The best F1 over golds between the SETS of words of the preprocessed texts; golds
    or answers with no words are skipped (0.0 when nothing is left)."""
    predicted = set(answer.split())
    best = 0.0
    for gold in golds:
        gold_words = set(preprocess(gold).split())
        if not gold_words or not predicted:
            continue
        common = len(predicted & gold_words)
        precision, recall = common / len(predicted), common / len(gold_words)
        if precision + recall > 0:
            best = max(best, 2 * (precision * recall) / (precision + recall))
    return best


@dataclass(frozen=True)
class DeepResearcherReward:
    """DeepResearcher's reward: -1 on unbalanced tags or no answer, else the set F1 in [0, 1].

    Input that reproduces the original exactly: ``response`` is the text after the
    prompt, as DeepResearcher decodes it (special tokens kept: the env's tool turns and
    their chat markup included; it starts with the ``<think>`` DeepResearcher forces).
    The prompt is not read (``episode`` is ignored). Golden answers are a list (joined
    with ``<|answer_split|>`` as the original receives them) or that joined string.
    ``tags`` name the tool-call, think and answer tags (DeepResearcher's are
    ``protocol.tags`` of the ``deepresearcher`` protocol). The ``paper_answer`` component
    is the first answer's text, lower-cased, as the original compares it.
    """

    def __call__(
        self, response: str, golden_answers: GoldenAnswers, tags: ProtocolTags, *, episode: EpisodeContext | None = None
    ) -> RewardResult:
        context = ScoringContext.build(response, golden_answers, tags, episode)
        text = response.lower()
        golds = ANSWER_SEPARATOR.join(context.golden_answers).lower().split(ANSWER_SEPARATOR)
        answer, problem = None, None
        if not tags_balanced(text, tags):
            problem = "unbalanced tags"
        elif (block := first_block(text, f"<{tags.answer}>".lower(), f"</{tags.answer}>".lower())) is None:
            problem = f"no <{tags.answer}> block"
        else:
            answer = block.content(text).strip()
        reward = FORMAT_PENALTY if answer is None else set_f1(preprocess(answer), golds)
        return context.paper_result(reward, answer, problem)
