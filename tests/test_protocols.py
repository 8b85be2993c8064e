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
    assert (search.kind, search.inputs) == ("search", ("Velmora Quistad",))
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
        ("deepresearcher", '<tool_call>{"name": "web_search", "arguments": {"query": "one"}}</tool_call>', "non-empty list"),
        ("deepresearcher", '<tool_call>{"name": "browse_webpage", "arguments": {"url_list": []}}</tool_call>', "non-empty list"),
        ("deepresearcher", '<tool_call>{"name": "web_browse", "arguments": {"url": ["https://a.b"]}}</tool_call>', "unknown tool"),
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
    assert action.inputs == ("a",)


def test_tool_call_accepts_a_bare_string_and_browse_urls():
    protocol = get_protocol("tool_call")
    search = protocol.parse('<tool_call>{"name": "web_search", "arguments": {"query": "one"}}</tool_call>')
    assert search.inputs == ("one",)
    browse = protocol.parse('<tool_call>{"name": "web_browse", "arguments": {"url": ["https://a.example/x"]}}</tool_call>')
    assert (browse.kind, browse.inputs) == ("browse", ("https://a.example/x",))


def test_renderings():
    # ReSearch: " <result>\n" + each document's contents and a blank line, stripped + "\n</result>"
    assert get_protocol("research").wrap_observation(get_protocol("research").format_results(["q"], [DOCS])) == (
        ' <result>\n"Tarsenby"\nTarsenby is a city.\n\n"Ostravel"\nOstravel is a region.\n</result>'
    )
    assert get_protocol("research").wrap_observation(get_protocol("research").format_results(["q"], [[]])) == " <result>\n\n</result>"
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
            assert action.inputs == (expected_query,)
            # Re-rendering the recorded passages reproduces the recorded block byte for byte.
            documents = documents_from_information(block)
            if documents is None:
                cut_blocks.append(item["id"])
                continue
            # Search-R1's rollout strips the passages; the pipeline that recorded these did not.
            inner = INFORMATION.search(block).group(1)
            expected = block.replace(inner, inner.strip())
            assert protocol.wrap_observation(protocol.format_results(action.inputs, [documents])) == expected
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
    assert (action.kind, action.inputs) == ("browse", ("https://a.example/x", "http://b.example"))
    assert protocol.parse("<browse> file:///etc/passwd </browse>").kind == "invalid"
    assert "<browse>" in protocol.build_prompt("q", browse=True).text
    assert "<browse>" not in protocol.build_prompt("q").text


def test_tool_call_lists_web_browse_only_when_browsing_exists():
    protocol = get_protocol("tool_call")
    assert "web_browse" in protocol.build_prompt("q", browse=True).messages[0]["content"]
    assert "web_browse" not in protocol.build_prompt("q").messages[0]["content"]


# ------------------------------------------------------------ the papers' prompts, tools and framing
RESEARCH_BASE = (  # the text, character for character; {prompt} is the question
    "A conversation between User and Assistant. The user asks a question, and the assistant solves it. The assistant "
    "first thinks about the reasoning process in the mind and then provides the user with the answer. During thinking, "
    "the assistant can invoke the wikipedia search tool to search for fact information about specific topics if needed. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags respectively, and "
    "the search query and result are enclosed within <search> </search> and <result> </result> tags respectively. For "
    "example, <think> This is the reasoning process. </think> <search> search query here </search> <result> search "
    "result here </result> <think> This is the reasoning process. </think> <answer> The final answer is \\[ "
    "\\boxed{answer here} \\] </answer>. In the last part of the answer, the final exact answer is enclosed within "
    "\\boxed{} with latex format. User: {prompt}. Assistant:"
)
RESEARCH_SYSTEM = (
    "You are a helpful assistant that can solve the given question step by step with the help of the wikipedia search "
    "tool. Given a question, you need to first think about the reasoning process in the mind and then provide the "
    "answer. During thinking, you can invoke the wikipedia search tool to search for fact information about specific "
    "topics if needed. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
    "tags respectively, and the search query and result are enclosed within <search> </search> and <result> </result> "
    "tags respectively. For example, <think> This is the reasoning process. </think> <search> search query here "
    "</search> <result> search result here </result> <think> This is the reasoning process. </think> <answer> The final "
    "answer is \\[ \\boxed{answer here} \\] </answer>. In the last part of the answer, the final exact answer is enclosed "
    "within \\boxed{} with latex format."
)


def test_research_prompts_are_the_papers_character_for_character():
    prompt = get_protocol("research").build_prompt("who wrote {x} of Hamlet")
    assert prompt.text == RESEARCH_BASE.replace("{prompt}", "who wrote {x} of Hamlet")
    assert prompt.messages == [
        {"role": "system", "content": RESEARCH_SYSTEM},
        {"role": "user", "content": "who wrote {x} of Hamlet"},
    ]


