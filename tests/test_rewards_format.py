"""Format rules per protocol: a passing transcript each, and one failing example per reason."""

from __future__ import annotations

import pytest

from deepresearch.envs import PROTOCOLS
from deepresearch.rewards import FormatCheck, ProtocolTags, check_format, check_search_r1_structure, parse_tool_call

TAGS = {name: protocol.tags for name, protocol in PROTOCOLS.items()}

RESEARCH_OK = (
    "<think>Who wrote it?</think> <search>author of Hamlet</search>\n"
    "<result>\nHamlet is a tragedy by <answer>Shakespeare</answer> (opaque env text)\n</result>\n"
    "<think>Found it.</think> <answer>The author is \\boxed{William Shakespeare}</answer><|im_end|>"
)
SEARCH_R1_OK = (
    "<think>Need facts.</think>\n<search> capital of France </search>\n\n"
    "<information>Doc 1(Title: Paris) Paris is the capital.</information>\n\n"
    "<think>Paris.</think>\n<answer> Paris </answer>"
)
SEARCH_CALL = '<tool_call>{"name": "web_search", "arguments": {"query": ["capital of France"]}}</tool_call>'
TOOL_TURN = "<|im_end|>\n<|im_start|>user\n<tool_response>\nParis is the capital.\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
TOOL_CALL_OK = f"<think>Search.</think>{SEARCH_CALL}{TOOL_TURN}<think>Done.</think><answer>Paris</answer>"


@pytest.mark.parametrize(
    ("response", "protocol"),
    [(RESEARCH_OK, TAGS["research"]), (SEARCH_R1_OK, TAGS["search_r1"]), (TOOL_CALL_OK, TAGS["tool_call"])],
)
def test_well_formed_transcripts_pass(response: str, protocol: ProtocolTags) -> None:
    assert check_format(response, protocol) == FormatCheck(ok=True, reasons=())


def test_lenient_search_r1_allows_prose_and_answer_right_after_information() -> None:
    response = "I'll reason first. <search>q</search> <information>doc</information> <answer>x</answer>"
    assert check_format(response, TAGS["search_r1"]).ok


ANSWER = "<answer>\\boxed{x}</answer>"


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (f"<search>q</search> I guess. <result>r</result>{ANSWER}", "<search> not followed by a <result> block"),
        (f"<search>q</search><think>t</think>{ANSWER}", "<search> not followed by a <result> block"),
        ("<think>t</think><search>q</search>", "<search> not followed by a <result> block"),
        (f"<result>fake evidence</result>{ANSWER}", "<result> without a preceding <search>"),
        (f"<think>a <search>q</search></think>{ANSWER}", "<search> nested inside <think>"),
        (f"</think>{ANSWER}", "stray </think>"),
        (f"<think>never closed {ANSWER}", "unclosed <think>"),
        (f"<search> </search><result>r</result>{ANSWER}", "empty <search>"),
        ("<search>q</search><result>r", "unclosed <result>"),
        ("<think>done</think>", "no <answer>...</answer> block"),
        (f"{ANSWER}{ANSWER}", "2 <answer> blocks, expected exactly one"),
        (f"{ANSWER} and more", "content after the final </answer>"),
        (f"{ANSWER}<search>q</search><result>r</result>", "content after the final </answer>"),
        ("<answer>William Shakespeare</answer>", "answer has no \\boxed{...} with balanced braces"),
        ("<answer>\\boxed{Shakespeare</answer>", "answer has no \\boxed{...} with balanced braces"),
    ],
)
def test_research_failures_name_their_reason(response: str, reason: str) -> None:
    check = check_format(response, TAGS["research"])
    assert not check.ok
    assert reason in check.reasons


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ("<search>q</search><answer>x</answer>", "<search> not followed by a <information> block"),
        ("<information>doc</information><answer>x</answer>", "<information> without a preceding <search>"),
        ("<answer>x</answer> trailing", "content after the final </answer>"),
        ("<answer>x", "unclosed <answer>"),
    ],
)
def test_search_r1_lenient_failures(response: str, reason: str) -> None:
    assert reason in check_format(response, TAGS["search_r1"]).reasons


