"""Bad data: QA files with malformed lines, missing golds, duplicate ids, non-UTF-8 bytes; corpora
with empty passages.

What a user sees: a ``ValueError`` naming the file and line (``nq.jsonl:3: duplicate id 'q1'
(first at nq.jsonl:1)``) when the env is made, so a training run fails at its start, before
any step, never mid-run and never on a silently shrunken dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.envs import load_qa, read_corpus
from deepresearch.envs.retrieval.index_builder import IndexBuildConfig, build_index

GOOD = {"id": "q1", "question": "Where was Jerved Gruvar born?", "golden_answers": ["Phokaelmath"]}


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def row(**fields) -> bytes:
    return json.dumps({**GOOD, **fields}).encode()


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([row(), b'{"id": "q2", "question": "cut off', row(id="q3")], r"qa.jsonl:2: not valid JSON"),
        ([row(), row(id="q2", golden_answers=[])], r"qa.jsonl:2: question 'q2' has no answer"),
        ([row(), json.dumps({"id": "q2", "question": "Who?"}).encode()], r"qa.jsonl:2: no answers"),
        ([row(), row(id="q2"), row()], r"qa.jsonl:3: duplicate id 'q1' \(first at qa.jsonl:1\)"),
        ([row(), row(id="q2", question="caf\N{LATIN SMALL LETTER E WITH ACUTE}?").replace(b"\\u00e9", b"\xe9")], r"qa.jsonl:2: not UTF-8 text \(byte b'\\xe9'"),
    ],
    ids=["malformed-line", "empty-golds", "missing-golds", "duplicate-id", "non-utf8"],
)
def test_a_bad_qa_row_is_an_error_naming_file_and_line(tmp_path, lines, message):
    path = write_lines(tmp_path / "qa.jsonl", lines)
    with pytest.raises(ValueError, match=message):
        load_qa(path)


def test_non_utf8_bytes_in_a_json_list_file_name_their_line(tmp_path):
    path = tmp_path / "hotpot.json"
    path.write_bytes(b'[\n {"_id": "a", "question": "Q?", "answer": "x"},\n {"_id": "b", "question": "\xff?", "answer": "y"}\n]\n')
    with pytest.raises(ValueError, match=r"hotpot.json:3: not UTF-8 text"):
        load_qa(path)


def test_the_same_id_in_two_files_is_not_a_duplicate(tmp_path):
    first, second = write_lines(tmp_path / "a.jsonl", [row()]), write_lines(tmp_path / "b.jsonl", [row(question="Other?")])
    assert [item.question for item in load_qa([first, second])] == [GOOD["question"], "Other?"]


CORPUS_GOOD = json.dumps({"id": "p1", "contents": '"Jerved Gruvar"\nJerved Gruvar was born in Phokaelmath.'}).encode()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (json.dumps({"id": "p2", "contents": ""}).encode(), r"corpus.jsonl:2: passage 'p2' has no text"),
        (json.dumps({"id": "p2", "title": "Only a title", "text": "   "}).encode(), r"corpus.jsonl:2: passage 'p2' has no text"),
        (b'{"id": "p2", "contents": "caf\xe9"}', r"corpus.jsonl:2: not UTF-8 text"),
        (b'{"id": "p2", "contents": ', r"corpus.jsonl:2: not valid JSON"),
    ],
    ids=["empty-contents", "blank-text", "non-utf8", "malformed"],
)
def test_a_bad_passage_is_an_error_naming_file_and_line_in_every_loader(tmp_path, bad, message):
    corpus = write_lines(tmp_path / "corpus.jsonl", [CORPUS_GOOD, b"", bad, CORPUS_GOOD.replace(b"p1", b"p3")])
    message = message.replace(":2:", ":3:")  # the blank line 2 is skipped, and counted
    with pytest.raises(ValueError, match=message):
        list(read_corpus(corpus))
    with pytest.raises(ValueError, match=message):  # the env over an in-memory index
        gym.make("DeepResearch-Wiki-v0", corpus=str(corpus), dataset="demo")
    with pytest.raises(ValueError, match=message):  # deepresearch index build, which reads passages by byte offset
        build_index(IndexBuildConfig(corpus=corpus, out=tmp_path / "index", kind="bm25", show_progress=False))


@pytest.mark.slow
def test_a_training_run_on_a_bad_dataset_fails_before_its_first_step(tmp_path):
    from fault_helpers import TINY_FAULT_RUN, fault_config

    from deepresearch.agents import GRPOTrainer

    dataset = write_lines(tmp_path / "train.jsonl", [row(), row(id="q2"), row()])
    config = fault_config(tmp_path / "run", env_kwargs={**TINY_FAULT_RUN["env_kwargs"], "dataset": str(dataset)})
    with pytest.raises(ValueError, match=r"train.jsonl:3: duplicate id 'q1'"):
        GRPOTrainer(config, log=lambda line: None, progress=False)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
