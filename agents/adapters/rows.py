"""Posing a trainer's dataset row to our envs: the reset options both adapters read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def reset_options(extra_info: dict[str, Any] | None, messages: Sequence[dict[str, Any]], ground_truth: Any, default_id: str) -> dict[str, Any]:
    """``reset(options=...)`` for one row: ``extra_info``'s ``question`` / ``golden_answers`` / ``id``
    (what our dataset converters write), else the last user message and the row's ground truth."""
    extra = extra_info or {}
    question = extra.get("question") or next(m["content"] for m in reversed(list(messages)) if m["role"] == "user")
    golds = extra.get("golden_answers") or ground_truth or []
    golds = [golds] if isinstance(golds, str) else [str(g) for g in golds]
    return {"id": str(extra.get("id", extra.get("index", default_id))), "question": str(question), "golden_answers": golds}