def test_prompt_template_replaces_our_wording_in_base_and_chat_forms(tmp_path):
    from deepresearch.envs.protocols import DeepResearcherProtocol, PromptTemplate, SearchR1Protocol

    user = "Answer it. Example: <answer> x </answer>. Question: {question}\n"
    protocol = SearchR1Protocol(prompt_template=user)
    prompt = protocol.build_prompt("  who wrote hamlet ")  # Search-R1's data scripts strip and add "?"
    assert prompt.text == "Answer it. Example: <answer> x </answer>. Question: who wrote hamlet?\n"
    assert prompt.messages == [{"role": "user", "content": prompt.text}]
    path = tmp_path / "prompt.txt"
    path.write_text(user, encoding="utf-8")
    assert SearchR1Protocol(prompt_template=path).build_prompt("q?").text == user.replace("{question}", "q?")
    system = PromptTemplate(user="{question}", system="## Background information \n* Today is 2025-04-01\n")
    chat = DeepResearcherProtocol(prompt_template=system).build_prompt("Who?")
    assert chat.messages == [{"role": "system", "content": system.system}, {"role": "user", "content": "Who?"}]
    assert chat.text == system.system + "\n\nWho?"
    with pytest.raises(ValueError, match=r"\{question\}"):
        SearchR1Protocol(prompt_template="no placeholder")
    with pytest.raises(TypeError, match="prompt_template"):
        SearchR1Protocol(prompt_template=42)


def test_deepresearcher_tools_arguments_and_framing():
    protocol = get_protocol("deepresearcher")
    search = protocol.parse('<think> t </think>\n<tool_call>\n{"name": "web_search", "arguments": {"query": ["a", "b"]}}\n</tool_call>')
    assert (search.kind, search.inputs) == ("search", ("a", "b"))
    browse = protocol.parse('<tool_call>{"name": "browse_webpage", "arguments": {"url_list": ["https://a.example/x"]}}</tool_call>')
    assert (browse.kind, browse.inputs) == ("browse", ("https://a.example/x",))
    assert protocol.stop == ("</tool_call>", "</answer>") and protocol.observation_role == "tool"
    body = protocol.format_results(["q"], [DOCS[:1]])
    assert body == str([{"search_query": "q", "web_page_info_list": [{"title": "Tarsenby", "url": "1", "quick_summary": "Tarsenby is a city."}]}])
    assert protocol.wrap_observation(body) == (
        "<|im_end|>\n<|im_start|>user\n<tool_response>\n" + body + "\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )
    pages = protocol.format_pages([PageResult(url="https://a.example", text="Born in Warsaw."), PageResult(url="https://b.example", error="timed out")])
    assert pages == str([
        {"url": "https://a.example", "information": [{"page_number": 1, "page_summary": "Born in Warsaw."}]},
        {"url": "https://b.example", "information": [], "error": "timed out"},
    ])
    assert "browse_webpage" in protocol.build_prompt("q", browse=True).messages[0]["content"]
    assert "browse_webpage" not in protocol.build_prompt("q").messages[0]["content"]


FEEDBACK_TURNS = ["", "prose only", "<search> unclosed", "<answer> unclosed", "<search>  </search>", "<answer> no box </answer>",
                  "<tool_call>{bad json}</tool_call>", '<tool_call>{"name": "nope", "arguments": {}}</tool_call>',
                  "<browse> ftp://x </browse>", "<browse>  </browse>", "<tool_call>" * 3]


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_feedback_names_tags_without_writing_a_scoreable_tag_pair(name):
    protocol = get_protocol(name)
    for turn in FEEDBACK_TURNS:
        action = protocol.parse(turn)
        if action.kind != "invalid":
            continue
        feedback = protocol.wrap_error(action.error or "")
        body = feedback.replace(protocol.observation_prefix, "").replace(protocol.observation_suffix, "")
        for tag in protocol.tags.names:
            assert f"<{tag}>" not in body and f"</{tag}>" not in body, (turn, body)
    assert protocol.action_hint and all(f"<{tag}" not in protocol.action_hint for tag in protocol.tags.names)


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_a_turn_of_one_repeated_opening_tag_is_invalid_and_all_policy_text(name):
    """What a degenerate policy writes (benchmarks/bench_parsing.py times it)."""
    protocol = get_protocol(name)
    for tag in protocol.tags.names:
        turn = (f"<{tag}>" * 16_000)[:16_000]
        assert protocol.parse(turn).kind == "invalid"
        assert protocol.split_response(turn) == [("policy", turn)]


def test_the_old_action_fields_still_work_and_warn_once(monkeypatch):
    """``Action(queries=...)``, ``action.queries`` and ``action.urls`` became ``inputs``: each warns the first time only."""
    import warnings

    import deepresearch.deprecations as deprecations
    from deepresearch.envs import Action

    monkeypatch.setattr(deprecations, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = [Action(kind="search", queries=("q",)) for _ in range(2)]
        assert [action.queries for action in old] == [("q",), ("q",)] and old[0].inputs == ("q",)
        browse = Action(kind="browse", urls=("https://a.example",))
        assert (browse.urls, browse.queries, old[0].urls) == (("https://a.example",), (), ())
    messages = sorted(str(w.message) for w in caught if issubclass(w.category, DeprecationWarning))
    assert messages == [
        "Action(queries=..., urls=...) is deprecated; use Action(inputs=...)",
        "Action.queries is deprecated; use Action.inputs",
        "Action.urls is deprecated; use Action.inputs",
    ]
    assert all(w.filename == __file__ for w in caught)  # the warning points at the caller's line
