"""The JSON stored for a search, a page, a reader's notes, or a recorded failure, and reading it back.

Cache and snapshots hold the same shapes. Reading checks them again (a search
goes back through ``check_hits``), so a damaged or hand-edited row is a miss,
never a crash in formatting.
"""

from __future__ import annotations

from typing import Any

from deepresearch.envs.documents import Document
from deepresearch.envs.web.providers.results import check_hits


class BadStoredValue(ValueError):
    """A stored value does not have the shape its key promises."""


def search_value(documents: list[Document]) -> dict[str, Any]:
    return {"documents": [{"url": d.id, "title": d.title, "snippet": d.text} for d in documents]}


def search_documents(value: Any) -> list[Document]:
    if not isinstance(value, dict) or not isinstance(value.get("documents"), list):
        raise BadStoredValue("not a stored search")
    hits = value["documents"]
    try:
        checked = check_hits(hits, max(1, len(hits)), "documents")
    except ValueError:
        raise BadStoredValue("a stored search without usable hits") from None
    if checked.dropped:
        raise BadStoredValue("a stored search with unusable hits")
    return checked.documents


def page_value(text: str, redirects: list[str]) -> dict[str, Any]:
    return {"text": text, "redirects": list(redirects)}


def page_parts(value: Any) -> tuple[str, list[str]]:
    """``(text, redirects)`` of a stored page."""
    if not isinstance(value, dict) or not isinstance(value.get("text"), str):
        raise BadStoredValue("not a stored page")
    redirects = value.get("redirects")
    if not isinstance(redirects, list) or not all(isinstance(hop, str) for hop in redirects):
        raise BadStoredValue("a stored page without its redirects")
    return value["text"], redirects


def notes_value(notes: str) -> dict[str, Any]:
    return {"notes": notes}


def notes_text(value: Any) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("notes"), str):
        raise BadStoredValue("not stored reader notes")
    return value["notes"]


def failure_value(reason: str) -> dict[str, Any]:
    """What a snapshot records when the web failed, so a replay shows the model the same failure."""
    return {"failure": reason}


def recorded_failure(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("failure"), str):
        return value["failure"]
    return None
