"""Our Qwen-style tool-calling protocol: ``web_search`` and ``web_browse``, or any registered tools.

The model writes ``<tool_call>{"name": "web_search", "arguments": {"query": [..]}}</tool_call>``
(or ``web_browse`` with ``"url"``); results come back in a tool turn, shown in
text form as ``<tool_response>…</tool_response>``. The final answer goes in
``<answer>…</answer>``. DeepResearcher's own tool names, argument shapes and framing
are the ``deepresearcher`` protocol; this one's default reward is our
``deepresearcher_strict``. ``with_tools`` (``gym.make(..., tools=[...])``) offers other
registered tools beside (or instead of) the built-in two, each listed by its schema.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from deepresearch.envs.documents import Document
from deepresearch.envs.protocols.base import Prompt, Protocol
from deepresearch.rewards import ProtocolTags, ToolSpec

# How this protocol shows the built-in tools (registered as ``search`` and ``browse``).
TOOL_SPECS = {
    "search": ToolSpec("web_search", "query", description="Search for information; returns the top results for each query.",
                       argument_description="One or more queries."),
    "browse": ToolSpec("web_browse", "url", takes_urls=True, description="Read web pages and return the passages relevant to the question.",
                       argument_description="URLs seen in search results."),
}

TAGS = ProtocolTags(
    name="tool_call",
    think="think",
    call="tool_call",
    observation="tool_response",
    answer="answer",
    tools=tuple(TOOL_SPECS.values()),
    search_tool="web_search",
)


def tool_schema(tool: ToolSpec) -> dict[str, Any]:
    """The OpenAI/Qwen function schema of one tool: its inputs are a list of strings."""
    argument = {"type": "array", "items": {"type": "string"}, "description": tool.argument_description}
    parameters = {"type": "object", "properties": {tool.argument: argument}, "required": [tool.argument]}
    return {"type": "function", "function": {"name": tool.name, "description": tool.description, "parameters": parameters}}


def offered_schemas(tags: ProtocolTags, browse: bool) -> list[dict[str, Any]]:
    """The function schemas a prompt lists: every tool of ``tags``, browsing ones only where pages can be read."""
    return [tool_schema(tool) for tool in tags.tools if browse or not tool.takes_urls]


def instructions(tags: ProtocolTags, browse: bool) -> str:
    """The system prompt, listing the protocol's tools."""
    tools = offered_schemas(tags, browse)
    return (
        "You answer questions by searching and reading. Think inside <think> </think>. You can call "
        "these tools:\n<tools>\n"
        + "\n".join(json.dumps(tool) for tool in tools)
        + "\n</tools>\nTo call one, write <tool_call>{\"name\": NAME, \"arguments\": ARGS}</tool_call> "
        "with ARGS as JSON; the result comes back inside <tool_response> </tool_response>. When you "
        "are sure, write the short final answer inside <answer> </answer>."
    )


def format_document(index: int, document: Document) -> str:
    source = f" ({document.id})" if document.id.startswith(("http://", "https://")) else ""
    return f"[{index}] {document.title}{source}\n{document.text}"


class ToolCallProtocol(Protocol):
    tags = TAGS
    tool_specs = TOOL_SPECS
    default_reward = "deepresearcher_strict"
    observation_role = "tool"
    observation_prefix = "\n<tool_response>\n"
    observation_suffix = "\n</tool_response>\n"

    def build_prompt(self, question: str, browse: bool = False) -> Prompt:
        system = instructions(self.tags, browse)
        text = f"{system}\n\nQuestion: {question}\n"
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        return Prompt(text=text, messages=messages)

    def format_results(self, queries: Sequence[str], results: Sequence[Sequence[Document]]) -> str:
        sections = []
        for query, documents in zip(queries, results):
            lines = [f'Results for "{query}":']
            lines += [format_document(i, d) for i, d in enumerate(documents, start=1)] or ["No results found."]
            sections.append("\n".join(lines))
        return "\n\n".join(sections)
