"""Bytes of a fetched page -> its main text.

Charset comes from the HTTP header, else the page's ``<meta>``, else UTF-8;
bytes that do not decode become U+FFFD instead of an exception. Main-text
extraction uses trafilatura (drops navigation, ads, footers); when it finds
nothing (tiny or odd pages) BeautifulSoup's visible text is the fallback.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

from deepresearch.envs.web.pages.fetch import FetchedPage

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_BOILERPLATE_TAGS = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form", "svg", "template")


class ExtractionError(ValueError):
    """The page holds no readable text; the message is for the model."""


def _known_codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_body(body: bytes, header_charset: str | None) -> str:
    """Decode with the declared charset (header first, then ``<meta>``), replacing bad bytes."""
    meta = _META_CHARSET.search(body[:4096])
    charset = _known_codec(header_charset) or _known_codec(meta.group(1).decode("ascii") if meta else None)
    if charset is None:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            charset = "utf-8"
    return body.decode(charset, errors="replace")


def is_mostly_binary(text: str, limit: float = 0.1) -> bool:
    """Replacement and control characters above ``limit`` of a sample mean the bytes were not text."""
    sample = text[:20000]
    if not sample:
        return False
    bad = sum(1 for ch in sample if ch == "\ufffd" or (unicodedata.category(ch) == "Cc" and ch not in "\n\r\t\f"))
    return bad / len(sample) > limit


def _looks_like_html(text: str) -> bool:
    return bool(re.match(r"\s*(<!doctype|<html|<head|<body|<\w+[^>]*>)", text[:1024], re.IGNORECASE))


def html_to_text(html: str) -> str:
    """Main text by trafilatura, else visible text by BeautifulSoup."""
    import trafilatura

    text = trafilatura.extract(html, include_comments=False, include_tables=True, favor_recall=True)
    if text and text.strip():
        return text.strip()
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(_BOILERPLATE_TAGS):
        tag.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)


def extract_text(page: FetchedPage) -> str:
    """The readable text of a fetched page; raises ``ExtractionError`` when there is none."""
    text = decode_body(page.body, page.charset)
    if is_mostly_binary(text):
        raise ExtractionError("the page is not readable text (binary or undecodable bytes)")
    is_html = page.media_type in ("text/html", "application/xhtml+xml") or (
        not page.media_type and _looks_like_html(text)
    )
    text = html_to_text(text) if is_html else text.strip()
    if not text:
        raise ExtractionError("the page has no readable text")
    return text
