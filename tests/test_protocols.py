"""Protocol parsing and rendering, including parity with real Search-R1 transcripts."""

from __future__ import annotations

import json
import re

import pytest

from deepresearch.envs.documents import Document
from deepresearch.envs.protocols import PROTOCOLS, get_protocol
from deepresearch.envs.tools import PageResult

DOCS = [
    Document(id="1", title="Tarsenby", text="Tarsenby is a city.", contents='"Tarsenby"\nTarsenby is a city.'),
    Document(id="2", title="Ostravel", text="Ostravel is a region.", contents='"Ostravel"\nOstravel is a region.'),
]


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_search_and_answer_actions_round_trip_through_parse(name):
    protocol = get_protocol(name)
    search = protocol.parse("<think> hmm </think>\n" + protocol.search_action("Velmora Quistad"))
    assert (search.kind, search.queries) == ("search", ("Velmora Quistad",))
    answer = protocol.parse(protocol.answer_action("Tarsenby"))
    assert (answer.kind, answer.answer) == ("answer", "Tarsenby")
    assert any(protocol.search_action("q").endswith(stop) for stop in protocol.stop)
    assert any(protocol.answer_action("a").endswith(stop) for stop in protocol.stop)


@pytest.mark.parametrize(
    "name,text,error_fragment",
    [
        ("research", "<search> unclosed", "The search tag was opened but never closed."),
        ("research", "I think the answer is Paris.", "inside the search tags or the final answer inside the answer tags"),
        ("research", "<search>   </search>", "empty"),
        ("search_r1", "<answer> x", "The answer tag was opened but never closed."),
        ("tool_call", "<tool_call>{not json}</tool_call>", "not valid JSON"),
        ("tool_call", '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>', "unknown tool"),
        ("tool_call", '<tool_call>{"name": "web_search", "arguments": {"query": []}}</tool_call>', "non-empty"),
        ("tool_call", '<tool_call>{"name": "web_search", "arguments": {"query": [1, 2]}}</tool_call>', "non-empty strings"),
        ("tool_call", '<tool_call>["web_search"]</tool_call>', "not an object"),
        ("tool_call", '<tool_call>{"name": "web_browse", "arguments": {"url": ["file:///etc"]}}</tool_call>', "http(s)"),
    ],
)
def test_malformed_turns_become_invalid_actions_with_a_reason(name, text, error_fragment):
    action = get_protocol(name).parse(text)
    assert action.kind == "invalid"
    assert error_fragment in action.error


def test_research_answer_without_boxed_is_an_answer_with_no_extracted_value():
    action = get_protocol("research").parse("<answer> Paris </answer>")
    assert action.kind == "answer" and action.answer is None and "boxed" in action.error


def test_first_complete_action_in_a_turn_wins():
    action = get_protocol("search_r1").parse("<search> a </search> then <answer> b </answer>")
    assert action.queries == ("a",)


def test_tool_call_accepts_a_bare_string_and_browse_urls():
    protocol = get_protocol("tool_call")
    search = protocol.parse('<tool_call>{"name": "web_search", "arguments": {"query": "one"}}</tool_call>')
    assert search.queries == ("one",)
    browse = protocol.parse('<tool_call>{"name": "web_browse", "arguments": {"url": ["https://a.example/x"]}}</tool_call>')
    assert (browse.kind, browse.urls) == ("browse", ("https://a.example/x",))


def test_renderings():
    assert get_protocol("research").wrap_observation(get_protocol("research").format_results(["q"], [DOCS])) == (
        '\n<result>\n"Tarsenby"\nTarsenby is a city.\n\n"Ostravel"\nOstravel is a region.\n</result>\n'
    )
    search_r1 = get_protocol("search_r1")
    assert search_r1.wrap_observation(search_r1.format_results(["q"], [DOCS])) == (
        '\n\n<information>Doc 1(Title: "Tarsenby") Tarsenby is a city.\n'
        'Doc 2(Title: "Ostravel") Ostravel is a region.</information>\n\n'
    )
    tool = get_protocol("tool_call")
    body = tool.format_results(["q1", "q2"], [DOCS[:1], []])
    assert body == 'Results for "q1":\n[1] Tarsenby\nTarsenby is a city.\n\nResults for "q2":\nNo results found.'
    assert tool.observation_messages(body) == [{"role": "tool", "content": body}]
    assert get_protocol("research").observation_messages(body) == []
    pages = tool.format_pages([PageResult(url="https://a.example", error="timed out")])
    assert pages == "Page: https://a.example\nCould not read https://a.example: timed out"