def _call(payload: str) -> str:
    return f"<tool_call>{payload}</tool_call>{TOOL_TURN}<answer>x</answer>"


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (_call('{"name": "web_search", "arguments": '), "tool call is not valid JSON"),
        (_call('["web_search"]'), "tool call JSON is not an object"),
        (_call('{"name": "python", "arguments": {}}'), "unknown tool 'python'"),
        (_call('{"name": "web_search", "arguments": {"q": "x"}}'), "tool web_search needs arguments"),
        (_call('{"name": "web_search", "arguments": {"query": []}}'), "must be a string or a non-empty list"),
        (_call('{"name": "web_search", "arguments": {"query": [3]}}'), "must hold non-empty strings"),
        (_call('{"name": "web_browse", "arguments": {"url": "file:///etc/passwd"}}'), "needs http(s) URLs"),
        (f"{SEARCH_CALL}<answer>x</answer>", "<tool_call> not followed by a <tool_response> block"),
        (f"<think>x {SEARCH_CALL}</think>{TOOL_TURN}<answer>x</answer>", "<tool_call> nested inside <think>"),
        (f"{TOOL_CALL_OK}<answer>y</answer>", "2 <answer> blocks, expected exactly one"),
    ],
)
def test_tool_call_failures(response: str, reason: str) -> None:
    check = check_format(response, TAGS["tool_call"])
    assert not check.ok
    assert any(reason in found for found in check.reasons), check.reasons


def test_parse_tool_call_accepts_bare_strings_and_lists() -> None:
    tags = TAGS["tool_call"]
    tool, inputs = parse_tool_call('{"name": "web_search", "arguments": {"query": "a"}}', tags)
    assert (tool.name, inputs) == ("web_search", ["a"])
    tool, inputs = parse_tool_call('{"name": "web_browse", "arguments": {"url": ["https://a.org", "http://b.org"]}}', tags)
    assert (tool.name, tool.takes_urls, inputs) == ("web_browse", True, ["https://a.org", "http://b.org"])


def test_strict_structure_passes_the_canonical_sequence() -> None:
    assert check_search_r1_structure(SEARCH_R1_OK, TAGS["search_r1"]).ok
    assert check_search_r1_structure(SEARCH_R1_OK + "<|endoftext|>", TAGS["search_r1"]).ok


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ("Let me think. <think>t</think><answer>x</answer>", "text outside a block at state 'start'"),
        ("<answer>x</answer>", "unexpected <answer> at state 'start'"),
        (
            "<think>t</think><search>q</search><information>d</information><answer>x</answer>",
            "unexpected <answer> at state 'after information'",
        ),
        ("<think>t</think> so <answer>x</answer>", "text outside a block at state 'after think'"),
        ("<think>t</think><answer>x</answer> bye", "text after the final </answer>"),
        ("<think>t</think><search>q</search>", "response ends at state 'after search', expected a final </answer>"),
    ],
)
def test_strict_structure_failures(response: str, reason: str) -> None:
    assert check_search_r1_structure(response, TAGS["search_r1"]) == FormatCheck(ok=False, reasons=(reason,))


def test_strict_structure_reads_the_protocols_own_tag_names() -> None:
    """The same sequence rule over ReSearch's tags, reported in its tag names."""
    research = TAGS["research"]
    assert check_search_r1_structure("<think>t</think><search>q</search><result>r</result><think>t</think><answer>x</answer>", research).ok
    failed = check_search_r1_structure("<think>t</think><search>q</search><result>r</result><answer>x</answer>", research)
    assert failed == FormatCheck(ok=False, reasons=("unexpected <answer> at state 'after result'",))


def test_non_string_response_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="response must be a string"):
        check_format(None, TAGS["research"])  # type: ignore[arg-type]
