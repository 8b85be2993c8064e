"""Choosing page passages: chunking, BM25 selection, and the optional LLM reader over HTTP."""

from __future__ import annotations

import pytest
from web_servers import MARIANA_TRENCH, MARIE_CURIE, LoopbackServer, reader_routes

from deepresearch.envs.web import LLMReader, LLMReaderConfig, ReadingConfig, RetryPolicy, select_passages, split_chunks
from deepresearch.envs.web.pages.llm_reader import LLMReaderError, parse_reply
from deepresearch.envs.web.pages.reading import GAP, bm25_scores, tokenize

PAGE = "\n\n".join(MARIE_CURIE + MARIANA_TRENCH)


def test_chunks_are_bounded_and_keep_all_words() -> None:
    long_paragraph = " ".join(f"Sentence number {i} talks about the sea." for i in range(200))
    text = f"Short intro.\n\n{long_paragraph}\n\nA closing line."
    chunks = split_chunks(text, 300)
    assert all(len(c) <= 300 for c in chunks)
    assert tokenize(" ".join(chunks)) == tokenize(text)
    unbroken = "x" * 1000
    assert [len(c) for c in split_chunks(unbroken, 300)] == [300, 300, 300, 100]


def test_small_paragraphs_are_merged() -> None:
    chunks = split_chunks("one\ntwo\nthree", 100)
    assert chunks == ["one\ntwo\nthree"]


def test_bm25_prefers_the_matching_chunk() -> None:
    docs = [tokenize(p) for p in MARIE_CURIE]
    scores = bm25_scores(tokenize("Nobel Prize in Chemistry 1911"), docs)
    assert max(range(len(docs)), key=scores.__getitem__) == 2
    assert bm25_scores(["zebra"], docs) == [0.0] * len(docs)


def test_select_passages_returns_relevant_chunks_in_page_order_within_budget() -> None:
    config = ReadingConfig(max_chunk_chars=300, char_budget=700, max_chunks=3)
    text = select_passages(PAGE, "How deep is the Challenger Deep?", "Mariana trench depth", config)
    assert "10,935 metres" in text
    assert len(text) <= 700
    assert text.index("Mariana Trench is an oceanic trench") < text.index("10,935")
    assert "Flying University" not in text


def test_select_passages_marks_gaps_and_falls_back_to_the_opening() -> None:
    config = ReadingConfig(max_chunk_chars=200, char_budget=600, max_chunks=2)
    text = select_passages(PAGE, "Who piloted the bathyscaphe Trieste?", "Curie radium polonium", config)
    assert GAP in text and "Trieste" in text and "polonium" in text
    opening = select_passages(PAGE, "zzz", None, config)
    assert opening.startswith(MARIE_CURIE[0][:50])


def test_reading_config_validation() -> None:
    with pytest.raises(ValueError, match="char_budget"):
        ReadingConfig(max_chunk_chars=500, char_budget=100)


def reader_config(server: LoopbackServer, **kwargs) -> LLMReaderConfig:
    return LLMReaderConfig(
        base_url=server.url + "/v1", model="reader-test", api_key_env=None, window_chars=400,
        retry=RetryPolicy(max_attempts=2, base_delay_s=0.01), timeout_s=(1.0, 2.0), **kwargs,
    )


def test_llm_reader_pages_until_enough() -> None:
    with LoopbackServer(reader_routes("Challenger Deep")) as server:
        notes = LLMReader(reader_config(server)).read(PAGE, "How deep is the trench?", "Mariana depth", 2000)
        calls = len(server.requests)
    assert "10,935 metres" in notes
    windows = split_chunks(PAGE, 400)
    found_at = next(i for i, w in enumerate(windows) if "Challenger Deep" in w)
    assert calls == found_at + 1  # stopped as soon as the reader said it had enough
    request = server.requests[0].json()
    assert request["model"] == "reader-test" and request["messages"][0]["role"] == "system"
    assert "How deep is the trench?" in request["messages"][1]["content"]


def test_llm_reader_respects_the_call_limit_and_fails_cleanly() -> None:
    with LoopbackServer(reader_routes("no such keyword")) as server:
        notes = LLMReader(reader_config(server, max_calls=2)).read(PAGE, "q", None, 2000)
        assert notes == "" and len(server.requests) == 2
    with LoopbackServer(reader_routes("x", fail_status=503)) as server:
        with pytest.raises(LLMReaderError, match="HTTP 503"):
            LLMReader(reader_config(server)).read(PAGE, "q", None, 2000)
        assert len(server.requests) == 2  # bounded retries


def test_parse_reply_tolerates_chatty_models() -> None:
    assert parse_reply('Sure! {"notes": "depth 10,935 m", "enough": true}') == ("depth 10,935 m", True)
    assert parse_reply("The page says 10,935 m.") == ("The page says 10,935 m.", False)
    assert parse_reply('{"notes": null, "enough": "yes"}') == ("", False)
