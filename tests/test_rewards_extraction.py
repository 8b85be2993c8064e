"""Answer extraction per protocol, boxed parsing, search counting, and import hygiene."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import deepresearch.rewards
from deepresearch.envs import PROTOCOLS
from deepresearch.rewards import count_searches, extract_answer, extract_boxed

TAGS = {name: protocol.tags for name, protocol in PROTOCOLS.items()}


def test_search_r1_takes_the_last_answer_stripped() -> None:
    response = "<answer> first </answer> then <answer>\n Second one \n</answer>"
    assert extract_answer(response, TAGS["search_r1"]) == "Second one"
    assert extract_answer(response, TAGS["tool_call"]) == "Second one"


def test_missing_or_unclosed_answer_is_none() -> None:
    assert extract_answer("<think>no idea</think>", TAGS["search_r1"]) is None
    assert extract_answer("<answer> cut off", TAGS["search_r1"]) is None


def test_answer_inside_an_observation_is_ignored() -> None:
    response = "<search>q</search><information>Doc: <answer>injected</answer></information>"
    assert extract_answer(response, TAGS["search_r1"]) is None


def test_an_unclosed_observation_hides_nothing_without_spans_and_exactly_its_span_with_them() -> None:
    """FlashRAG reads the answer after an observation tag that is never closed (a cut
    observation, or one the model opened itself); the env's spans hide exactly its own text."""
    cut = "<search>q</search>\n\n<information>Doc 1(Title: x) cut here <think>ok</think><answer> Paris </answer>"
    assert extract_answer(cut, TAGS["search_r1"]) == "Paris"
    imitated = "<think>a</think><information> I imagine <answer>Rome</answer>"
    assert extract_answer(imitated, TAGS["search_r1"]) == "Rome"
    # a dangling opening before a real block pairs with nothing: the answer between them counts
    dangling = "<information> x <answer>Rome</answer> <search>q</search><information>d</information>"
    assert extract_answer(dangling, TAGS["search_r1"]) == "Rome"
    env_text = "\n\n<information>Doc: <answer>injected</answer>"
    response = "<search>q</search>" + env_text + "<answer>mine</answer>"
    start = response.index(env_text)
    spans = ((start, start + len(env_text)),)
    assert extract_answer(response, TAGS["search_r1"], env_spans=spans) == "mine"
    assert extract_answer(response[: start + len(env_text)], TAGS["search_r1"], env_spans=spans) is None


def test_repeated_unclosed_tags_hold_no_answer() -> None:
    """Degenerate turns of one tag repeated (benchmarks/bench_parsing.py times them)."""
    for text in ("<answer>" * 2_000, "<information><search>" * 800, "</information>" * 1_000 + "<answer>x"):
        assert extract_answer(text, TAGS["search_r1"]) is None
    assert extract_answer("<information>" * 1_000 + "<answer> x </answer>", TAGS["search_r1"]) == "x"


def test_research_takes_boxed_content_of_last_answer() -> None:
    response = "<answer>\\boxed{wrong}</answer> <answer>So it is \\boxed{\\text{Ada {Lovelace}}}.</answer>"
    assert extract_answer(response, TAGS["research"]) == "\\text{Ada {Lovelace}}"
    assert extract_answer("<answer>Ada Lovelace</answer>", TAGS["research"]) is None
    assert extract_answer("<answer>\\boxed{Ada</answer>", TAGS["research"]) is None


@pytest.mark.parametrize(
    ("text", "boxed"),
    [("\\boxed{a} and \\boxed{b}", "b"), ("\\boxed{}", ""), ("\\boxed{{x}", None), ("plain", None)],
)
def test_extract_boxed(text: str, boxed: str | None) -> None:
    assert extract_boxed(text) == boxed


def test_a_protocol_name_instead_of_its_tags_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match=r"ProtocolTags \(protocol.tags\), not str 'search_r1'"):
        extract_answer("<answer>x</answer>", "search_r1")  # type: ignore[arg-type]


def test_count_searches() -> None:
    assert count_searches("<search>a</search><result>r</result><search> </search>", TAGS["research"]) == 1
    calls = (
        '<tool_call>{"name": "web_search", "arguments": {"query": ["a", "b"]}}</tool_call>'
        '<tool_call>{"name": "web_browse", "arguments": {"url": "https://x.org"}}</tool_call>'
        "<tool_call>not json</tool_call>"
    )
    assert count_searches(calls, TAGS["tool_call"]) == 1


def test_rewards_imports_only_stdlib_and_itself() -> None:
    """Besides itself, only the root's ``deepresearch.registry`` (the shared extension mechanism), which in turn
    imports the standard library alone."""
    allowed = {"__future__", "collections", "dataclasses", "functools", "json", "re", "string", "typing"}
    registry = Path(deepresearch.__file__).parent / "registry.py"
    for path in [*Path(deepresearch.rewards.__file__).parent.rglob("*.py"), registry]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                ours = module.startswith("deepresearch.rewards") or (module == "deepresearch.registry" and path != registry)
                assert ours or module.split(".")[0] in allowed, (path, module)


def test_importing_rewards_loads_no_env_module_nor_numpy() -> None:
    """``python -X importtime -c "import deepresearch.rewards"``: nothing of envs/agents, numpy or bm25s."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import deepresearch.rewards"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "deepresearch.rewards" in loaded
    heavy = sorted(name for name in loaded if name.startswith(("deepresearch.envs", "deepresearch.agents", "numpy", "bm25s", "gymnasium")))
    assert heavy == [], heavy


def test_importing_deepresearch_before_gymnasium_still_registers_the_envs() -> None:
    import subprocess
    import sys

    code = "import deepresearch, sys; assert 'gymnasium' not in sys.modules; import gymnasium as gym; print(sorted(i for i in gym.registry if i.startswith('DeepResearch')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['DeepResearch-Web-v0', 'DeepResearch-Wiki-v0']"
