"""The ``deepresearcher`` preset against DeepResearcher's rules (docs/protocols.md,
"DeepResearcher"), case by case.

Expected values are worked out by hand from the original's rules; no original code is run.
"""

from __future__ import annotations

import pytest

from deepresearch.envs import get_protocol
from deepresearch.rewards import EpisodeContext, compute_reward

TAGS = get_protocol("deepresearcher").tags
CALL = '<think> search </think>\n<tool_call>\n{"name": "web_search", "arguments": {"query": ["q"]}}\n</tool_call>'
TOOL_TURN = "<|im_end|>\n<|im_start|>user\n<tool_response>\n[{'search_query': 'q'}]\n</tool_response><|im_end|>\n<|im_start|>assistant\n"


def score(response: str, golds) -> float:
    return compute_reward("deepresearcher", response, golds, TAGS).reward


@pytest.mark.parametrize(
    ("response", "golds", "expected"),
    [
        ("<think> t </think>\n<answer> Paris </answer><|im_end|>", ["Paris"], 1.0),
        (CALL + TOOL_TURN + "<think> t </think>\n<answer>Paris</answer><|im_end|>", ["Paris"], 1.0),
        # format: -1 for unbalanced call/think/answer tags or no answer
        ("<think> t </think><|im_end|>", ["Paris"], -1.0),
        ("<think> t <answer> Paris </answer>", ["Paris"], -1.0),  # think opened, never closed
        ("<tool_call> x <answer> Paris </answer>", ["Paris"], -1.0),
        ("</answer> Paris <answer>", ["Paris"], -1.0),  # a closing must follow each opening
        ("</think> t <think><answer> Paris </answer>", ["Paris"], -1.0),  # no closing after the opening
        ("<think> a <think> b </think> c </think><answer> Paris </answer>", ["Paris"], 1.0),  # nesting is not checked
        ("<answer><answer>a</answer></answer>", ["a"], 2 / 3),  # nested passes; the answer is "<answer>a" -> "answer a"
        # lower-cased first: upper-case tags are tags, answers and golds compare lower-cased
        ("<THINK> t </THINK><ANSWER> PARIS </ANSWER>", ["paris"], 1.0),
        ("<Answer>Paris</Answer>", ["PARIS"], 1.0),
        # the FIRST answer anywhere, a tool response's included
        ("<answer> Rome </answer> <answer> Paris </answer>", ["Paris"], 0.0),
        ("<tool_response> <answer> Paris </answer> </tool_response> <answer> Rome </answer>", ["Paris"], 1.0),
        # F1 over word sets after punctuation -> space; articles kept; no yes/no rule
        ("<answer> paris paris </answer>", ["paris"], 1.0),
        ("<answer> The Beatles </answer>", ["Beatles"], 2 / 3),
        ("<answer> U.S. </answer>", ["US"], 0.0),  # "u s" vs "us"
        ("<answer> A-B </answer>", ["a b"], 1.0),
        ("<answer> yes it is </answer>", ["yes"], 0.5),
        ("<answer> Paris, France </answer>", ["Rome", "France"], 2 / 3),  # best over golds
        # empty answers and golds are skipped: 0, not -1
        ("<answer> . </answer>", ["Paris"], 0.0),
        ("<answer> Paris </answer>", ["!!", "Paris"], 1.0),
        ("<answer> Paris </answer>", [], 0.0),
    ],
)
def test_deepresearcher_rules(response: str, golds: list[str], expected: float) -> None:
    assert score(response, golds) == pytest.approx(expected)


def test_golds_arrive_joined_by_the_answer_separator() -> None:
    assert score("<answer> Rome </answer>", "Paris<|answer_split|>Rome") == 1.0
    assert score("<answer> Rome </answer>", ["Paris<|ANSWER_SPLIT|>Rome"]) == 1.0  # lower-cased before the split


def test_the_prompt_and_env_spans_are_not_read() -> None:
    response = CALL + TOOL_TURN + "<think> t </think><answer> Paris </answer>"
    start = response.index(TOOL_TURN)
    episode = EpisodeContext(prompt="<answer> Rome </answer>", env_spans=((start, start + len(TOOL_TURN)),), finished=True)
    result = compute_reward("deepresearcher", response, ["Paris"], TAGS, episode=episode)
    assert result.reward == 1.0 and result.components["paper_answer"] == "paris" and result.components["answer"] == "Paris"
    failed = compute_reward("deepresearcher", "<think> t", ["Paris"], TAGS)
    assert failed.components["format_reasons"] == ["unbalanced tags"] and failed.components["paper_answer"] is None