def test_unknown_protocol_names_the_known_ones():
    with pytest.raises(ValueError, match="research"):
        get_protocol("nope")


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_split_response_recovers_policy_and_env_turns(name):
    protocol = get_protocol(name)
    body = protocol.format_results(["q"], [DOCS])
    turns = [
        ("policy", "<think> a </think>\n" + protocol.search_action("q")),
        ("env", protocol.wrap_observation(body)),
        ("policy", protocol.answer_action("Tarsenby")),
    ]
    assert protocol.split_response("".join(text for _, text in turns)) == turns


# ------------------------------------------------------------ Search-R1 parity
INFORMATION = re.compile(r"<information>(.*)</information>", re.DOTALL)
DOC_LINE = re.compile(r"^Doc \d+\(Title: (.*?)\) (.*)$")


def documents_from_information(block: str) -> list[Document] | None:
    """Read passages back out of a recorded ``<information>`` block (test-side, independent).

    None when a line is not a whole passage: Search-R1 cut long observations to a
    token budget, so a recorded block can end in a bare ``Doc 3``.
    """
    inner = INFORMATION.search(block).group(1)
    documents = []
    for line in inner.split("\n"):
        match = DOC_LINE.match(line)
        if match is None:
            return None
        title, text = match.groups()
        documents.append(Document.from_record({"id": "?", "contents": f"{title}\n{text}"}))
    return documents


@pytest.fixture(scope="module")
def trajectories(shared_data):
    return json.loads((shared_data / "searchr1_trajectories" / "nq_base_archive_v1.json").read_text())


def test_search_r1_parser_splits_every_recorded_transcript(trajectories):
    protocol = get_protocol("search_r1")
    checked_searches, cut_blocks = 0, []
    for item in trajectories:
        output = item["output"]
        response = output["final_response"]
        turns = protocol.split_response(response)
        assert "".join(text for _, text in turns) == response
        policy_turns = [text for source, text in turns if source == "policy"]
        env_turns = [text for source, text in turns if source == "env"]
        # Every turn but the last ended at a search; its query is what the env searched for.
        for turn, block in zip(policy_turns, env_turns):
            action = protocol.parse(turn)
            assert action.kind == "search", (item["id"], turn)
            expected_query = re.findall(r"<search>(.*?)</search>", turn, re.DOTALL)[0].strip()
            assert action.queries == (expected_query,)
            # Re-rendering the recorded passages reproduces the recorded block byte for byte.
            documents = documents_from_information(block)
            if documents is None:
                cut_blocks.append(item["id"])
                continue
            assert protocol.wrap_observation(protocol.format_results(action.queries, [documents])) == block
            checked_searches += 1
        final = protocol.parse(policy_turns[-1])
        if output["pred"]:
            assert (final.kind, final.answer) == ("answer", output["pred"]), item["id"]
        else:
            assert final.kind != "answer" or not final.answer
    assert checked_searches == 998 and cut_blocks == ["test_3116"]


@pytest.mark.parametrize("name", ["research", "search_r1"])
def test_tag_protocols_browse_urls_and_offer_it_only_when_asked(name):
    protocol = get_protocol(name)
    action = protocol.parse("<browse> https://a.example/x http://b.example </browse>")
    assert (action.kind, action.urls) == ("browse", ("https://a.example/x", "http://b.example"))
    assert protocol.parse("<browse> file:///etc/passwd </browse>").kind == "invalid"
    assert "<browse>" in protocol.build_prompt("q", browse=True).text
    assert "<browse>" not in protocol.build_prompt("q").text


def test_tool_call_lists_web_browse_only_when_browsing_exists():
    protocol = get_protocol("tool_call")
    assert "web_browse" in protocol.build_prompt("q", browse=True).messages[0]["content"]
    assert "web_browse" not in protocol.build_prompt("q").messages[0]["content"]
