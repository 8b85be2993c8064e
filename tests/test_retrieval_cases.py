"""Shared cases for the retrieval tests: a real wiki-18 subset with questions whose
answer passages were found by reading them, and a tiny corpus in both record formats.

The tests in this file check the cases themselves, so a wrong expectation fails here
instead of being mistaken for a retriever bug.
"""

from __future__ import annotations

import itertools
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deepresearch.envs.documents import Document, read_corpus
from deepresearch.envs.retrieval import InMemoryRetriever

SUBSET_SIZE = 400  # the first passages of wiki18_sample: ~300 articles, every case below among them

# (question, ids of passages that answer it, the answer text those passages contain)
KNOWN_ANSWERS: list[tuple[str, set[str], str]] = [
    ("When was the City Bank of New York founded?", {"0"}, "June 16, 1812"),
    ("Which spacecraft made the closest approach to Uranus in 1986?", {"3"}, "Voyager 2"),
    ("Who told the parable of the prodigal son?", {"301"}, "Jesus"),
    ("Who played young Bat Masterson in The Life and Legend of Wyatt Earp?", {"304", "305"}, "Mason Alan Dinehart"),
    ("Where is the sinoatrial node located?", {"316", "318"}, "right atrium"),
    ("What was the oldest cat ever recorded?", {"161"}, "Creme Puff"),
    ("Which president said tear down this wall in West Berlin?", {"235", "236", "237"}, "Reagan"),
    ("Which leg bone lies on the lateral side of the tibia?", {"313", "315"}, "fibula"),
]

# A tiny corpus mixing the two record formats the wiki-18 convention allows.
SMALL_RECORDS: list[dict[str, str]] = [
    {"id": "everest", "contents": '"Mount Everest"\nMount Everest is the highest mountain above sea level, in the Himalayas.'},
    {"id": "curie", "title": "Marie Curie", "text": "Marie Curie researched radioactivity and won two Nobel Prizes."},
    {"id": "danube", "title": "Danube", "text": "The Danube flows through Vienna, Budapest and Belgrade to the Black Sea."},
    {"id": "photosynthesis", "contents": '"Photosynthesis"\nGreen plants turn sunlight, water and carbon dioxide into sugar.'},
]


def wiki_subset(shared_data: Path, size: int = SUBSET_SIZE) -> list[Document]:
    return list(itertools.islice(read_corpus(shared_data / "wiki18_sample" / "passages.jsonl"), size))


def nq_questions(shared_data: Path, count: int) -> list[str]:
    with (shared_data / "qa" / "nq.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line)["question"] for line in itertools.islice(handle, count)]


def write_corpus(path: Path, records: list[dict[str, str]] = SMALL_RECORDS) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def ranked_ids(results: list[list[Document]]) -> list[list[str]]:
    return [[document.id for document in documents] for documents in results]


def assert_finds_known_answers(retriever: InMemoryRetriever, top: int) -> None:
    """Every known-answer question has one of its answer passages in the top ``top``."""
    questions = [question for question, _, _ in KNOWN_ANSWERS]
    for (question, answer_ids, _), ids in zip(KNOWN_ANSWERS, ranked_ids(retriever.search(questions, top))):
        assert answer_ids & set(ids), f"{question!r}: expected one of {answer_ids} in {ids}"


def assert_same_results(actual: list[list[Document]], expected: list[list[Document]]) -> None:
    """Same passages in the same order; scores equal up to float noise between batch shapes."""
    assert ranked_ids(actual) == ranked_ids(expected)
    for actual_row, expected_row in zip(actual, expected):
        for got, want in zip(actual_row, expected_row):
            assert abs(got.score - want.score) <= 1e-4 * max(1.0, abs(want.score))


def assert_batch_equals_one_by_one(retriever: InMemoryRetriever, queries: list[str], k: int) -> None:
    one_by_one = [retriever.search([query], k)[0] for query in queries]
    assert_same_results(retriever.search(queries, k), one_by_one)


def assert_threads_equal_sequential(retriever: InMemoryRetriever, queries: list[str], k: int, threads: int = 8) -> None:
    """``threads`` callers searching the same queries at once all get the sequential answer."""
    expected = retriever.search(queries, k)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(retriever.search, [query], k) for _ in range(threads) for query in queries]
        concurrent = [future.result()[0] for future in futures]
    for repeat in range(threads):
        assert_same_results(concurrent[repeat * len(queries) : (repeat + 1) * len(queries)], expected)


def assert_save_load_round_trip(retriever: InMemoryRetriever, directory: Path, queries: list[str], k: int) -> None:
    retriever.save(directory)
    loaded = type(retriever).load(directory)
    assert len(loaded) == len(retriever)
    assert_same_results(loaded.search(queries, k), retriever.search(queries, k))


def assert_blank_queries_and_large_k(retriever: InMemoryRetriever) -> None:
    results = retriever.search(["", "   \n\t", KNOWN_ANSWERS[0][0]], k=len(retriever) + 50)
    assert results[0] == [] and results[1] == []
    assert 0 < len(results[2]) <= len(retriever)
    scores = [document.score for document in results[2]]
    assert scores == sorted(scores, reverse=True)
    assert retriever.search([], 3) == []


def test_known_answer_passages_contain_the_answer(shared_data: Path) -> None:
    passages = {passage.id: passage for passage in wiki_subset(shared_data)}
    for question, answer_ids, answer in KNOWN_ANSWERS:
        for answer_id in answer_ids:
            assert answer.lower() in passages[answer_id].text.lower(), (question, answer_id)


def test_small_corpus_reads_both_record_formats(tmp_path: Path) -> None:
    documents = list(read_corpus(write_corpus(tmp_path / "corpus.jsonl")))
    assert [document.title for document in documents] == ["Mount Everest", "Marie Curie", "Danube", "Photosynthesis"]
    assert documents[1].contents == '"Marie Curie"\nMarie Curie researched radioactivity and won two Nobel Prizes.'
