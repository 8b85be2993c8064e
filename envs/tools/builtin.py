"""The built-in tools, registered like any user tool: ``search`` (the env's retriever or web search) and
``browse`` (reading pages, where the backend can)."""

from __future__ import annotations

from collections.abc import Sequence

from deepresearch.envs.documents import Document
from deepresearch.envs.tools.backend import PageResult
from deepresearch.envs.tools.base import Tool, ToolContext, ToolUnavailable
from deepresearch.envs.tools.registry import register_tool


class SearchTool(Tool):
    """Top-``k`` documents per query from the env's backend, shown in the protocol's own result format."""

    name = "search"
    description = "Search for information; returns the top results for each query."
    argument = "query"
    argument_description = "One or more queries."
    counts_as_search = True

    def execute(self, inputs: tuple[str, ...], context: ToolContext) -> list[list[Document]]:
        return context.backend.search(list(inputs), context.top_k)

    def render(self, result: Sequence[Sequence[Document]], inputs: tuple[str, ...], context: ToolContext) -> str:
        return context.protocol.format_results(inputs, result)


class BrowseTool(Tool):
    """Pages read by the env's backend, reduced to what answers the question (or why each could not be read)."""

    name = "browse"
    description = "Read web pages and return the passages relevant to the question."
    argument = "url"
    argument_description = "URLs seen in search results."
    takes_urls = True

    def execute(self, inputs: tuple[str, ...], context: ToolContext) -> list[PageResult]:
        if not context.backend.supports_browse:
            raise ToolUnavailable("Browsing is not available in this environment; use search.")
        return context.backend.browse(list(inputs), context.question, context.last_query)

    def render(self, result: Sequence[PageResult], inputs: tuple[str, ...], context: ToolContext) -> str:
        return context.protocol.format_pages(result)


register_tool(SearchTool())
register_tool(BrowseTool())
