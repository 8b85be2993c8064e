"""Tag blocks found in one left-to-right pass, so parsing stays linear in the text's length.

``re.finditer(r"<a>(.*?)</a>", text, re.DOTALL)`` restarts its scan at every ``<a>`` that
is never closed, which is quadratic on a turn repeating ``<a>`` thousands of times (models
in early RL do that). :func:`blocks` finds exactly the same matches with ``str.find``
only; :func:`closed_blocks` pairs each closing tag with the nearest opening before it,
which is how an env-written block is told from an opening tag the policy left dangling.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

# ``(start, end)`` character spans of a text, sorted and disjoint.
Spans = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Block:
    """``text[start:end]`` is ``opening + content + closing``; the content is ``text[inner_start:inner_end]``."""

    start: int
    inner_start: int
    inner_end: int
    end: int

    def content(self, text: str) -> str:
        return text[self.inner_start : self.inner_end]


def blocks(text: str, opening: str, closing: str) -> Iterator[Block]:
    """The matches of ``re.finditer(escape(opening) + "(.*?)" + escape(closing), text, re.DOTALL)``, in order.

    Each block runs from the leftmost opening to the first closing after it; the next
    search starts after that closing. When an opening has no closing after it, no later
    opening has one either, so the scan stops there instead of retrying.
    """
    position = 0
    while (start := text.find(opening, position)) != -1:
        inner_start = start + len(opening)
        inner_end = text.find(closing, inner_start)
        if inner_end == -1:
            return
        position = inner_end + len(closing)
        yield Block(start, inner_start, inner_end, position)


def first_block(text: str, opening: str, closing: str) -> Block | None:
    """``re.search``'s match of the same pattern, or None."""
    return next(blocks(text, opening, closing), None)


def closed_blocks(text: str, opening: str, closing: str) -> Iterator[Block]:
    """Each closing tag with the nearest opening between it and the previous closing tag.

    An opening tag that is never closed (a transcript cut inside a block, or the policy
    imitating one) pairs with nothing, so it hides nothing that follows it; a closing
    tag with no opening since the previous one pairs with nothing either. Every
    character is searched once.
    """
    position = 0
    while (inner_end := text.find(closing, position)) != -1:
        start = text.rfind(opening, position, inner_end)
        position = inner_end + len(closing)
        if start != -1:
            yield Block(start, start + len(opening), inner_end, position)
