"""ReSearch's reward, rule for rule (Agent-RL/ReSearch @3b2fd14, the ``re_search`` reward
before the project became ReCall: ``src/verl/utils/reward_score/re_search.py``).

Re-implemented from the rules (see ``docs/protocols.md``), not copied. The original
decodes prompt and response together with the special tokens, cuts the response at the
assistant marker, checks the format by counting tags over the whole response (retrieved
``<result>`` text included), requires the response to end with the EOS token, reads
``\\boxed`` in the first ``<answer>`` and pays the token F1, or 0.1 when it is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepresearch.rewards.blocks import first_block
from deepresearch.rewards.metrics import GoldenAnswers, f1_score
from deepresearch.rewards.scoring import EpisodeContext, RewardResult, ScoringContext
from deepresearch.rewards.tags import ProtocolTags

CHAT_MARKER = "<|im_start|>assistant\n"
BASE_MARKER = "Assistant:"
# Paid for a well-formatted answer whose F1 is 0.
FORMAT_CREDIT = 0.1


def assistant_part(text: str) -> str | None:
    """The text between the first and the second assistant marker (to the end when there is
    one): the chat marker when the text has it anywhere, else ``Assistant:``. None when
    there is no marker at all, where the original raises IndexError."""
    marker = CHAT_MARKER if CHAT_MARKER in text else BASE_MARKER
    first = text.find(marker)
    if first == -1:
        return None
    start = first + len(marker)
    second = text.find(marker, start)
    return text[start:] if second == -1 else text[start:second]


def format_problem(text: str, tags: ProtocolTags) -> str | None:
    """Why ``text`` fails ReSearch's format check, or None. Plain case-sensitive counting
    over the whole text: tags inside retrieved results count, nesting is never checked."""
    think, think_end = f"<{tags.think}>", f"</{tags.think}>"
    answer, answer_end = f"<{tags.answer}>", f"</{tags.answer}>"
    if text.count(think) != text.count(think_end):
        return f"{think} and {think_end} counts differ"
    if text.count(think) == 0:
        return f"no {think}"
    if text.count(answer) != 1 or text.count(answer_end) != 1:
        return f"not exactly one {answer} and one {answer_end}"
    problem = _search_order_problem(text, tags)
    if problem:
        return problem
    start, end = text.find(answer), text.find(answer_end)
    if start > end:
        return f"{answer_end} before {answer}"
    content = text[start:end]
    if "\\boxed{" not in content or "}" not in content:
        return "no \\boxed{ and } in the answer"
    return None


def _search_order_problem(text: str, tags: ProtocolTags) -> str | None:
    """Each ``<search>`` must be followed by ``</search>``, then ``<result>``, then ``</result>``;
    the next ``<search>`` is looked for after that ``</result>`` (results need no search)."""
    search, search_end = f"<{tags.call}>", f"</{tags.call}>"
    result, result_end = f"<{tags.observation}>", f"</{tags.observation}>"
    position = 0
    while (start := text.find(search, position)) != -1:
        result_start = text.find(result, start)
        close = text.find(search_end, start)
        result_close = text.find(result_end, result_start) if result_start != -1 else -1
        if -1 in (result_start, close, result_close):
            return f"{search} without {search_end}, {result} and {result_end} after it"
        if not start < close < result_start < result_close:
            return f"{search}, {search_end}, {result}, {result_end} out of order"
        position = result_close
    return None


def boxed_answer(answer_part: str) -> str | None:
    """The value ReSearch reads from an answer: after the last ``\\boxed `` (with a space) up
    to the first ``$`` when that form occurs at all; else inside the last ``\\boxed{...}``,
    read to the brace that brings the count back to zero. None where the original fails
    (no ``\\boxed``, unbalanced braces, ``\\boxedx{`` or ``\\fbox{``)."""
    if "\\boxed " in answer_part:
        return answer_part.rsplit("\\boxed ", 1)[1].split("$", 1)[0]
    start = answer_part.rfind("\\boxed")
    if start == -1:
        return None  # the original would fall back to \fbox, which it then rejects
    depth = 0
    for index in range(start, len(answer_part)):
        character = answer_part[index]
        if character == "{":
            depth += 1
        elif character == "}":
            depth -= 1
            if depth == 0:
                boxed = answer_part[start : index + 1]
                return boxed[len("\\boxed{") : -1] if boxed.startswith("\\boxed{") else None
    return None


@dataclass(frozen=True)
class ResearchReward:
    """ReSearch's reward: 0 on a format error or a missing EOS, else F1 if > 0, else 0.1.

    Input that reproduces the original exactly: ``response`` is the text after the prompt
    decoded with special tokens, as ReSearch decodes it (the env's ``<result>`` blocks
    included), ending with the EOS token text (``eos_token``: ``<|im_end|>`` for the
    instruct models ReSearch trains, ``<|endoftext|>`` for base models) when the model
    stopped on it. The original scores ``prompt + response``:
    ``episode.prompt`` is that prompt; None stands for a chat prompt, which ends with
    ``<|im_start|>assistant\\n`` like ReSearch's does. ``episode.finished=True`` (the env:
    the episode ended by the policy's own turn) means the model stopped, so the EOS text
    is appended when the response does not already end with it; False or None use the
    text as it is. ``tags`` name the think, search, result and answer tags (ReSearch's are
    ``protocol.tags`` of the ``research`` protocol).

    Where the original is ill-defined: with no assistant marker in ``prompt + response``
    it raises IndexError; this returns 0 with the reason "no assistant marker".
    """

    eos_token: str = "<|im_end|>"

    def __post_init__(self) -> None:
        if not self.eos_token:
            raise ValueError("eos_token must be the EOS token's text, e.g. '<|im_end|>'")

    def decoded_text(self, response: str, episode: EpisodeContext) -> str:
        """``prompt + response (+ EOS)``: the string the original is given."""
        prompt = CHAT_MARKER if episode.prompt is None else episode.prompt
        eos = self.eos_token if episode.finished and not response.endswith(self.eos_token) else ""
        return prompt + response + eos

    def __call__(
        self, response: str, golden_answers: GoldenAnswers, tags: ProtocolTags, *, episode: EpisodeContext | None = None
    ) -> RewardResult:
        context = ScoringContext.build(response, golden_answers, tags, episode)
        reward, answer, problem = self._score(self.decoded_text(response, context.episode), context)
        return context.paper_result(reward, answer, problem)

    def _score(self, text: str, context: ScoringContext) -> tuple[float, str | None, str | None]:
        """(reward, answer, why the format failed)."""
        response = assistant_part(text)
        if response is None:
            return 0.0, None, "no assistant marker"
        problem = format_problem(response, context.tags)
        if problem:
            return 0.0, None, problem
        if not response.endswith(self.eos_token):
            return 0.0, None, f"does not end with {self.eos_token} (cut by length)"
        without_eos = response[: -len(self.eos_token)].strip()
        block = first_block(without_eos, f"<{context.tags.answer}>", f"</{context.tags.answer}>")
        answer = None if block is None else boxed_answer(block.content(without_eos))
        if answer is None:
            return 0.0, None, "no readable \\boxed value in the answer"
        f1 = f1_score(answer, context.golden_answers)
        return (f1 if f1 > 0 else FORMAT_CREDIT), answer, None
