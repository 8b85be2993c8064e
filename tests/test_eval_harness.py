"""The evaluation harness on real data: FlashRAG parity by replay, resume, tables, dataset names, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.agents.eval.harness import (
    TextPolicyRunner,
    load_dataset,
    markdown_table,
    resolve_dataset,
    run_evaluation,
    summarize,
    write_table,
)
from deepresearch.agents.eval.recorded import read_recorded
from deepresearch.agents.eval.text_policies import ReplayPolicy
from deepresearch.agents.jsonl import read_jsonl
from deepresearch.cli import main as cli_main
from deepresearch.envs import get_protocol


@pytest.fixture(scope="module")
def archive_path(shared_data: Path) -> Path:
    return shared_data / "searchr1_trajectories" / "nq_base_archive_v1.json"


@pytest.fixture(scope="module")
def corpus(shared_data: Path) -> Path:
    return shared_data / "wiki18_sample" / "passages.jsonl"


@pytest.fixture(scope="module")
def recorded(archive_path: Path):
    return read_recorded(archive_path)


def replay_runner(corpus: Path, responses: dict[str, str], workers: int = 1) -> TextPolicyRunner:
    def make_env():
        return gym.make("DeepResearch-Wiki-v0", corpus=str(corpus), protocol="search_r1", max_turns=32)

    return TextPolicyRunner(make_env, ReplayPolicy(responses, get_protocol("search_r1")), workers)


def recorded_averages(archive_path: Path) -> dict[str, float]:
    text = archive_path.with_name("nq_base_archive_v1.metric_score.txt").read_text()
    return {name.strip(): float(value) for name, value in (line.split(":") for line in text.splitlines() if line.strip())}


def test_replaying_search_r1_trajectories_reproduces_flashrag_averages(tmp_path, archive_path, corpus, recorded):
    items, responses = recorded
    assert len(items) == 1000
    summary = run_evaluation([("nq", items)], replay_runner(corpus, responses, workers=2), tmp_path / "results.jsonl", progress=False)
    expected = recorded_averages(archive_path)
    assert summary["nq"]["n"] == 1000
    for metric in ("em", "acc", "f1"):
        assert summary["nq"][metric] == pytest.approx(expected[metric], abs=1e-9), metric
    # Item by item too: the replayed prediction is the one FlashRAG recorded.
    archive = {row["id"]: row["output"] for row in json.loads(archive_path.read_text())}
    for record in read_jsonl(tmp_path / "results.jsonl"):
        output = archive[record["id"]]
        for metric in ("em", "acc", "f1"):
            assert record["metrics"][metric] == pytest.approx(output["metric_score"][metric], abs=1e-9), record["id"]
        assert record["prediction"] == (output["pred"] or None), record["id"]
        env_texts = [record["transcript"][s["start"] : s["end"]] for s in record["segments"] if s["source"] == "env"]
        assert sum("<information>" in text for text in env_texts) == record["searches"]  # one result per replayed search


def test_replaying_a_truncated_trajectory_records_no_answer(tmp_path, corpus, recorded):
    items, responses = recorded
    unanswered = [item for item in items if "</answer>" not in responses[item.id]]
    assert unanswered
    run_evaluation([("nq", unanswered)], replay_runner(corpus, responses), tmp_path / "r.jsonl", progress=False)
    assert [r["prediction"] for r in read_jsonl(tmp_path / "r.jsonl")] == [None] * len(unanswered)


def test_resume_skips_finished_items_and_survives_a_torn_last_line(tmp_path, corpus, recorded):
    items, responses = recorded
    items = items[:12]
    results = tmp_path / "results.jsonl"
    runner = replay_runner(corpus, responses)
    played: list[str] = []

    def counting(name, chunk):
        played.extend(item.id for item in chunk)
        return runner(name, chunk)

    run_evaluation([("nq", items[:5])], counting, results, chunk_size=2, progress=False)
    with results.open("a", encoding="utf-8") as handle:
        handle.write('{"dataset": "nq", "id": "half a rec')  # the process died mid-write
    summary = run_evaluation([("nq", items)], counting, results, chunk_size=4, progress=False)
    assert played == [item.id for item in items]  # each item played exactly once
    records = read_jsonl(results)
    assert [r["id"] for r in records] == [item.id for item in items]
    assert summary["nq"]["n"] == 12
    assert results.read_text().endswith("\n")


def test_table_is_recomputed_from_the_file(tmp_path):
    def record(dataset, em, judge=None, status=None):
        metrics = {"em": em, "f1": em, "acc": em}
        if judge is not None:
            metrics["judge"] = judge
        return {"dataset": dataset, "id": f"{dataset}{em}{status}", "metrics": metrics, "judge_status": status, "searches": 2, "turns": 3}

    rows = [record("nq", 1.0, 1.0, "ok"), record("nq", 0.0, None, "unparseable"), record("hotpotqa", 0.5)]
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = summarize(read_jsonl(results))
    assert summary["nq"]["judge"] == 1.0 and summary["nq"]["judge_failed"] == 1
    assert "judge" not in summary["hotpotqa"]
    table = write_table(results).read_text()
    assert table == markdown_table(summary)
    assert "| nq | 0.500 | 0.500 | 0.500 | 1.000 | 1 | 2.00 | 3.00 | 2 |" in table
    assert "| hotpotqa | 0.500 | 0.500 | 0.500 | - | - | 2.00 | 3.00 | 1 |" in table


def test_standard_dataset_names_resolve_under_a_data_dir(shared_data):
    qa = shared_data / "qa"
    assert resolve_dataset("nq", qa) == ("nq", qa / "nq.jsonl")
    assert resolve_dataset("hotpotqa", qa) == ("hotpotqa", qa / "hotpotqa_distractor_dev_head.jsonl")
    name, items = load_dataset("bamboogle", qa, limit=3)
    assert name == "bamboogle" and len(items) == 3 and items[0].golden_answers
    with pytest.raises(FileNotFoundError, match="musique.*standard names"):
        resolve_dataset("musique", qa)


def test_a_name_finds_the_folder_data_download_writes(tmp_path, shared_data):
    folder = tmp_path / "2wikimultihopqa"  # FlashRAG's name for 2wiki, as `data/download.py qa 2wiki` saves it
    folder.mkdir()
    (folder / "dev.jsonl").write_text((shared_data / "qa" / "bamboogle.jsonl").read_text().splitlines()[0] + "\n")
    assert resolve_dataset("2wiki", tmp_path, "dev") == ("2wiki", folder)
    assert load_dataset("2wiki", tmp_path, "dev")[1][0].golden_answers
    with pytest.raises(FileNotFoundError):
        resolve_dataset("2wiki", tmp_path, "test")  # the folder holds no test split


def test_a_failing_policy_is_recorded_on_the_item_not_raised(tmp_path, corpus, recorded):
    items, responses = recorded
    runner = replay_runner(corpus, {})  # no recorded responses: every act() raises KeyError
    summary = run_evaluation([("nq", items[:2])], runner, tmp_path / "r.jsonl", progress=False)
    records = read_jsonl(tmp_path / "r.jsonl")
    assert summary["nq"]["em"] == 0.0
    assert all(r["finish_reason"] == "error" and "KeyError" in r["error"] for r in records)


def test_cli_eval_replays_and_resumes(tmp_path, archive_path, corpus, capsys):
    argv = ["eval", "--replay", str(archive_path), "--protocol", "search_r1", "--corpus", str(corpus),
            "--max-turns", "32", "--limit", "20", "--out", str(tmp_path), "--quiet"]
    assert cli_main(argv) == 0
    first = capsys.readouterr().out
    assert "| nq_base_archive_v1 |" in first and (tmp_path / "results.md").is_file()
    # Item by item, the CLI scores what FlashRAG recorded, and its table is their mean.
    archive = {row["id"]: row["output"] for row in json.loads(archive_path.read_text())}
    records = read_jsonl(tmp_path / "results.jsonl")
    for record in records:
        for metric in ("em", "acc", "f1"):
            assert record["metrics"][metric] == pytest.approx(archive[record["id"]]["metric_score"][metric], abs=1e-9)
    em = sum(archive[r["id"]]["metric_score"]["em"] for r in records) / len(records)
    assert summarize(records)["nq_base_archive_v1"]["em"] == pytest.approx(em, abs=1e-9)
    assert f"| nq_base_archive_v1 | {em:.3f} |" in first
    assert cli_main(argv) == 0  # everything is already in the file: nothing is replayed again
    assert len(read_jsonl(tmp_path / "results.jsonl")) == 20
    assert capsys.readouterr().out == first


@pytest.mark.slow
def test_cli_eval_runs_a_local_model_greedily_through_the_engine(tmp_path, capsys):
    argv = ["eval", "--engine", "hf", "--protocol", "research", "--limit", "3", "--max-turns", "2", "--max-new-tokens", "12",
            "--max-response-tokens", "48", "--batch-size", "2", "--out", str(tmp_path), "--quiet"]
    assert cli_main(argv) == 0  # no --model: the tiny local model on the demo world's test split
    records = read_jsonl(tmp_path / "results.jsonl")
    assert [r["dataset"] for r in records] == ["demo"] * 3 and capsys.readouterr().out.startswith("| dataset |")
    for record in records:
        assert record["finish_reason"] in ("terminated", "truncated", "length") and record["turns"] >= 1
        assert record["transcript"][record["segments"][0]["end"]:]  # the model wrote something after the prompt
    first = [r["transcript"] for r in records]
    (tmp_path / "results.jsonl").unlink()
    assert cli_main(argv) == 0  # greedy: the same transcripts again
    assert [r["transcript"] for r in read_jsonl(tmp_path / "results.jsonl")] == first
    (tmp_path / "results.jsonl").unlink()
    assert cli_main(argv + ["--schedule", "sync"]) == 0  # the turn-synchronous reference: the same episodes
    assert [(r["transcript"], r["metrics"]) for r in read_jsonl(tmp_path / "results.jsonl")] == [(r["transcript"], r["metrics"]) for r in records]
