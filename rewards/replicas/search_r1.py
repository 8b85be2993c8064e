"""Search-R1's rewards, rule for rule (PeterGriffinJin/Search-R1 @a14dc3a:
``verl/utils/reward_score/qa_em.py``, the paper's EM reward, and ``qa_em_format.py``,
its structure-format variant).

Re-implemented from the rules (see ``docs/protocols.md``), not copied. Both originals
read the chat-templated prompt and the response as one string: the answer is the LAST
``<answer>`` block anywhere in it, but only when the string holds at least two, and the
prompt itself holds two (``<answer> and </answer>``, ``<answer> Beijing </answer>``), so a
response without an answer is scored as answering "Beijing". The format variant walks a
tag state machine over the text after the first ``<|im_start|>assistant`` and looks for
a gold answer in every ``<information>`` block, the prompt's included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deepresearch.rewards.blocks import blocks
from deepresearch.rewards.metrics import GoldenAnswers, exact_match, normalize_answer
from deepresearch.rewards.scoring import EpisodeContext, RewardResult, ScoringContext
from deepresearch.rewards.tags import ProtocolTags

_CHAT_START = "<|im_start|>"
_ASSISTANT = re.compile(r"<\|im_start\|>assistant\s*")


def prompt_stand_in(tags: ProtocolTags) -> str:
    """What Search-R1's own prompt holds as far as its rewards read it: one ``<information>``
    block and then two ``<answer>`` blocks, the last one "Beijing" (its example answer).
    Used when no prompt is given; equivalent to the real prompt for a question without tags."""
    information = f"<{tags.observation}> and </{tags.observation}>"
    answers = f"<{tags.answer}> and </{tags.answer}> <{tags.answer}> Beijing </{tags.answer}>"
    return f"{information} {answers}"


def decoded_text(response: str, tags: ProtocolTags, episode: EpisodeContext) -> str:
    """The string Search-R1's reward is given: the chat-templated prompt, then the response.

    A prompt without chat markup (the env's, or the text ``make_prefix`` renders) is the
    user message, and is wrapped the way Qwen's template (which Search-R1 always applied)
    wraps it; the system message it adds holds no tags, so it is left out.
    """
    prompt = prompt_stand_in(tags) if episode.prompt is None else episode.prompt
    if _CHAT_START not in prompt:
        prompt = f"{_CHAT_START}user\n{prompt}<|im_end|>\n{_CHAT_START}assistant\n"
    return prompt + response


def extract_solution(text: str, tags: ProtocolTags) -> str | None:
    """The last answer block's content, stripped; None when there are fewer than two blocks."""
    count, last = 0, None
    for last in blocks(text, f"<{tags.answer}>", f"</{tags.answer}>"):
        count += 1
    return last.content(text).strip() if count > 1 and last is not None else None


def sequence_problem(text: str, tags: ProtocolTags) -> str | None:
    """Why ``text`` fails Search-R1's ``is_valid_sequence``, or None.

    After the first assistant marker: each of think, search, information and answer
    opens as often as it closes; then, reading tags and the non-blank text between them,
    think -> (search -> information -> think)* -> answer must be followed exactly, with
    text only inside a block, and nothing but whitespace after the answer.
    """
    marker = _ASSISTANT.search(text)
    if marker is None:
        return "no <|im_start|>assistant marker"
    content = text[marker.end() :]
    names = (tags.think, tags.call, tags.observation, tags.answer)
    for name in names:
        if content.count(f"<{name}>") != content.count(f"</{name}>"):
            return f"<{name}> and </{name}> counts differ"
    roles = dict(zip(names, ("think", "search", "information", "answer")))
    tag = re.compile(r"</?(" + "|".join(map(re.escape, names)) + r")>")
    state, position = "start", 0
    for match in tag.finditer(content):
        if content[position : match.start()].strip() and not state.startswith("in_"):
            return f"text outside a block in state {state}"
        event = ("/" if match.group(0)[1] == "/" else "") + roles[match.group(1)]
        state = _TRANSITIONS.get((state, event), "")
        if not state:
            return f"unexpected {match.group(0)}"
        position = match.end()
    if content[position:].strip() and not state.startswith("in_"):
        return f"text outside a block in state {state}"
    return None if state == "end" else f"ends in state {state}"


_TRANSITIONS = {
    ("start", "think"): "in_think",
    ("information", "think"): "in_think",
    ("in_think", "/think"): "after_think",
    ("after_think", "search"): "in_search",
    ("in_search", "/search"): "after_search",
    ("after_search", "information"): "in_information",
    ("in_information", "/information"): "information",
    ("after_think", "answer"): "in_answer",
    ("in_answer", "/answer"): "end",
}


def gold_in_information(text: str, golden_answers: tuple[str, ...], tags: ProtocolTags) -> bool:
    """Some normalised gold occurs in some normalised, stripped ``<information>`` block of ``text``."""
    golds = [normalize_answer(gold) for gold in golden_answers]
    for block in blocks(text, f"<{tags.observation}>", f"</{tags.observation}>"):
        retrieved = normalize_answer(block.content(text).strip())
        if any(gold in retrieved for gold in golds):
            return True
    return False


_INPUT = """Input that reproduces the original exactly: ``response`` is the text after the
    prompt as Search-R1 decodes it (each turn decoded without special tokens, the env's
    ``<information>`` blocks and feedback included). ``episode.prompt`` is the prompt:
    either chat-templated (holding ``<|im_start|>``) or the bare user message, which is
    wrapped in Qwen's chat template as Search-R1 always did; None stands for Search-R1's
    own prompt (see ``prompt_stand_in``). ``tags`` name the think, search, information and
    answer tags (Search-R1's are ``protocol.tags`` of the ``search_r1`` protocol; a
    ``browse`` tag is plain text to these rules). Golden answers are a list."""


@dataclass(frozen=True)
class SearchR1Reward:
    __doc__ = f"""Search-R1's EM reward (``qa_em.compute_score_em``, the paper's default): 1.0 when
    the extracted answer matches a gold after SQuAD normalisation, else 0. The
    ``format_ok`` component is Search-R1's structure check, reported, never paid.

    {_INPUT}"""

    def __call__(
        self, response: str, golden_answers: GoldenAnswers, tags: ProtocolTags, *, episode: EpisodeContext | None = None
    ) -> RewardResult:
        context = ScoringContext.build(response, golden_answers, tags, episode)
        text = decoded_text(response, tags, context.episode)
        answer = extract_solution(text, tags)
        problem = sequence_problem(text, tags)  # reported only: EM does not read the format
        return context.paper_result(exact_match(answer, context.golden_answers), answer, problem)


@dataclass(frozen=True)
class SearchR1FormatReward:
    __doc__ = f"""Search-R1's structure-format reward (``qa_em_format.compute_score_em``).

    valid + correct -> 1; invalid + correct -> 1 - structure_format_score; valid + wrong
    or no answer -> structure_format_score (+ retrieval_score when a gold is in an
    ``<information>`` block); invalid + wrong -> final_format_score; invalid + no answer
    -> 0. The defaults are the published scripts' (``scripts/nq_hotpotqa/v0.3/
    train_*_format.sh``: 0.2, 0.1, 0); the sums are computed as the original does.

    {_INPUT}"""

    structure_format_score: float = 0.2
    final_format_score: float = 0.1
    retrieval_score: float = 0.0

    def __call__(
        self, response: str, golden_answers: GoldenAnswers, tags: ProtocolTags, *, episode: EpisodeContext | None = None
    ) -> RewardResult:
        if tags.uses_tools:
            raise ValueError(f"the Search-R1 format reward needs a tag protocol, not the tool-call protocol {tags.name!r}")
        context = ScoringContext.build(response, golden_answers, tags, episode)
        text = decoded_text(response, tags, context.episode)
        problem = sequence_problem(text, tags)
        retrieved = problem is None and gold_in_information(text, context.golden_answers, tags)
        answer = extract_solution(text, tags)
        reward = self._reward(answer, bool(exact_match(answer, context.golden_answers)), problem is None, retrieved)
        return context.paper_result(reward, answer, problem, structure_ok=problem is None, gold_in_retrieval=retrieved)

    def _reward(self, answer: str | None, correct: bool, valid: bool, retrieved: bool) -> float:
        partial = self.structure_format_score + self.retrieval_score if retrieved else self.structure_format_score
        if answer is None:
            return partial if valid else 0.0
        if correct:
            return 1.0 if valid else 1.0 - self.structure_format_score
        return partial if valid else self.final_format_score
