"""``deepresearch eval --suite``: the papers' settings pinned, their numbers beside ours, on the local
samples in ../shared/data (replayed archives, a local model, a chat endpoint)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from web_servers import LoopbackServer

from deepresearch.agents import default_tiny_model
from deepresearch.agents.eval import cli as eval_cli
from deepresearch.agents.eval.suite_report import RunSettings, suite_table
from deepresearch.agents.eval.suites import DEEPRESEARCHER, RESEARCH, SEARCH_R1, SUITES
from deepresearch.agents.jsonl import read_jsonl
from deepresearch.cli import main
from deepresearch.envs import load_qa


@pytest.fixture(scope="module")
def qa_dir(shared_data: Path) -> Path:
    return shared_data / "qa"


@pytest.fixture(scope="module")
def corpus(shared_data: Path) -> str:
    return str(shared_data / "wiki18_sample" / "passages.jsonl")


def eval_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    eval_cli.configure(parser)
    return parser.parse_args(list(argv))


def suite_row(report: str, label: str) -> list[str]:
    line = next(line for line in report.splitlines() if line.startswith(f"| **this run: {label}"))
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


def setting(report: str, name: str) -> tuple[str, str]:
    line = next(line for line in report.splitlines() if line.startswith(f"| {name} |"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    return cells[2], cells[3]


def test_each_suite_pins_the_papers_settings_into_the_env():
    expected = {"search-r1": ("search_r1", "search_r1", 3, 5), "research": ("research", "research", 5, 32),
                "deepresearcher": ("deepresearcher", "deepresearcher", 10, 11)}
    for name, (protocol, reward, top_k, turns) in expected.items():
        suite = SUITES[name]
        args = eval_args("--suite", name)
        eval_cli.resolve_settings(args, suite)
        assert (args.protocol, args.top_k, args.max_turns, args.max_new_tokens) == (protocol, top_k, turns, suite.max_new_tokens)
        if suite.env_id.endswith("Wiki-v0"):
            env = eval_cli._env_factory(args, suite)().unwrapped
            assert (env.protocol.name, env.config.top_k, env.config.max_turns, env.config.reward) == (protocol, top_k, turns, reward)
    overridden = eval_args("--suite", "research", "--top-k", "2")
    eval_cli.resolve_settings(overridden, RESEARCH)
    assert overridden.top_k == 2 and overridden.max_turns == 32  # the user's value wins, the rest stays pinned
    plain = eval_args()
    eval_cli.resolve_settings(plain, None)
    assert (plain.protocol, plain.top_k, plain.max_turns) == ("research", 3, 8)  # no suite: the command's old defaults


def test_tables_use_each_papers_layout_and_scale():
    run = RunSettings("mine", None, None, 3, 5, 500, "search_r1", False, False, False)
    table = suite_table(SEARCH_R1, {"nq": {"em": 0.25, "n": 4}}, run)
    assert table.splitlines()[0] == "| Method | NQ | TriviaQA | PopQA | HotpotQA | 2wiki | Musique | Bamboogle | Avg. |"
    assert "| Search-R1-base (Qwen2.5-7B) | 0.480 | 0.638 | 0.457 | 0.433 | 0.382 | 0.196 | 0.432 | 0.431 |" in table
    assert suite_row(table, "mine") == ["0.250", "-", "-", "-", "-", "-", "-", "0.250 (1 of 7)"]
    research = suite_table(RESEARCH, {"bamboogle": {"em": 0.5, "judge": 0.75, "n": 4}}, run)
    assert research.splitlines()[0].startswith("| Method | HotpotQA EM | HotpotQA LJ | 2Wiki EM |")
    assert "| ReSearch-Qwen-7B-Instruct | 43.52 | 63.62 | 47.59 | 54.22 | 22.30 | 33.43 | 42.40 | 54.40 |" in research
    assert suite_row(research, "mine")[-2:] == ["50.00", "75.00"]
    deep = suite_table(DEEPRESEARCHER, {}, run)
    assert "| DeepResearcher (web search) | 39.6 | 61.9 | 78.4 | 85.0 |" in deep and "PopQA MBE |" in deep.splitlines()[0]


def test_a_subsample_of_the_papers_size_is_marked_uncheckable_not_equal():
    from deepresearch.agents.eval.suite_report import settings_rows

    def splits_mark(suite, datasets):
        run = RunSettings("mine", None, None, 3, 5, 500, suite.protocol, False, False, False, datasets)
        return next(mark for name, _, _, mark in settings_rows(suite, run) if name == "splits")

    assert splits_mark(SEARCH_R1, {"nq": ("test", None, 3610)}) == "="  # the whole split, as the paper ran it
    assert splits_mark(SEARCH_R1, {"nq": ("test", 100, 100)}) == "≠"  # --limit 100
    assert splits_mark(DEEPRESEARCHER, {"nq": ("dev", 512, 512)}) == "?"  # 512 questions, but not their random 512
    assert splits_mark(DEEPRESEARCHER, {"nq": ("test", 512, 512)}) == "≠"


def test_the_published_rows_in_the_docs_are_the_codes():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "evaluation.md").read_text(encoding="utf-8")
    run = RunSettings("mine", None, None, 3, 5, 500, "search_r1", False, False, False)
    for suite in SUITES.values():
        header, _, *published, _ours = suite_table(suite, {}, run).splitlines()
        assert header in docs and len(published) == len(suite.published)
        for row in published:
            assert row in docs, f"{suite.name}: docs/evaluation.md lacks {row}"
        for setting in suite.settings:
            assert f"| {setting.name} |" in docs


def test_missing_datasets_are_an_error_naming_the_download_command(qa_dir, corpus):
    with pytest.raises(SystemExit, match=r"(?s)not found under .*2wiki, musique.*python data/download.py qa 2wiki --split dev"):
        main(["eval", "--suite", "research", "--data-dir", str(qa_dir), "--corpus", corpus, "--quiet"])


def test_replaying_search_r1_archives_reproduces_flashrags_em_in_the_papers_table(tmp_path, shared_data, qa_dir, corpus, capsys):
    archive = shared_data / "searchr1_trajectories" / "nq_base_archive_v1.json"
    recorded = dict(line.split(": ") for line in archive.with_suffix(".metric_score.txt").read_text().splitlines())
    out = tmp_path / "replay"
    assert main(["eval", "--suite", "search-r1", "--policy", "replay", "--replay", str(archive), "--dataset", "nq",
                 "--data-dir", str(qa_dir), "--corpus", corpus, "--out", str(out), "--quiet"]) == 0
    report = (out / "suite.md").read_text()
    assert report in capsys.readouterr().out
    assert suite_row(report, archive.name)[0] == f"{float(recorded['em']):.3f}"  # FlashRAG's own average, item for item
    assert setting(report, "top-k") == ("3", "=") and setting(report, "turns") == ("5", "=")
    assert setting(report, "retriever")[1] == "≠"  # BM25 over the sample, not E5 over wiki-18: said under the table
    assert setting(report, "decoding")[1] == "?" and "missing triviaqa" in setting(report, "datasets")[0]


@pytest.mark.slow
def test_a_local_model_runs_the_research_suite_on_the_local_samples(tmp_path, qa_dir, corpus):
    out = tmp_path / "model"
    assert main(["eval", "--suite", "research", "--model", str(default_tiny_model()), "--engine", "hf", "--data-dir", str(qa_dir),
                 "--corpus", corpus, "--allow-missing", "--limit", "2", "--max-new-tokens", "16", "--out", str(out), "--quiet"]) == 0
    records = read_jsonl(out / "results.jsonl")
    assert sorted({r["dataset"] for r in records}) == ["bamboogle", "hotpotqa"] and len(records) == 4
    assert all(r["reward_components"]["turns"] <= 32 for r in records)
    report = (out / "suite.md").read_text()
    row = suite_row(report, str(default_tiny_model()))
    assert row[2:6] == ["-", "-", "-", "-"] and row[0] != "-" and row[6] != "-"  # 2Wiki and MuSiQue are not in the samples
    assert row[1] == "-" and setting(report, "metric")[1] == "≠"  # no judge ran: LJ is empty and flagged
    assert setting(report, "tokens") == ("16 per turn", "≠") and setting(report, "splits")[1] == "≠"  # --limit 2


def oracle_chat(golds_by_question: dict[str, str], protocol) -> dict:
    """A chat endpoint that answers each question with its gold answer in the protocol's format."""

    def complete(handler, request):
        prompt = json.dumps(request.json()["messages"])
        question = next(q for q in golds_by_question if json.dumps(q)[1:-1] in prompt)
        reply = f"<think> I know this. </think>\n{protocol.answer_action(golds_by_question[question])}"
        handler.send_json({"choices": [{"message": {"role": "assistant", "content": reply}, "finish_reason": "stop", "stop_reason": None}]})

    return {"/v1/chat/completions": complete}


