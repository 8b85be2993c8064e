"""Pull the answer (and the searches, and the retrieved text) out of a response.

``response`` is only what follows the prompt, so a prompt's example ``<answer>`` can
never be counted. Observation blocks are written by the env, so their contents are
hidden before looking for the policy's tags: a retrieved page that happens to contain
``<answer>`` cannot inject an answer.
"""

from __future__ import annotations

import re

from deepresearch.rewards.tags import CHAT_MARKUP, ProtocolTags, parse_tool_call

_BOXED = "\\boxed{"


def _block(tag: str) -> re.Pattern[str]:
    return re.compile(rf"<{tag}>(.*?)</{tag}>", re.DOTALL)


def policy_view(response: str, tags: ProtocolTags) -> str:
    """The response with chat markup as newlines and every observation block emptied.

    An observation left open (a truncated transcript) swallows the rest of the text:
    what follows it was written by the env, not the policy.
    """
    if not isinstance(response, str):
        raise TypeError(f"response must be a string, got {type(response).__name__}")
    if not isinstance(tags, ProtocolTags):
        raise TypeError(f"pass the protocol's ProtocolTags (protocol.tags), not {type(tags).__name__} {tags!r}")
    text = CHAT_MARKUP.sub("\n", response)
    opening, closing = f"<{tags.observation}>", f"</{tags.observation}>"
    text = _block(tags.observation).sub(opening + closing, text)
    unclosed = re.search(re.escape(opening) + f"(?!{re.escape(closing)})", text)
    return text if unclosed is None else text[: unclosed.end()]


def block_contents(text: str, tag: str) -> list[str]:
    """Contents of every closed ``<tag>...</tag>`` block, in order."""
    return _block(tag).findall(text)


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


def extract_answer(response: str, tags: ProtocolTags) -> str | None:
    """The final answer, or None when there is none.

    With ``tags.boxed_answer`` (ReSearch): the content of ``\\boxed{...}`` in the last
    answer block; otherwise the last answer block's content, stripped. (FlashRAG
    records a missing answer as ``""``; None scores 0 like that ``""`` does.)
    """
    answers = block_contents(policy_view(response, tags), tags.answer)
    if not answers:
        return None
    if tags.boxed_answer:
        return extract_boxed(answers[-1])
    return answers[-1].strip()


def count_searches(response: str, tags: ProtocolTags) -> int:
    """How many non-empty searches the policy issued (calls of ``tags.search_tool`` for tool protocols)."""
    calls = block_contents(policy_view(response, tags), tags.call)
    if not tags.uses_tools:
        return sum(1 for query in calls if query.strip())
    searches = 0
    for payload in calls:
        try:
            searches += parse_tool_call(payload, tags)[0].name == tags.search_tool
        except ValueError:
            continue
    return searches


def observation_texts(response: str, tags: ProtocolTags) -> list[str]:
    """Contents of the env's closed observation blocks (what retrieval returned)."""
    return block_contents(CHAT_MARKUP.sub("\n", response), tags.observation)
