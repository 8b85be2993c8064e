"""Pull the answer (and the searches, and the retrieved text) out of a response: our own rules.

``response`` is only what follows the prompt, so a prompt's example ``<answer>`` can
never be counted. Text the env wrote is hidden before looking for the policy's tags,
so a retrieved page that happens to contain ``<answer>`` cannot inject an answer:
exactly the env's spans when they are given, else every closed observation block. An
observation tag that is never closed hides nothing (FlashRAG and Search-R1 read the
answer a model writes after an observation block it opened itself, or after one cut
short). The paper replicas (``deepresearch.rewards.replicas``) read differently.
"""

from __future__ import annotations

from deepresearch.rewards.blocks import Spans, blocks, closed_blocks
from deepresearch.rewards.tags import CHAT_MARKUP, ProtocolTags, parse_tool_call

_BOXED = "\\boxed{"


def _check_inputs(response: object, tags: object) -> None:
    if not isinstance(response, str):
        raise TypeError(f"response must be a string, got {type(response).__name__}")
    if not isinstance(tags, ProtocolTags):
        raise TypeError(f"pass the protocol's ProtocolTags (protocol.tags), not {type(tags).__name__} {tags!r}")


def policy_text(response: str, tags: ProtocolTags, env_spans: Spans | None = None) -> str:
    """The response with the env's text hidden, the policy's text as written.

    With ``env_spans`` each span becomes an empty observation block when it holds one
    (a result) and a newline otherwise (feedback written outside any block). Without
    them, every closed observation block is emptied (see :func:`closed_blocks`).
    """
    _check_inputs(response, tags)
    opening, closing = f"<{tags.observation}>", f"</{tags.observation}>"
    if env_spans is None:
        return _empty_blocks(response, opening, closing)
    pieces, position = [], 0
    for start, end in env_spans:
        pieces.append(response[position:start])
        pieces.append(opening + closing if response.find(opening, start, end) != -1 else "\n")
        position = end
    pieces.append(response[position:])
    return "".join(pieces)


def policy_view(response: str, tags: ProtocolTags, env_spans: Spans | None = None) -> str:
    """:func:`policy_text` with chat markup (``<|im_end|>``...) as newlines, for the format checks."""
    return CHAT_MARKUP.sub("\n", policy_text(response, tags, env_spans))


def _empty_blocks(text: str, opening: str, closing: str) -> str:
    pieces, position = [], 0
    for block in closed_blocks(text, opening, closing):
        pieces.append(text[position : block.inner_start])
        position = block.inner_end
    pieces.append(text[position:])
    return "".join(pieces)


def block_contents(text: str, tag: str) -> list[str]:
    """Contents of every ``<tag>...</tag>`` block, in order (``re.findall`` of the non-greedy pattern)."""
    return [block.content(text) for block in blocks(text, f"<{tag}>", f"</{tag}>")]


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (nested braces allowed); None if absent or unbalanced."""
    start = text.rfind(_BOXED)
    if start == -1:
        return None
    depth = 0
    for index in range(start + len(_BOXED) - 1, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start + len(_BOXED) : index]
    return None


def extract_answer(response: str, tags: ProtocolTags, *, env_spans: Spans | None = None) -> str | None:
    """The final answer, or None when there is none.

    With ``tags.boxed_answer`` (ReSearch): the content of ``\\boxed{...}`` in the last
    answer block; otherwise the last answer block's content, stripped: FlashRAG's
    ``pred`` on Search-R1 transcripts (which records a missing answer as ``""``; None
    scores 0 like that ``""`` does).
    """
    answers = block_contents(policy_text(response, tags, env_spans), tags.answer)
    if not answers:
        return None
    if tags.boxed_answer:
        return extract_boxed(answers[-1])
    return answers[-1].strip()


def count_searches(response: str, tags: ProtocolTags, *, env_spans: Spans | None = None) -> int:
    """How many non-empty searches the policy issued (calls of ``tags.search_tool`` for tool protocols)."""
    calls = block_contents(policy_view(response, tags, env_spans), tags.call)
    if not tags.uses_tools:
        return sum(1 for query in calls if query.strip())
    searches = 0
    for payload in calls:
        try:
            searches += parse_tool_call(payload, tags)[0].name == tags.search_tool
        except ValueError:
            continue
    return searches


def observation_texts(response: str, tags: ProtocolTags, *, env_spans: Spans | None = None) -> list[str]:
    """What retrieval returned: the contents of the env's observation blocks.

    With ``env_spans``, the text after the observation tag in each span that has one
    (up to its closing tag, or the span's end for a block cut short); else the contents
    of the closed observation blocks.
    """
    _check_inputs(response, tags)
    opening, closing = f"<{tags.observation}>", f"</{tags.observation}>"
    if env_spans is None:
        text = CHAT_MARKUP.sub("\n", response)
        return [block.content(text) for block in closed_blocks(text, opening, closing)]
    texts = []
    for start, end in env_spans:
        inner_start = response.find(opening, start, end)
        if inner_start == -1:
            continue
        inner_start += len(opening)
        inner_end = response.find(closing, inner_start, end)
        texts.append(response[inner_start : end if inner_end == -1 else inner_end])
    return texts
