"""Value tables of every reward preset, the weighted-term rubric, and preset lookup errors."""

from __future__ import annotations

import pytest

from deepresearch.envs import PROTOCOLS
from deepresearch.rewards import (
    REWARD_PRESETS,
    SearchR1FormatReward,
    WeightedReward,
    compute_reward,
    get_reward_fn,
)
from deepresearch.rewards.terms import answered, format_error, format_ok, searched
from deepresearch.rewards.terms import f1 as f1_term

TAGS = {name: protocol.tags for name, protocol in PROTOCOLS.items()}
GOLD = ["William Shakespeare"]
RESEARCH_SEARCH = "<think>t</think><search>q</search><result>r</result>"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (f"{RESEARCH_SEARCH}<answer>\\boxed{{William Shakespeare}}</answer>", 1.0),
        (f"{RESEARCH_SEARCH}<answer>\\boxed{{Shakespeare}}</answer>", 2 / 3),  # P 1, R 1/2
        (f"{RESEARCH_SEARCH}<answer>\\boxed{{Marlowe}}</answer>", 0.1),  # format ok, F1 0
        ("<answer>William Shakespeare</answer>", 0.0),  # no \boxed: format bad
        ("<search>q</search><answer>\\boxed{William Shakespeare}</answer>", 0.0),  # correct but bad format
    ],
)
def test_research_preset(response: str, expected: float) -> None:
    assert compute_reward("research", response, GOLD, TAGS["research"]).reward == pytest.approx(expected)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("<answer>william shakespeare.</answer>", 1.0),
        ("<answer>Shakespeare</answer>", 0.0),
        ("stray text <answer>William Shakespeare</answer> more text", 1.0),  # EM ignores format
        ("<think>no answer</think>", 0.0),
    ],
)
def test_search_r1_preset_is_em(response: str, expected: float) -> None:
    assert compute_reward("search_r1", response, GOLD, TAGS["search_r1"]).reward == expected


VALID = "<think>t</think><search>q</search><information>{doc}</information><think>t</think><answer>{answer}</answer>"
INVALID = "<search>q</search><information>{doc}</information><answer>{answer}</answer>"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (VALID.format(doc="d", answer="William Shakespeare"), 1.0),
        (INVALID.format(doc="d", answer="William Shakespeare"), 0.8),
        (VALID.format(doc="d", answer="Marlowe"), 0.2),
        (VALID.format(doc="by William Shakespeare.", answer="Marlowe"), 0.2 + 0.1),
        (INVALID.format(doc="by William Shakespeare.", answer="Marlowe"), 0.1),
        ("<search>q</search><information>d</information>", 0.0),
    ],
)
def test_search_r1_format_preset(response: str, expected: float) -> None:
    result = compute_reward("search_r1_format", response, GOLD, TAGS["search_r1"])
    assert result.reward == pytest.approx(expected)
    assert isinstance(result.components["structure_ok"], bool)


def test_search_r1_format_weights_are_configurable() -> None:
    reward = SearchR1FormatReward(structure_format_score=0.3, final_format_score=0.05, retrieval_score=0.2)
    valid_wrong = VALID.format(doc="William Shakespeare", answer="Marlowe")
    assert reward(valid_wrong, GOLD, TAGS["search_r1"]).reward == pytest.approx(0.5)
    invalid_right = INVALID.format(doc="d", answer="William Shakespeare")
    assert reward(invalid_right, GOLD, TAGS["search_r1"]).reward == pytest.approx(0.7)
    with pytest.raises(ValueError, match="needs a tag protocol, not the tool-call protocol 'tool_call'"):
        reward(invalid_right, GOLD, TAGS["tool_call"])


TOOL_TURN = "<|im_end|>\n<|im_start|>user\n<tool_response>r</tool_response><|im_end|>\n<|im_start|>assistant\n"
SEARCH_CALL = '<tool_call>{"name": "web_search", "arguments": {"query": "q"}}</tool_call>'


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (f"{SEARCH_CALL}{TOOL_TURN}<answer>Shakespeare</answer>", 2 / 3),
        (f"{SEARCH_CALL}{TOOL_TURN}<answer>Marlowe</answer>", 0.0),
        (f"{SEARCH_CALL}<answer>William Shakespeare</answer>", -1.0),  # no tool_response
        ("<tool_call>{bad json}</tool_call><answer>William Shakespeare</answer>", -1.0),
    ],
)
def test_deepresearcher_preset(response: str, expected: float) -> None:
    assert compute_reward("deepresearcher", response, GOLD, TAGS["tool_call"]).reward == pytest.approx(expected)


