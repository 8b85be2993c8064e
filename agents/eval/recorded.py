"""Reading recorded trajectories for replay: questions, golds and each item's response text.

Two formats: FlashRAG/Search-R1 evaluation archives (a JSON list or JSON lines of
``{"id", "question", "golden_answers", "output": {"final_response"}}``) and our own
evaluation results JSONL (``transcript`` + ``segments``: the response is everything
after the prompt span).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deepresearch.envs import QAItem


def read_recorded(path: str | Path) -> tuple[list[QAItem], dict[str, str]]:
    """``(items, responses by id)``; a row with neither format is an error naming the row."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    rows = json.loads(text) if text.lstrip().startswith("[") else [json.loads(line) for line in text.splitlines() if line.strip()]
    items, responses = [], {}
    for index, row in enumerate(rows):
        response = _response(row)
        if response is None or "question" not in row:
            raise ValueError(f"{path}: row {index} has no question and recorded response (output.final_response or transcript+segments)")
        item_id = str(row.get("id", index))
        golds = row.get("golden_answers") or []
        items.append(QAItem(id=item_id, question=str(row["question"]), golden_answers=tuple(str(g) for g in golds)))
        responses[item_id] = response
    return items, responses


def _response(row: dict[str, Any]) -> str | None:
    output = row.get("output")
    if isinstance(output, dict) and isinstance(output.get("final_response"), str):
        return output["final_response"]
    transcript, segments = row.get("transcript"), row.get("segments")
    if isinstance(transcript, str) and segments:
        prompt_end = segments[0]["end"] if segments[0]["source"] == "prompt" else 0
        return transcript[prompt_end:]
    return None
