"""Passages and corpus files in the wiki-18 convention (FlashRAG / Search-R1 / ReSearch).

A corpus line is ``{"id": str, "contents": "\\"Title\\"\\ntext"}``; ``title``/``text``
fields are accepted as well. ``contents`` is kept verbatim because renderers such as
Search-R1's split it back into title and text, and parity with their transcripts
depends on the exact string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator


@dataclass(frozen=True, slots=True)
class Document:
    """One retrieved passage; ``score`` is the retriever's similarity (higher is better)."""

    id: str
    title: str
    text: str
    contents: str
    score: float = 0.0

    @classmethod
    def from_record(cls, record: dict[str, Any], score: float = 0.0) -> "Document":
        """Build from a corpus record with ``contents`` and/or ``title``/``text``."""
        if "id" not in record:
            raise ValueError(f"corpus record has no 'id': {str(record)[:200]}")
        contents = record.get("contents")
        title = record.get("title")
        text = record.get("text")
        if contents is None:
            if title is None or text is None:
                raise ValueError(
                    f"corpus record {record['id']!r} needs 'contents' or both 'title' and 'text'"
                )
            contents = f'"{title}"\n{text}'
        elif title is None or text is None:
            title, text = split_contents(contents)
        return cls(id=str(record["id"]), title=title, text=text, contents=contents, score=score)

    def with_score(self, score: float) -> "Document":
        return replace(self, score=float(score))

    def to_record(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "text": self.text, "contents": self.contents}


def split_contents(contents: str) -> tuple[str, str]:
    """``'"Title"\\ntext'`` -> ``("Title", "text")``; a single line is all text, no title."""
    first, sep, rest = contents.partition("\n")
    if not sep:
        return "", contents
    return first.strip().strip('"'), rest


def corpus_passage(line: bytes) -> Document:
    """One corpus line as a ``Document``; a ``ValueError`` says what is wrong with it (the caller
    adds where): not UTF-8, not JSON, not a record, or a passage with no text (retrieved, it
    would show the model nothing, and take a slot of the top k)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text (byte {line[error.start : error.start + 1]!r} at offset {error.start})") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg})") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    document = Document.from_record(record)
    if not document.text.strip():
        raise ValueError(f"passage {document.id!r} has no text")
    return document


def read_corpus(path: str | Path) -> Iterator[Document]:
    """Stream documents from a JSON-lines corpus, naming the line of any bad record."""
    path = Path(path)
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield corpus_passage(line)
            except ValueError as error:
                raise ValueError(f"{path}:{line_number}: {error}") from None