def always_equivalent(handler, request):
    handler.send_json({"choices": [{"message": {"role": "assistant", "content": '{"equivalent": true}'}, "finish_reason": "stop"}]})


def test_an_endpoint_and_a_judge_fill_the_em_and_lj_columns(tmp_path, qa_dir, corpus):
    from deepresearch.envs import get_protocol

    items = load_qa(qa_dir / "bamboogle.jsonl", limit=3) + load_qa(qa_dir / "hotpotqa_distractor_dev_head.jsonl", limit=3)
    golds = {item.question: item.golden_answers[0] for item in items}
    out = tmp_path / "endpoint"
    with LoopbackServer(oracle_chat(golds, get_protocol("research"))) as policy, LoopbackServer({"/v1/chat/completions": always_equivalent}) as judge:
        assert main(["eval", "--suite", "research", "--endpoint", policy.url + "/v1", "--model", "oracle", "--data-dir", str(qa_dir),
                     "--corpus", corpus, "--allow-missing", "--limit", "3", "--judge-endpoint", judge.url + "/v1",
                     "--judge-model", "judge", "--out", str(out), "--quiet"]) == 0
    report = (out / "suite.md").read_text()
    assert suite_row(report, "oracle") == ["100.00", "100.00", "-", "-", "-", "-", "100.00", "100.00"]
    assert setting(report, "metric")[1] == "="
