"""Choosing what of a page the model gets to read, without an LLM call.

DeepResearcher's reading agent calls an LLM per page chunk; that is the most
expensive part of a web rollout. By default we split the page into bounded
chunks, score them with BM25 against the question and the current query, and
return the best ones in document order within a character budget.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
STOPWORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were what when where "
    "which who whom why how with did does do".split()
)
GAP = "\n...\n"


@dataclass(frozen=True)
class ReadingConfig:
    """``max_chunk_chars`` bounds one chunk; ``char_budget`` and ``max_chunks`` bound what is returned."""

    max_chunk_chars: int = 800
    char_budget: int = 3000
    max_chunks: int = 6

    def __post_init__(self) -> None:
        if self.max_chunk_chars < 50:
            raise ValueError(f"max_chunk_chars must be >= 50, got {self.max_chunk_chars}")
        if self.char_budget < self.max_chunk_chars:
            raise ValueError("char_budget must be >= max_chunk_chars")
        if self.max_chunks < 1:
            raise ValueError(f"max_chunks must be >= 1, got {self.max_chunks}")


def tokenize(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def _split_long(paragraph: str, limit: int) -> list[str]:
    """Cut an over-long paragraph at sentence ends, then at spaces, never above ``limit``."""
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(paragraph):
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            pieces.extend([current] if current else [])
            current = ""
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if current and len(current) + 1 + len(sentence) > limit:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return [p for p in pieces if p]


def split_chunks(text: str, max_chars: int) -> list[str]:
    """Paragraph-sized chunks: short paragraphs merged, long ones split, each ``<= max_chars``."""
    chunks: list[str] = []
    current = ""
    for paragraph in (p.strip() for p in re.split(r"\n\s*\n|\n", text)):
        if not paragraph:
            continue
        for piece in _split_long(paragraph, max_chars) if len(paragraph) > max_chars else [paragraph]:
            if current and len(current) + 1 + len(piece) > max_chars:
                chunks.append(current)
                current = piece
            else:
                current = f"{current}\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def bm25_scores(query_terms: list[str], documents: list[list[str]], k1: float = 1.5, b: float = 0.75) -> list[float]:
    """Okapi BM25 of each tokenised document for the query terms (small inputs, pure Python)."""
    if not documents:
        return []
    average = sum(len(d) for d in documents) / len(documents) or 1.0
    frequency = Counter(term for d in documents for term in set(d))
    n = len(documents)
    scores = []
    for document in documents:
        counts = Counter(document)
        score = 0.0
        for term in set(query_terms):
            tf = counts.get(term, 0)
            if tf:
                idf = math.log(1 + (n - frequency[term] + 0.5) / (frequency[term] + 0.5))
                score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(document) / average))
        scores.append(score)
    return scores


def select_passages(text: str, question: str, query: str | None, config: ReadingConfig) -> str:
    """The most relevant chunks in page order, joined with ``...`` where chunks were skipped."""
    chunks = split_chunks(text, config.max_chunk_chars)
    if not chunks:
        return ""
    scores = bm25_scores(tokenize(f"{question} {query or ''}"), [tokenize(c) for c in chunks])
    ranked = sorted(range(len(chunks)), key=lambda i: (-scores[i], i))
    if not any(scores):
        ranked = list(range(len(chunks)))  # nothing matches: the page's opening is the best guess
    chosen: list[int] = []
    used = 0
    for index in ranked:
        if len(chosen) == config.max_chunks:
            break
        if used + len(chunks[index]) > config.char_budget:
            continue
        chosen.append(index)
        used += len(chunks[index]) + len(GAP)
    return join_in_order(chunks, sorted(chosen))


def join_in_order(chunks: list[str], indices: list[int]) -> str:
    """Chunks at sorted ``indices``; adjacent ones joined by a newline, gaps marked with ``...``."""
    parts: list[str] = []
    for position, index in enumerate(indices):
        if position:
            parts.append("\n" if index == indices[position - 1] + 1 else GAP)
        parts.append(chunks[index])
    return "".join(parts)
