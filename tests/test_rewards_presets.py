"""Value tables of our own (``*_strict``) presets, the weighted-term rubric, and preset lookup errors.

The paper replicas have their own tests (``test_rewards_replica_*.py``)."""

from __future__ import annotations

import pytest

from deepresearch.envs import PROTOCOLS
from deepresearch.rewards import (
    REWARD_PRESETS,
    EpisodeContext,
    StrictSearchR1FormatReward,
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
def test_research_strict_preset(response: str, expected: float) -> None:
    assert compute_reward("research_strict", response, GOLD, TAGS["research"]).reward == pytest.approx(expected)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("<answer>william shakespeare.</answer>", 1.0),
        ("<answer>Shakespeare</answer>", 0.0),
        ("stray text <answer>William Shakespeare</answer> more text", 1.0),  # EM ignores format
        ("<think>no answer</think>", 0.0),
    ],
)
def test_search_r1_strict_preset_is_em_of_the_last_answer(response: str, expected: float) -> None:
    assert compute_reward("search_r1_strict", response, GOLD, TAGS["search_r1"]).reward == expected


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
def test_search_r1_format_strict_preset(response: str, expected: float) -> None:
    result = compute_reward("search_r1_format_strict", response, GOLD, TAGS["search_r1"])
    assert result.reward == pytest.approx(expected)
    assert isinstance(result.components["structure_ok"], bool)


def test_search_r1_format_weights_are_configurable() -> None:
    reward = StrictSearchR1FormatReward(structure_format_score=0.3, final_format_score=0.05, retrieval_score=0.2)
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
def test_deepresearcher_strict_preset(response: str, expected: float) -> None:
    assert compute_reward("deepresearcher_strict", response, GOLD, TAGS["tool_call"]).reward == pytest.approx(expected)


def test_plain_f1_and_em_presets() -> None:
    response = "<answer>Shakespeare</answer> trailing text"
    assert compute_reward("f1", response, GOLD, TAGS["search_r1"]).reward == pytest.approx(2 / 3)
    assert compute_reward("em", response, GOLD, TAGS["search_r1"]).reward == 0.0
    assert compute_reward("em", response, "Shakespeare", TAGS["search_r1"]).reward == 1.0


def test_components_explain_the_reward() -> None:
    result = compute_reward("research_strict", "<answer>Shakespeare</answer>", GOLD, TAGS["research"])
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


def test_strict_presets_hide_exactly_the_env_spans_when_given() -> None:
    """With the env's spans, an observation block the policy writes itself is read as its text
    (it retrieved nothing); a cut env observation hides its span, not the policy's turn after it."""
    imitated = "<think>t</think><search>q</search><information>made up</information><think>t</think><answer>William Shakespeare</answer>"
    env_written = "<information>made up</information>"
    start = imitated.index(env_written)
    by_tags = compute_reward("search_r1_format_strict", imitated, GOLD, TAGS["search_r1"])
    by_spans = compute_reward("search_r1_format_strict", imitated, GOLD, TAGS["search_r1"], episode=EpisodeContext(env_spans=((start, start + len(env_written)),)))
    assert by_tags.reward == by_spans.reward == 1.0
    no_env = compute_reward("search_r1_format_strict", imitated, GOLD, TAGS["search_r1"], episode=EpisodeContext(env_spans=()))
    assert no_env.reward == 1.0 and no_env.components["gold_in_retrieval"] is False  # nothing was retrieved
    cut = "<think>t</think><search>q</search>\n\n<information>Doc 1 <answer>Marlowe</answer>"
    response = cut + "<think>t</think><answer>William Shakespeare</answer>"
    spans = ((cut.index("\n\n"), len(cut)),)
    assert compute_reward("search_r1_strict", response, GOLD, TAGS["search_r1"], episode=EpisodeContext(env_spans=spans)).reward == 1.0
    assert compute_reward("research_strict", "x", GOLD, TAGS["research"], episode=EpisodeContext(env_spans=((0, 1),))).components["answer"] is None
    with pytest.raises(ValueError, match="past the response"):
        compute_reward("em", "short", GOLD, TAGS["search_r1"], episode=EpisodeContext(env_spans=((0, 99),)))
    with pytest.raises(ValueError, match="sorted, disjoint"):
        EpisodeContext(env_spans=((5, 9), (0, 2)))


def test_defaults_and_lookup() -> None:
    assert {cls.tags.name: cls.default_reward for cls in PROTOCOLS.values()} == {
        "research": "research",
        "search_r1": "search_r1",
        "deepresearcher": "deepresearcher",
        "tool_call": "deepresearcher_strict",
    }
    names = set(REWARD_PRESETS)
    assert {"research", "search_r1", "search_r1_format", "deepresearcher"} <= names
    assert {f"{name}_strict" for name in ("research", "search_r1", "search_r1_format", "deepresearcher")} <= names
    assert get_reward_fn("research") is REWARD_PRESETS["research"]
    with pytest.raises(ValueError, match="known presets: research, research_strict, search_r1"):
        get_reward_fn("bleu")
    with pytest.raises(TypeError, match="ProtocolTags"):
        compute_reward("f1", "<answer>x</answer>", GOLD, "xml")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="EpisodeContext"):
        compute_reward("research", "x", GOLD, TAGS["research"], episode={"prompt": "p"})  # type: ignore[arg-type]
