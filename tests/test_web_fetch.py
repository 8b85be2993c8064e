"""Fetching and extracting real pages from loopback servers, friendly and hostile."""

from __future__ import annotations

import time

import pytest
from web_servers import LATIN1_TEXT, MARIE_CURIE, LoopbackServer, hostile_routes, site_routes

from deepresearch.envs.web import Deadline, FetchConfig, FetchError, PageFetcher, UrlPolicy
from deepresearch.envs.web.pages.extract import ExtractionError, decode_body, extract_text
from deepresearch.envs.web.pages.fetch import parse_content_type

BOUND_S = 8.0  # generous correctness bound: every call must return, whatever the server does


@pytest.fixture(scope="module")
def server():
    with LoopbackServer({**site_routes(), **hostile_routes()}) as running:
        yield running


@pytest.fixture
def fetcher() -> PageFetcher:
    config = FetchConfig(connect_timeout_s=1.0, read_timeout_s=1.5, max_bytes=2_000_000)
    return PageFetcher(UrlPolicy(allowlist=("127.0.0.1",)), config)


def test_article_main_text_without_boilerplate(server, fetcher) -> None:
    text = extract_text(fetcher.fetch(server.url + "/wiki/Marie_Curie"))
    assert "1911 she received the Nobel Prize in Chemistry" in text
    assert "Warsaw in 1867" in text
    for boilerplate in ("cookies", "Privacy policy", "Sign in", "analytics"):
        assert boilerplate not in text


def test_plain_text_page_is_kept_verbatim(server, fetcher) -> None:
    page = fetcher.fetch(server.url + "/tides.txt")
    assert page.media_type == "text/plain"
    assert "High tide today is at 06:42" in extract_text(page)


def test_meta_charset_decodes_latin1(server, fetcher) -> None:
    page = fetcher.fetch(server.url + "/cafe")
    assert page.charset is None  # only the <meta> says iso-8859-1
    assert LATIN1_TEXT in extract_text(page)


def test_redirect_chain_is_followed(server, fetcher) -> None:
    page = fetcher.fetch(server.url + "/old/curie")
    assert page.final_url == server.url + "/wiki/Marie_Curie"
    assert MARIE_CURIE[2][:40] in extract_text(page)


@pytest.mark.parametrize(
    "path, reason",
    [
        ("/drip", "timed out"),
        ("/loop/a", "redirect loop"),
        ("/chain/0", "more than 5 redirects"),
        ("/image.png", "unsupported content type image/png"),
        ("/paper.pdf", "PDF documents are not supported"),
        ("/reset", "connection failed"),
        ("/429", "HTTP 429"),
        ("/500", "HTTP 500"),
        ("/missing", "HTTP 404"),
    ],
)
def test_hostile_pages_fail_fast_with_a_reason(server, fetcher, path: str, reason: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetcher.fetch(server.url + path, Deadline(3.0))
    assert time.monotonic() - started < BOUND_S
    assert str(caught.value) == f"could not fetch {server.url}{path}: {caught.value.reason}"
    assert reason in caught.value.reason and server.url not in caught.value.reason


def test_huge_body_is_cut_at_the_byte_cap(server, fetcher) -> None:
    page = fetcher.fetch(server.url + "/huge")
    assert page.truncated and len(page.body) == 2_000_000
    time.sleep(0.2)  # let the server notice the closed connection
    assert server._server.huge_bytes_sent < 20 * 1024 * 1024  # we stopped reading long before 50 MB
    assert "All work and no play" in extract_text(page)


def test_undecodable_bytes_are_refused_as_not_text(server, fetcher) -> None:
    with pytest.raises(ExtractionError, match="not readable text"):
        extract_text(fetcher.fetch(server.url + "/garbage"))


def test_connect_timeout_to_a_closed_port_is_quick(fetcher) -> None:
    with LoopbackServer({}) as closed:
        url = closed.url + "/"
    started = time.monotonic()
    with pytest.raises(FetchError, match="connection failed"):
        fetcher.fetch(url)
    assert time.monotonic() - started < BOUND_S


def test_content_type_and_charset_parsing() -> None:
    assert parse_content_type('text/HTML; Charset="ISO-8859-1"') == ("text/html", "iso-8859-1")
    assert parse_content_type(None) == ("", None)
    assert decode_body("naïve".encode("utf-8"), None) == "naïve"
    assert decode_body("naïve".encode("latin-1"), None) == "na\ufffdve"
    assert decode_body("naïve".encode("latin-1"), "bogus-charset-name") == "na\ufffdve"
    assert decode_body("naïve".encode("cp1252"), "windows-1252") == "naïve"
