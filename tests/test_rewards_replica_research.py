"""The ``research`` preset against ReSearch's rules (docs/protocols.md, "ReSearch"), case by case.

Expected values are worked out by hand from the original's rules; no original code is run.
"""

from __future__ import annotations

import pytest

from deepresearch.envs import get_protocol
from deepresearch.rewards import EpisodeContext, ResearchReward, compute_reward

TAGS = get_protocol("research").tags
GOLD = ["Paris"]
EOS = "<|im_end|>"
SEARCH = "<think> I should search. </think> <search> capital of France </search> <result>\nParis is the capital.\n</result> "


def answer(value: str) -> str:
    return f"<think> Found it. </think> <answer> The final answer is \\[ {value} \\] </answer>"


def research(response: str, golds=GOLD, **episode) -> float:
    return compute_reward("research", response, golds, TAGS, episode=EpisodeContext(**episode) if episode else None).reward


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        # reward values: F1 when > 0, 0.1 for a good format with F1 0, 0 otherwise
        (SEARCH + answer("\\boxed{Paris}") + EOS, 1.0),
        (SEARCH + answer("\\boxed{Paris France}") + EOS, 2 / 3),  # token F1: P 1/2, R 1
        (SEARCH + answer("\\boxed{Rome}") + EOS, 0.1),
        (SEARCH + answer("\\boxed{yes}") + EOS, 0.1),  # yes/no only match exactly
        # the response must end with the EOS text: a length cut gets 0 even when right
        (SEARCH + answer("\\boxed{Paris}"), 0.0),
        (SEARCH + answer("\\boxed{Paris}") + "<|endoftext|>", 0.0),  # not the instruct EOS
        (SEARCH + answer("\\boxed{Paris}") + EOS + " ", 0.0),
        # think: as many openings as closings, at least one; nesting and order never checked
        ("<answer> \\boxed{Paris} </answer>" + EOS, 0.0),
        ("<think> a <think> b </think> </think>" + answer("\\boxed{Paris}").replace("<think> Found it. </think>", "") + EOS, 1.0),
        ("</think> reversed <think>" + answer("\\boxed{Paris}") + EOS, 1.0),
        ("<think> a " + answer("\\boxed{Paris}") + EOS, 0.0),
        ("<search> q </search> <result>\n<think>x</think>\n</result> <answer> \\boxed{Paris} </answer>" + EOS, 1.0),
        ("<THINK> a </THINK> <answer> \\boxed{Paris} </answer>" + EOS, 0.0),  # case-sensitive: no think
        # exactly one <answer> and one </answer>, anywhere (retrieved text included), <answer> first
        (SEARCH + answer("\\boxed{Paris}") + answer("\\boxed{Paris}") + EOS, 0.0),
        ("<think>a</think> <search> q </search> <result>\n<answer>\n</result> " + answer("\\boxed{Paris}") + EOS, 0.0),
        ("<think>a</think> </answer> \\boxed{Paris} <answer>" + EOS, 0.0),
        (SEARCH + answer("\\boxed{Paris}") + " text after the answer is fine" + EOS, 1.0),
        # each <search> needs </search>, <result>, </result> after it, in that order
        ("<think>a</think> <search> q </search> " + answer("\\boxed{Paris}") + EOS, 0.0),
        ("<think>a</think> <search> q <result>\nx\n</search> </result> " + answer("\\boxed{Paris}") + EOS, 0.0),
        ("<think>a</think> <result> no search needed </result> " + answer("\\boxed{Paris}") + EOS, 1.0),
        ("<think>a <search> q </search> <result>\nx\n</result> b</think> " + "<answer> \\boxed{Paris} </answer>" + EOS, 1.0),
        ("<think>a</think> <search> q </search> text between <result>\nx\n</result> " + answer("\\boxed{Paris}") + EOS, 1.0),
        # the answer needs "\boxed{" and "}"
        (SEARCH + answer("Paris") + EOS, 0.0),
        (SEARCH + answer("\\boxed {Paris}") + EOS, 0.0),
        # reading \boxed: the last \boxed{...}, to the brace that closes it
        (SEARCH + answer("\\boxed{Rome} \\boxed{Paris}") + EOS, 1.0),
        (SEARCH + answer("\\boxed{\\text{Paris}}") + EOS, 0.1),  # "textparis"
        (SEARCH + answer("\\boxed{}") + EOS, 0.1),
        (SEARCH + answer("\\boxed{Paris} \\boxed{Rome") + EOS, 0.0),  # last one unbalanced
        (SEARCH + answer("\\boxed{Rome} \\boxedx{Paris}") + EOS, 0.0),
        # "\boxed " with a space wins when it occurs at all: after its last occurrence up to "$"
        (SEARCH + answer("\\boxed{Rome} or \\boxed Paris$ tail") + EOS, 1.0),
        (SEARCH + answer("\\boxed Paris \\boxed{Rome}") + EOS, 2 / 3),  # "Paris \\boxed{Rome} \\] " -> "paris boxedrome"
    ],
)
def test_research_rules(response: str, expected: float) -> None:
    assert research(response) == pytest.approx(expected)


