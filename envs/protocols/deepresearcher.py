"""DeepResearcher (arXiv 2504.03160): Qwen tool calls with DeepResearcher's own tools and framing.

The model thinks in ``<think>``, then either calls a tool,
``<tool_call>{"name": "web_search", "arguments": {"query": ["..."]}}</tool_call>`` or
``browse_webpage`` with ``{"url_list": ["https://..."]}`` (lists only, as DeepResearcher
requires), or answers in ``<answer>``. Results come back in a tool turn rendered as
Qwen2.5's chat template renders it (``<|im_end|>\\n<|im_start|>user\\n<tool_response>\\n``
… ``\\n</tool_response><|im_end|>\\n<|im_start|>assistant\\n``), holding what
DeepResearcher's handler returns: the Python text of a list of
``{"search_query", "web_page_info_list": [{"title", "url", "quick_summary"}]}`` (or, for
a page, ``{"url", "information": [{"page_number", "page_summary"}]}``). The default
reward is DeepResearcher's (``deepresearcher``).

The prompt is our wording by default; ``prompt_template=`` takes the original
(DeepResearcher keeps its system prompt in ``scrl/llm_agent/generation.py``, with the
date filled in, and the bare question as the user message). Where we differ: the
original forces every turn to start with ``<think>`` and re-renders the model's turns
through the chat template, ends the episode on any malformed turn, runs only the first
3 queries, and has no stop strings; here the policy's text is kept as written, a turn
ends at ``</tool_call>`` or ``</answer>``, a malformed turn gets feedback in a tool turn,
and empty query lists are invalid.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

from deepresearch.envs.documents import Document
from deepresearch.envs.protocols.base import Prompt, Protocol
from deepresearch.envs.protocols.prompting import PromptTemplate, optional_template
from deepresearch.envs.protocols.tool_call import offered_schemas
from deepresearch.envs.tools import PageResult
from deepresearch.rewards import ProtocolTags, ToolSpec

# DeepResearcher's names and argument shapes for the built-in tools (registered as ``search`` and ``browse``).
TOOL_SPECS = {
    "search": ToolSpec("web_search", "query", list_only=True,
                       description="Search the web; returns the top pages for each query with their title, URL and a short summary.",
                       argument_description="The queries to search for."),
    "browse": ToolSpec("browse_webpage", "url_list", takes_urls=True, list_only=True,
                       description="Read pages from the search results and return what they say about the question.",
                       argument_description="URLs that appeared in the search results."),
}

TAGS = ProtocolTags(
    name="deepresearcher",
    think="think",
    call="tool_call",
    observation="tool_response",
    answer="answer",
    tools=tuple(TOOL_SPECS.values()),
    search_tool="web_search",
)


def instructions(tags: ProtocolTags, browse: bool) -> str:
    """Our system prompt, listing the protocol's tools (browsing only where pages can be read)."""
    tools = offered_schemas(tags, browse)
    return (
        "You are a research assistant. The question needs research before it can be answered: plan, search "
        "the web and read what you find.\n\nEvery reply takes one of two forms. Either think, then call one tool:\n"
        "<think>\nyour reasoning\n</think>\n<tool_call>\n{\"name\": NAME, \"arguments\": ARGS}\n</tool_call>\n"
        "or think, then give the final answer:\n<think>\nyour reasoning\n</think>\n<answer>\nthe answer\n</answer>\n\n"
        "The answer is only the words, number or phrase asked for, with no explanation; for a yes-or-no "
        "question, yes or no.\n\nTools (ARGS is a JSON object):\n<tools>\n"
        + "\n".join(json.dumps(tool) for tool in tools)
        + "\n</tools>"
    )


class DeepResearcherProtocol(Protocol):
    tags = TAGS
    tool_specs = TOOL_SPECS
    default_reward = "deepresearcher"
    observation_role = "tool"
    observation_prefix = "<|im_end|>\n<|im_start|>user\n<tool_response>\n"
    observation_suffix = "\n</tool_response><|im_end|>\n<|im_start|>assistant\n"

    def __init__(self, prompt_template: PromptTemplate | str | os.PathLike[str] | None = None) -> None:
        self.prompt_template = optional_template(prompt_template)

    def build_prompt(self, question: str, browse: bool = False) -> Prompt:
        if self.prompt_template is not None:
            return self.prompt_template.render(question)
        system = instructions(self.tags, browse)
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        return Prompt(text=f"{system}\n\nQuestion: {question}\n", messages=messages)

    def format_results(self, queries: Sequence[str], results: Sequence[Sequence[Document]]) -> str:
        """DeepResearcher's search result: one entry per query with its pages (Python text of the list)."""
        entries = [
            {
                "search_query": query,
                "web_page_info_list": [{"title": d.title, "url": d.id, "quick_summary": d.text} for d in documents],
            }
            for query, documents in zip(queries, results)
        ]
        return str(entries)

    def format_pages(self, pages: Sequence[PageResult]) -> str:
        """DeepResearcher's browse result: one entry per URL with what was read (or why not)."""
        entries: list[dict[str, object]] = []
        for page in pages:
            if page.error:
                entries.append({"url": page.url, "information": [], "error": page.error})
            else:
                entries.append({"url": page.url, "information": [{"page_number": 1, "page_summary": page.text}]})
        return str(entries)
