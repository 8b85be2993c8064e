"""Whole-response format checks, for any protocol's tags.

The response is the policy's turns plus the env's observation blocks as they appear
in the transcript. The env's text is opaque (hidden first: its spans when given, else
closed observation blocks) and chat markup counts as whitespace. These are our own
rules (the ``*_strict`` presets); the papers' rules live in ``replicas``. :func:`check_format` is the rule the
``research`` / ``deepresearcher`` rewards use; :func:`check_search_r1_structure` is
the strict sequence Search-R1's optional structure-format reward uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from deepresearch.rewards.blocks import Spans
from deepresearch.rewards.extraction import extract_boxed, policy_view
from deepresearch.rewards.tags import ProtocolTags, parse_tool_call


@dataclass(frozen=True)
class FormatCheck:
    """``ok`` and, when not ok, human-readable ``reasons`` (deduplicated, in order found)."""

    ok: bool
    reasons: tuple[str, ...] = ()

    @classmethod
    def from_reasons(cls, reasons: Iterable[str]) -> FormatCheck:
        unique = tuple(dict.fromkeys(reasons))
        return cls(ok=not unique, reasons=unique)


def _tag_pattern(tags: ProtocolTags) -> re.Pattern[str]:
    return re.compile(r"<(/?)(" + "|".join(map(re.escape, tags.names)) + r")>")


class _Scanner:
    """One left-to-right pass over the policy view, collecting every rule broken."""

    def __init__(self, tags: ProtocolTags) -> None:
        self.tags = tags
        self.reasons: dict[str, None] = {}  # an ordered set: a degenerate turn breaks one rule thousands of times
        self.open_tag: str | None = None
        self.content_start = 0
        self.awaiting_observation = False
        self.answers = 0
        self.answer_end: int | None = None
        self.last_answer = ""

    def _call_unanswered(self) -> None:
        self.reasons.setdefault(f"<{self.tags.call}> not followed by a <{self.tags.observation}> block")
        self.awaiting_observation = False

    def gap(self, text: str, start: int, end: int) -> None:
        """Text between two tags (outside any block); only read while a call awaits its observation."""
        if self.awaiting_observation and text[start:end].strip():
            self._call_unanswered()

    def open(self, tag: str, position: int) -> None:
        if self.open_tag is not None:
            self.reasons.setdefault(f"<{tag}> nested inside <{self.open_tag}>")
            return
        if self.awaiting_observation and tag != self.tags.observation:
            self._call_unanswered()
        if tag == self.tags.observation and not self.awaiting_observation:
            self.reasons.setdefault(f"<{tag}> without a preceding <{self.tags.call}>")
        self.awaiting_observation = False
        self.open_tag, self.content_start = tag, position

    def close(self, tag: str, start: int, end: int, text: str) -> None:
        if self.open_tag != tag:
            where = f" while <{self.open_tag}> is open" if self.open_tag else ""
            self.reasons.setdefault(f"stray </{tag}>{where}")
            return
        self.open_tag = None
        content = text[self.content_start : start]
        if tag in self.tags.calls:
            self._check_call(tag, content)
            self.awaiting_observation = True
        elif tag == self.tags.answer:
            self.answers += 1
            self.answer_end, self.last_answer = end, content

    def _check_call(self, tag: str, content: str) -> None:
        if not content.strip():
            self.reasons.setdefault(f"empty <{tag}>")
        elif self.tags.uses_tools and tag == self.tags.call:
            try:
                parse_tool_call(content, self.tags)
            except ValueError as error:
                self.reasons.setdefault(str(error))

    def finish(self, text: str) -> Iterable[str]:
        if self.open_tag is not None:
            self.reasons.setdefault(f"unclosed <{self.open_tag}>")
        if self.awaiting_observation:
            self._call_unanswered()
        if self.answers == 0:
            self.reasons.setdefault(f"no <{self.tags.answer}>...</{self.tags.answer}> block")
            return self.reasons
        if self.answers > 1:
            self.reasons.setdefault(f"{self.answers} <{self.tags.answer}> blocks, expected exactly one")
        if text[self.answer_end :].strip():
            self.reasons.setdefault(f"content after the final </{self.tags.answer}>")
        if self.tags.boxed_answer and extract_boxed(self.last_answer) is None:
            self.reasons.setdefault("answer has no \\boxed{...} with balanced braces")
        return self.reasons


def check_format(response: str, tags: ProtocolTags, *, env_spans: Spans | None = None) -> FormatCheck:
    """Check a whole response against the rules in ``_Scanner`` for ``tags``' vocabulary."""
    text = policy_view(response, tags, env_spans)
    scanner = _Scanner(tags)
    position = 0
    for match in _tag_pattern(tags).finditer(text):
        scanner.gap(text, position, match.start())
        closing, tag = match.groups()
        if closing:
            scanner.close(tag, match.start(), match.end(), text)
        else:
            scanner.open(tag, match.end())
        position = match.end()
    scanner.gap(text, position, len(text))
    return FormatCheck.from_reasons(scanner.finish(text))


# Search-R1's strict structure: think -> (call -> observation -> think)* -> answer, over
# the roles of the protocol's tags. (state, tag event) -> next state; text is allowed
# only inside a block, whitespace anywhere.
_STRUCTURE = {
    ("start", "<think>"): "in think",
    ("in think", "</think>"): "after think",
    ("after think", "<call>"): "in call",
    ("in call", "</call>"): "after call",
    ("after call", "<observation>"): "in observation",
    ("in observation", "</observation>"): "after observation",
    ("after observation", "<think>"): "in think",
    ("after think", "<answer>"): "in answer",
    ("in answer", "</answer>"): "end",
}


def check_search_r1_structure(response: str, tags: ProtocolTags, *, env_spans: Spans | None = None) -> FormatCheck:
    """Search-R1's sequence check over the policy's text; the first violation is the reason."""
    roles = {tags.think: "think", tags.observation: "observation", tags.answer: "answer"}
    roles.update({call: "call" for call in tags.calls})
    names = {"think": tags.think, "call": tags.call, "observation": tags.observation, "answer": tags.answer}

    def label(state: str) -> str:  # the state in the protocol's own tag names
        phase, _, role = state.partition(" ")
        return f"{phase} {names[role]}" if role else phase

    text = policy_view(response, tags, env_spans)
    state, position = "start", 0
    for match in _tag_pattern(tags).finditer(text):
        if not state.startswith("in ") and text[position : match.start()].strip():
            return FormatCheck(False, (f"text outside a block at state '{label(state)}'",))
        closing, tag = match.groups()
        next_state = _STRUCTURE.get((state, f"<{closing}{roles[tag]}>"))
        if next_state is None:
            return FormatCheck(False, (f"unexpected {match.group(0)} at state '{label(state)}'",))
        state, position = next_state, match.end()
    if state == "end" and text[position:].strip():
        return FormatCheck(False, (f"text after the final </{tags.answer}>",))
    if state != "end":
        return FormatCheck(False, (f"response ends at state '{label(state)}', expected a final </{tags.answer}>",))
    return FormatCheck(True)
