"""DeepResearcher's contamination filter: the pass@k rule, the files it writes, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepresearch.agents.contamination_filter import FilterConfig, closed_book_prompt, filter_questions, write_outputs
from deepresearch.agents.rollout.engines.base import Generation
from deepresearch.envs import QAItem, load_qa


class ScriptedRepliesEngine:
    """Replies with the next scripted text for each question (by its text in the prompt);
    a reply ending in "..." ran out of tokens (finish reason "length")."""

    def __init__(self, tokenizer, replies: dict[str, list[str]]) -> None:
        self.tokenizer = tokenizer
        self.replies = {question: iter(texts) for question, texts in replies.items()}
        self.calls: list[int] = []

    def generate(self, prompts, sampling):
        self.calls.append(len(prompts))
        outputs = []
        for prompt in prompts:
            context = self.tokenizer.decode(prompt)
            question = next(q for q in self.replies if q in context)
            text = next(self.replies[question])
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            outputs.append(Generation(ids, [0.0] * len(ids), "", "length" if text.endswith("...") else "eos"))
        return outputs


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from deepresearch.agents import default_tiny_model

    return AutoTokenizer.from_pretrained(default_tiny_model())


ITEMS = [
    QAItem("a", "Who wrote Hamlet?", ("William Shakespeare", "Shakespeare")),
    QAItem("b", "What is the capital of Peru?", ("Lima",)),
    QAItem("c", "Where was Velmora Quistad born?", ("Tarsenby",), {"hops": 1}),
]
REPLIES = {
    "Who wrote Hamlet?": ["It was Shakespeare.", "Marlowe", "Marlowe"],  # one of three right, in a sentence
    "What is the capital of Peru?": ["Lima", "Lima", "Cusco"],
    "Where was Velmora Quistad born?": ["Oslo", "Paris", "Oslo Tarsenby Rome Lima..."],  # right, but cut off
}


def test_default_drops_a_question_answered_right_in_any_sample(tokenizer):
    """DeepResearcher's pass@10: any reply containing a gold answer, cut off or not."""
    engine = ScriptedRepliesEngine(tokenizer, REPLIES)
    verdicts = filter_questions(engine, ITEMS, FilterConfig(samples=3, questions_per_batch=2))
    assert [(v.id, v.correct, v.dropped) for v in verdicts] == [("a", 1, True), ("b", 2, True), ("c", 1, True)]
    assert engine.calls == [6, 3]  # two questions x three samples, then the last one
    assert verdicts[0].replies == REPLIES["Who wrote Hamlet?"]
    assert [v.finished for v in verdicts] == [3, 3, 2]
    assert FilterConfig().samples == 10 and FilterConfig().min_correct == 1


def test_ignore_unfinished_discounts_cut_off_replies(tokenizer):
    verdicts = filter_questions(ScriptedRepliesEngine(tokenizer, REPLIES), ITEMS, FilterConfig(samples=3, ignore_unfinished=True))
    assert [(v.id, v.correct, v.dropped) for v in verdicts] == [("a", 1, True), ("b", 2, True), ("c", 0, False)]


def test_prompt_is_the_papers(tokenizer):
    text = tokenizer.decode(closed_book_prompt(tokenizer, " Who wrote Hamlet? "))
    assert ("Give a short answer to the following question. The answer should be in English.\n\n"
            "Question: Who wrote Hamlet?\n\nYour answer:") in text


def test_min_correct_and_exact_match_are_options(tokenizer):
    strict = filter_questions(ScriptedRepliesEngine(tokenizer, REPLIES), ITEMS, FilterConfig(samples=3, min_correct=2))
    assert [v.dropped for v in strict] == [False, True, False]
    exact = filter_questions(ScriptedRepliesEngine(tokenizer, REPLIES), ITEMS, FilterConfig(samples=3, metric="em"))
    assert [v.correct for v in exact] == [0, 2, 0]  # "It was Shakespeare." is not an exact match


@pytest.mark.parametrize("bad", [{"samples": 0}, {"samples": 2, "min_correct": 3}, {"min_correct": 0}, {"metric": "f1"}, {"temperature": 0.0}])
def test_bad_settings_are_clear_errors(bad):
    with pytest.raises(ValueError):
        FilterConfig(**bad)


def test_outputs_round_trip_through_the_qa_loader(tokenizer, tmp_path):
    config = FilterConfig(samples=3, ignore_unfinished=True)  # keeps "c"
    verdicts = filter_questions(ScriptedRepliesEngine(tokenizer, REPLIES), ITEMS, config)
    summary = write_outputs(tmp_path, ITEMS, verdicts, config, {"dataset": "inline"})
    assert summary == {"questions": 3, "kept": 1, "dropped": 2, "dropped_share": 2 / 3}
    assert (tmp_path / "dropped_ids.txt").read_text() == "a\nb\n"
    kept = load_qa(tmp_path / "kept.jsonl")
    assert kept == [ITEMS[2]] and kept[0].metadata == {"hops": 1}
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["config"]["samples"] == 3 and report["source"] == {"dataset": "inline"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dropped_ids.txt", "kept.jsonl", "report.json"]


@pytest.mark.slow
def test_tiny_model_on_the_demo_world_drops_nothing(tmp_path: Path):
    """The demo world is invented: no model can know its answers, so nothing is dropped. The tiny
    model's replies often run to the token limit naming the world's entities, the gold among them
    by chance, so only finished replies count here (``--ignore-unfinished``)."""
    from deepresearch.cli import main

    out = tmp_path / "demo"
    assert main(["data", "filter", "--model", str(_tiny_model()), "--engine", "hf", "--dataset", "demo", "--limit", "24",
                 "--samples", "4", "--ignore-unfinished", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["summary"] == {"questions": 24, "kept": 24, "dropped": 0, "dropped_share": 0.0}
    assert all(len(q["replies"]) == 4 for q in report["questions"])
    assert (out / "dropped_ids.txt").read_text() == ""
    assert len(load_qa(out / "kept.jsonl")) == 24


def _tiny_model() -> Path:
    from deepresearch.agents import default_tiny_model

    return default_tiny_model()
