"""What a search provider returned, checked before anything is cached or shown.

A provider answering ``"url": 123`` used to fail in formatting *after* the
result was cached, so the same query kept failing from the cache for a week.
Hits are checked here instead: a URL must be an http(s) URL of bounded length,
titles and snippets become bounded text, and a hit without a usable URL is
dropped. A result list that is missing, or that had hits of which none were
usable, is a failure (never cached), not "no results".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from deepresearch.envs.documents import Document

MAX_URL_CHARS = 2048
MAX_TITLE_CHARS = 300
MAX_SNIPPET_CHARS = 2000
MAX_QUERY_CHARS = 1000


class InvalidResponse(ValueError):
    """The provider answered 200 with something that is not a usable result list; the message is for the model."""


@dataclass(frozen=True)
class CheckedHits:
    documents: list[Document]
    dropped: int  # hits without a usable URL


def checked_url(value: Any) -> str | None:
    """``value`` as an http(s) URL, or ``None`` when it is not one (wrong type, scheme, length, spaces)."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if not url or len(url) > MAX_URL_CHARS or any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def checked_text(value: Any, limit: int) -> str:
    """Text fields: strings and numbers kept (whitespace collapsed, cut to ``limit``); anything else is empty."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return ""
    return " ".join(str(value).split())[:limit]


def web_document(url: str, title: str, snippet: str, rank: int) -> Document:
    """A search hit as a ``Document``: the URL is the id so the model can browse it."""
    return Document(id=url, title=title, text=snippet, contents=f'"{title}"\n{snippet}', score=-float(rank))


def check_hits(items: list[Any] | None, k: int, list_name: str) -> CheckedHits:
    """Up to ``k`` distinct, well-formed hits from the provider's result list ``items`` (``None``: it was missing)."""
    if items is None:
        raise InvalidResponse(f"returned an unexpected response (no {list_name!r} result list)")
    documents: list[Document] = []
    seen: set[str] = set()
    dropped = 0
    for item in items:
        url = checked_url(item.get("url")) if isinstance(item, dict) else None
        if url is None:
            dropped += 1
            continue
        if url in seen or len(documents) == k:
            continue
        seen.add(url)
        title = checked_text(item.get("title"), MAX_TITLE_CHARS)
        documents.append(web_document(url, title, checked_text(item.get("snippet"), MAX_SNIPPET_CHARS), len(documents)))
    if dropped and not documents:
        raise InvalidResponse(f"returned {dropped} result{'s' if dropped != 1 else ''} without a usable http(s) URL")
    return CheckedHits(documents, dropped)


def query_problem(query: str) -> str | None:
    """Why ``query`` cannot be sent to a search provider, or ``None`` when it can."""
    if len(query) > MAX_QUERY_CHARS:
        return f"the query is too long ({len(query)} characters; the limit is {MAX_QUERY_CHARS})"
    try:
        query.encode("utf-8")
    except UnicodeEncodeError:
        return "the query is not valid text (it contains an unpaired surrogate character)"
    if any(ord(ch) < 0x20 and not ch.isspace() for ch in query):
        return "the query contains control characters"
    return None