def test_plain_f1_and_em_presets() -> None:
    response = "<answer>Shakespeare</answer> trailing text"
    assert compute_reward("f1", response, GOLD, TAGS["search_r1"]).reward == pytest.approx(2 / 3)
    assert compute_reward("em", response, GOLD, TAGS["search_r1"]).reward == 0.0
    assert compute_reward("em", response, "Shakespeare", TAGS["search_r1"]).reward == 1.0


def test_components_explain_the_reward() -> None:
    result = compute_reward("research", "<answer>Shakespeare</answer>", GOLD, TAGS["research"])
    components = result.components
    assert components["answer"] is None  # no \boxed
    assert (components["em"], components["f1"], components["acc"]) == (0.0, 0.0, 0.0)
    assert components["format_ok"] is False
    assert components["format_reasons"] == ["answer has no \\boxed{...} with balanced braces"]


def test_weighted_reward_combines_terms() -> None:
    rubric = WeightedReward([("f1", f1_term, 1.0), ("searched", searched, 0.1), ("format_error", format_error, -1.0), ("answered", answered, 0.05)])
    searched_ok = f"{RESEARCH_SEARCH}<answer>\\boxed{{Shakespeare}}</answer>"
    result = rubric(searched_ok, GOLD, TAGS["research"])
    assert result.reward == pytest.approx(2 / 3 + 0.1 + 0.05)
    assert result.components["term/searched"] == 1.0
    bad = rubric("<answer>\\boxed{William Shakespeare} extra</answer> tail", GOLD, TAGS["research"])
    assert bad.reward == pytest.approx(1.0 - 1.0 + 0.05)
    assert WeightedReward([("format", format_ok, 2.0)])(searched_ok, GOLD, TAGS["research"]).reward == 2.0
    with pytest.raises(ValueError, match="at least one"):
        WeightedReward([])


def test_weighted_reward_terms_are_named_and_names_are_unique() -> None:
    """Two lambdas (or partials) are told apart by their given names, and a repeated name is an error."""
    from functools import partial

    from deepresearch.rewards.metrics import exact_match

    response = "<answer>Shakespeare</answer>"  # F1 2/3, EM 0
    rubric = WeightedReward([("f1", lambda c: c.f1, 1.0), ("em", lambda c: c.em, 0.5)])
    result = rubric(response, GOLD, TAGS["search_r1"])
    assert result.reward == pytest.approx(2 / 3)
    assert (result.components["term/f1"], result.components["term/em"]) == (pytest.approx(2 / 3), 0.0)
    em_of_first_gold = partial(lambda c, gold: exact_match(c.answer, gold), gold="Shakespeare")
    assert WeightedReward([("em_first", em_of_first_gold, 1.0)])(response, GOLD, TAGS["search_r1"]).reward == 1.0
    with pytest.raises(ValueError, match=r"distinct names; repeated: \['f1'\]"):
        WeightedReward([("f1", f1_term, 1.0), ("f1", lambda c: c.em, 1.0)])
    with pytest.raises(ValueError, match="a term is"):
        WeightedReward([(f1_term, 1.0)])  # type: ignore[list-item]


def test_defaults_and_lookup() -> None:
    assert {cls.tags.name: cls.default_reward for cls in PROTOCOLS.values()} == {
        "research": "research",
        "search_r1": "search_r1",
        "tool_call": "deepresearcher",
    }
    assert get_reward_fn("research") is REWARD_PRESETS["research"]
    with pytest.raises(ValueError, match="known presets: research, search_r1"):
        get_reward_fn("bleu")
    with pytest.raises(TypeError, match="ProtocolTags"):
        compute_reward("f1", "<answer>x</answer>", GOLD, "xml")  # type: ignore[arg-type]
