"""The ``search_r1`` and ``search_r1_format`` presets against Search-R1's rules
(docs/protocols.md, "Search-R1"), case by case.

Expected values are worked out by hand from the original's rules; no original code is run.
"""

from __future__ import annotations

import pytest

from deepresearch.envs import get_protocol
from deepresearch.rewards import EpisodeContext, SearchR1FormatReward, compute_reward

TAGS = get_protocol("search_r1").tags
GOLD = ["Paris"]
OBS = "\n\n<information>Doc 1(Title: \"Paris\") Paris is the capital of France.</information>\n\n"
VALID = "<think> need to search </think>\n<search> capital of france </search>" + OBS + "<think> found </think>\n<answer> {answer} </answer>"
# A user message with no answer tags (e.g. a template of your own).
PLAIN_PROMPT = "Answer the question. Question: what is the capital of France?\n"
RETRY = ("\nMy previous action is invalid. If I want to search, I should put the query between <search> and </search>. "
         "If I want to give the final answer, I should put the answer between <answer> and </answer>. Let me try again.\n")


def score(preset: str, response: str, golds=GOLD, **episode) -> float:
    return compute_reward(preset, response, golds, TAGS, episode=EpisodeContext(**episode) if episode else None).reward


@pytest.mark.parametrize(
    ("response", "golds", "expected"),
    [
        (VALID.format(answer="Paris"), GOLD, 1.0),
        (VALID.format(answer="the paris."), GOLD, 1.0),  # SQuAD normalisation
        (VALID.format(answer="Paris, France"), GOLD, 0.0),
        ("prose outside any tag <answer> Paris </answer> and after", GOLD, 1.0),  # EM reads no format
        ("<answer> Rome </answer> <answer> Paris </answer>", GOLD, 1.0),  # the last answer
        ("<answer> Paris </answer> <answer> Rome </answer>", GOLD, 0.0),
        ("<think> no answer </think>", GOLD, 0.0),
        ("<think> no answer </think>", ["Beijing"], 1.0),  # the prompt's example answer is read
        ("<search> q </search>" + OBS.replace("</information>", "<answer> Paris </answer></information>"), GOLD, 1.0),
        ("<search> q </search>\n\n<information>Doc 1 cut here <think> x </think><answer> Paris </answer>", GOLD, 1.0),
        ("<think> x </think>" + RETRY, ["and"], 1.0),  # the original retry message writes an answer "and"
        ("<Answer> Paris </Answer>", ["Beijing"], 1.0),  # not a tag: no answer in the response
        ("<answer> Paris", ["Beijing"], 1.0),  # unclosed: no answer in the response
    ],
)
def test_search_r1_em_rules(response: str, golds: list[str], expected: float) -> None:
    assert score("search_r1", response, golds) == expected


def test_the_prompt_is_part_of_what_search_r1_reads() -> None:
    # With a prompt holding no answer tags, one answer in the response is not enough (it needs two matches).
    assert score("search_r1", VALID.format(answer="Paris"), prompt=PLAIN_PROMPT) == 0.0
    assert score("search_r1", "<answer> Rome </answer>" + VALID.format(answer="Paris"), prompt=PLAIN_PROMPT) == 1.0
    # Our protocol's prompt holds the same example answers as Search-R1's.
    ours = get_protocol("search_r1").build_prompt("what is the capital of France").text
    assert score("search_r1", "<think> none </think>", ["Beijing"], prompt=ours) == 1.0
    # A chat-templated prompt is used as given.
    chat = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n" + ours + "<|im_end|>\n<|im_start|>assistant\n"
    assert score("search_r1_format", VALID.format(answer="Paris"), prompt=chat) == 1.0