def test_the_cut_at_the_assistant_marker() -> None:
    good = SEARCH + answer("\\boxed{Paris}") + EOS
    base_prompt = get_protocol("research").build_prompt("What is the capital of France?").text
    assert research(good, prompt=base_prompt) == 1.0
    # base prompt: any "Assistant:" in the response cuts it there (the EOS is lost)
    assert research("<think>Assistant: hi</think> " + answer("\\boxed{Paris}") + EOS, prompt=base_prompt) == 0.0
    # the chat marker anywhere switches to it: here the text after the response's own marker is scored
    assert research("junk <|im_start|>assistant\n" + good, prompt=base_prompt) == 1.0
    # no prompt: a chat prompt is assumed, so "Assistant:" is plain text
    assert research("<think>Assistant: hi</think> " + answer("\\boxed{Paris}") + EOS) == 1.0
    # a second chat marker in the response ends the scored part
    assert research(good.replace(" <think> Found", " <|im_start|>assistant\n <think> Found")) == 0.0
    # no marker at all: the original raises; we give 0 and say why
    result = compute_reward("research", good, GOLD, TAGS, episode=EpisodeContext(prompt="no marker here "))
    assert result.reward == 0.0 and result.components["format_reasons"] == ["no assistant marker"]


def test_finished_appends_the_eos_and_eos_token_is_configurable() -> None:
    unterminated = SEARCH + answer("\\boxed{Paris}")
    assert research(unterminated, finished=True) == 1.0
    assert research(unterminated + EOS, finished=True) == 1.0  # not appended twice
    assert research(unterminated, finished=False) == 0.0
    base = ResearchReward(eos_token="<|endoftext|>")
    assert base(unterminated + "<|endoftext|>", GOLD, TAGS).reward == 1.0
    assert base(unterminated + EOS, GOLD, TAGS).reward == 0.0
    with pytest.raises(ValueError, match="eos_token"):
        ResearchReward(eos_token="")


def test_components_report_the_answer_and_why_the_format_failed() -> None:
    result = compute_reward("research", SEARCH + answer("\\boxed{Paris France}") + EOS, GOLD, TAGS)
    assert result.components["answer"] == "Paris France" and result.components["f1"] == pytest.approx(2 / 3)
    assert result.components["format_ok"] is True and result.components["em"] == 0.0
    assert result.components["paper_answer"] == "Paris France"
    # Cut by length: ReSearch reads no answer (reward 0); our extraction, for evaluation, still does.
    failed = compute_reward("research", SEARCH + answer("\\boxed{Paris}"), GOLD, TAGS)
    assert failed.components["paper_answer"] is None and failed.components["format_reasons"] == ["does not end with <|im_end|> (cut by length)"]
    assert failed.reward == 0.0 and failed.components["answer"] == "Paris" and failed.components["em"] == 1.0
