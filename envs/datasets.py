"""Question-answering datasets in the formats the field ships them in, as one item type.

Envs draw questions from here, so a run can train on MuSiQue and evaluate on Bamboogle
without converting files. Recognised, row by row:

* FlashRAG JSON lines: ``{"id", "question", "golden_answers": [..], "metadata"?}``
  (NQ, TriviaQA, PopQA, Bamboogle, ... and the demo world);
* HotpotQA: a JSON list (the original release) or JSON lines of
  ``{"_id", "question", "answer", ...}``;
* MuSiQue JSON lines or parquet: ``{"id", "question", "answer", "answer_aliases"}``;
* the name ``"demo"``: the embedded demo world (split ``"train"`` or ``"test"``).

A row without a usable answer, a line that is not JSON or not UTF-8, and an id seen
twice in one file are errors naming the file and line, never skipped: a silently
shrunken dataset makes results incomparable, and they surface when the env is made,
before training starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from deepresearch.data import demo_questions_path

Source = str | Path
# What an env accepts as its questions: see :func:`resolve_questions`.
DatasetSpec = Source | Sequence[Source] | Sequence["QAItem"] | None
ROW_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class QAItem:
    """One question; ``metadata`` keeps every other field of the row (hops, context, ...)."""

    id: str
    question: str
    golden_answers: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def load_qa(
    source: Source | Sequence[Source], split: str | None = None, limit: int | None = None
) -> list[QAItem]:
    """Load questions from a file, a dataset folder, ``"demo"``, or a list of those.

    ``split`` picks the demo split (default "train") or, for a folder such as a FlashRAG
    dataset download (``nq/{train,dev,test}.jsonl``), the file ``<split>.*`` in it; a
    plain file is its own split, so ``split`` does not apply to it (callers may pass a
    default). ``limit`` keeps the first items of the concatenation.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    if not sources:
        raise ValueError("no QA source given")
    items: list[QAItem] = []
    for one in sources:
        for item in _load_one(one, split):
            if limit is not None and len(items) >= limit:
                return items
            items.append(item)
    return items


def _load_one(source: Source, split: str | None) -> Iterator[QAItem]:
    path = _resolve(source, split)
    first_seen: dict[str, str] = {}
    for where, row in _rows(path):
        try:
            item = _item(row)
        except ValueError as error:
            raise ValueError(f"{path}:{where}: {error}") from None
        if item.id in first_seen:
            raise ValueError(f"{path}:{where}: duplicate id {item.id!r} (first at {path.name}:{first_seen[item.id]})")
        first_seen[item.id] = where
        yield item
    if not first_seen:
        raise ValueError(f"{path}: contains no questions")


def _resolve(source: Source, split: str | None) -> Path:
    """The one file that ``source`` (+ ``split``) names."""
    if str(source) == "demo":
        return demo_questions_path(split or "train")
    path = Path(source)
    if path.is_dir():
        if split is None:
            raise ValueError(f"{path} is a folder: pass split= (e.g. 'train', 'dev', 'test')")
        candidates = [path / f"{split}{suffix}" for suffix in ROW_FILE_SUFFIXES]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"no {split!r} split in {path}: looked for {[c.name for c in candidates]}")
    if not path.is_file():
        raise FileNotFoundError(f"QA file not found: {path}")
    return path


def _rows(path: Path) -> Iterator[tuple[str, Any]]:
    """``(where, row)`` pairs; ``where`` is the line number, or the item/row index."""
    if path.suffix == ".parquet":
        yield from _parquet_rows(path)
        return
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip()
        handle.seek(0)
        if head.startswith(b"["):
            data = handle.read()
            try:
                rows = json.loads(utf8_text(data))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
            except NotUtf8 as error:
                raise ValueError(f"{path}:{data.count(NEWLINE, 0, error.start) + 1}: {error}") from None
            yield from ((f"item {index}", row) for index, row in enumerate(rows))
            return
        for line_number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield str(line_number), json.loads(utf8_text(raw))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{line_number}: not valid JSON ({error.msg})") from None
            except NotUtf8 as error:
                raise ValueError(f"{path}:{line_number}: {error}") from None


NEWLINE = b"\n"


class NotUtf8(ValueError):
    """Bytes that are not UTF-8 text; ``start`` is the offset of the first bad byte."""

    def __init__(self, data: bytes, error: UnicodeDecodeError) -> None:
        super().__init__(f"not UTF-8 text (byte {data[error.start : error.start + 1]!r} at offset {error.start})")
        self.start = error.start


def utf8_text(data: bytes) -> str:
    """``data`` decoded, or ``NotUtf8`` saying where the first bad byte is."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotUtf8(data, error) from None


def _parquet_rows(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise ImportError(
            f"reading {path} needs pyarrow: pip install 'deepresearch-gym[parquet]'"
        ) from None
    rows = parquet.read_table(path).to_pylist()
    yield from ((f"row {index}", row) for index, row in enumerate(rows))


def _item(row: Any) -> QAItem:
    """Normalise one row of any supported schema."""
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    if "golden_answers" in row:
        answers, used = row["golden_answers"], {"golden_answers"}
        if isinstance(answers, str):
            answers = [answers]
    elif "answer" in row:
        answers, used = [row["answer"], *(row.get("answer_aliases") or [])], {"answer", "answer_aliases"}
    else:
        raise ValueError("no answers: expected 'golden_answers' (FlashRAG) or 'answer' (HotpotQA, MuSiQue)")
    id_key = "id" if "id" in row else "_id"
    if id_key not in row:
        raise ValueError("no 'id' or '_id' field")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question {row[id_key]!r} has no question text")
    metadata = dict(row["metadata"]) if isinstance(row.get("metadata"), dict) else {}
    metadata.update((key, value) for key, value in row.items()
                    if key not in used | {id_key, "question", "metadata"})
    return QAItem(str(row[id_key]), question, _answers(answers, row[id_key]), metadata)


def _answers(raw: Any, item_id: Any) -> tuple[str, ...]:
    """Non-empty answer strings, duplicates dropped, order kept (numbers become text)."""
    if not isinstance(raw, (list, tuple)):
        raise ValueError(f"question {item_id!r}: answers must be a list, got {type(raw).__name__}")
    answers: list[str] = []
    for answer in raw:
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
            raise ValueError(f"question {item_id!r}: answer {answer!r} is not text")
        text = str(answer)
        if text.strip() and text not in answers:
            answers.append(text)
    if not answers:
        raise ValueError(f"question {item_id!r} has no answer")
    return tuple(answers)


def resolve_questions(dataset: DatasetSpec, split: str | None, limit: int | None) -> list[QAItem]:
    """An env's questions: none, ready ``QAItem`` objects, or anything :func:`load_qa` reads."""
    if dataset is None:
        return []
    if isinstance(dataset, (list, tuple)) and dataset and all(isinstance(item, QAItem) for item in dataset):
        return list(dataset[:limit] if limit else dataset)
    return load_qa(dataset, split=split, limit=limit)