@pytest.mark.parametrize(
    ("response", "golds", "expected"),
    [
        # valid structure: think -> (search -> information -> think)* -> answer
        (VALID.format(answer="Paris"), GOLD, 1.0),
        ("<think> direct </think> <answer> Paris </answer>", GOLD, 1.0),
        (VALID.format(answer="Rome"), GOLD, 0.2),  # valid + wrong: structure_format_score
        (VALID.format(answer="Rome"), ["France"], 0.2),  # gold retrieved, retrieval_score 0 by default
        # invalid structure
        ("I'll reason first. " + VALID.format(answer="Paris"), GOLD, 0.8),  # text before <think>: 1 - 0.2
        (VALID.format(answer="Paris") + " trailing", GOLD, 0.8),  # text after </answer>
        (VALID.format(answer="Paris") + "<|im_end|>", GOLD, 0.8),  # special tokens are text too
        ("<search> q </search>" + OBS + "<think> t </think><answer> Paris </answer>", GOLD, 0.8),  # no first think
        ("<think> t </think><search> q </search>" + OBS + "<answer> Paris </answer>", GOLD, 0.8),  # no think after information
        ("<think> t <answer> Paris </answer> </think>", GOLD, 0.8),  # a tag inside think
        ("<think> t </think><think> u </think><answer> Paris </answer>", GOLD, 0.8),
        ("<think> t </think><answer> Paris </answer></think>", GOLD, 0.8),  # counts differ
        # an <answer> inside retrieved text: counts differ, and the last match now runs from it to </answer>
        ("<think> t </think><search> q </search>" + OBS.replace("Paris is", "Paris <answer> is") + "<think> t </think><answer> Paris </answer>", GOLD, 0.1),
        ("<think> t </think><browse> https://x </browse><answer> Paris </answer>", GOLD, 0.8),  # browse is text
        ("<THINK> t </THINK><answer> Paris </answer>", GOLD, 0.8),
        (VALID.format(answer="Rome") + " trailing", GOLD, 0.1),  # invalid + wrong: final_format_score
        ("<think> no answer </think>", GOLD, 0.1),  # the prompt's "Beijing" is the answer: invalid + wrong
    ],
)
def test_search_r1_format_rules(response: str, golds: list[str], expected: float) -> None:
    assert score("search_r1_format", response, golds) == pytest.approx(expected, abs=0)


def test_format_reward_without_answer_retrieval_and_weights() -> None:
    # No answer found (a prompt without examples, so one answer is not enough): valid -> sfs, invalid -> 0.
    assert score("search_r1_format", VALID.format(answer="Paris"), prompt=PLAIN_PROMPT) == 0.2
    assert score("search_r1_format", "<think> t </think><search> q </search>" + OBS + "<think> t </think>", prompt=PLAIN_PROMPT) == 0.0
    weights = SearchR1FormatReward(structure_format_score=0.2, final_format_score=0.1, retrieval_score=0.1)
    valid_wrong = VALID.format(answer="Rome")
    assert weights(valid_wrong, ["France"], TAGS).reward == 0.2 + 0.1  # 0.30000000000000004, as the original sums
    assert weights(valid_wrong, ["Berlin"], TAGS).reward == 0.2
    # The prompt's "<information> and </information>" is a block too: a gold "and" is "retrieved".
    assert weights(valid_wrong, ["and"], TAGS).reward == 0.2 + 0.1
    # The bare user message is wrapped in the chat template; a templated prompt without the
    # assistant marker leaves no assistant text to check (invalid), and one answer is not enough.
    assert score("search_r1_format", VALID.format(answer="Paris"), prompt="<|im_start|>user\nq<|im_end|>\n") == 0.0
    with pytest.raises(ValueError, match="tag protocol"):
        compute_reward("search_r1_format", "x", GOLD, get_protocol("deepresearcher").tags)


def test_components_say_what_search_r1_read() -> None:
    result = compute_reward("search_r1_format", "<think> no answer </think>", GOLD, TAGS)
    # the paper's rule read the prompt's example; our answer (FlashRAG's pred, for evaluation) is none
    assert result.components["paper_answer"] == "Beijing" and result.components["answer"] is None
    assert result.components["structure_ok"] is False
    assert result.components["format_reasons"] == ["ends in state after_think"]
    em = compute_reward("search_r1", VALID.format(answer="Paris"), GOLD, TAGS)
    assert em.components["answer"] == em.components["paper_answer"] == "Paris" and em.components["format_ok"] is True
