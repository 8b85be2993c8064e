"""A tool is one object: what the model is told about it, how a call is read, what it does, what comes back.

Subclass :class:`Tool`, set its class attributes, write ``execute`` (and ``render`` when its
result is not already the text to show), then ``register_tool(MyTool())``. Tool-calling
protocols (``tool_call``, ``deepresearcher``) offer any registered tool by name
(``gym.make(..., protocol="tool_call", tools=["search", "calculator"])``): its schema goes
into the prompt, the model's JSON call is checked against it (by ``deepresearch.rewards``
too, from the ``ToolSpec`` the tool describes itself with), the env runs it by name and
frames what it returns as env text (masked out of the loss). The built-in ``search`` and
``browse`` are registrations of this same class (``builtin.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from deepresearch.envs.deadline import Deadline
from deepresearch.envs.tools.backend import ToolBackend
from deepresearch.rewards import ToolSpec

if TYPE_CHECKING:
    from deepresearch.envs.protocols.base import Protocol

URL_PREFIXES = ("http://", "https://")


class ToolUnavailable(Exception):
    """Raised by ``execute`` when the tool cannot run here (no browsing in a local env); the message is shown to the model."""


@dataclass(frozen=True)
class ToolContext:
    """What one call may use.

    ``backend``: the env's search/browse backend; ``protocol``: the env's protocol (for
    rendering in its own format); ``question``: the episode's question; ``top_k``: results
    per search; ``last_query``: the episode's latest search query (what browsing reads a
    page for); ``deadline``: made when the env step began (``EnvConfig.tool_deadline_s``):
    a tool that waits (network, a subprocess) waits at most ``deadline.remaining()``.
    """

    backend: ToolBackend
    protocol: Protocol
    question: str
    top_k: int
    last_query: str | None
    deadline: Deadline


class Tool(ABC):
    """One callable tool. Class attributes describe it to the model and to the parsers:

    * ``name``: its registry name, and the name the model calls it by unless a protocol
      presents it under its own (``tool_call`` shows ``search`` as ``web_search``);
    * ``description`` / ``argument`` / ``argument_description``: the prompt's function
      schema; a call is ``{"name": NAME, "arguments": {ARGUMENT: [inputs...]}}``;
    * ``takes_urls``: inputs must be http(s) URLs (and the tool is offered only where
      pages can be browsed);
    * ``counts_as_search``: its calls count in ``reward_components["searches"]`` and its
      last input is the ``last_query`` later calls see.
    """

    name: ClassVar[str] = ""  # set it: registering a tool without a name is an error
    description: ClassVar[str] = ""
    argument: ClassVar[str] = "input"
    argument_description: ClassVar[str] = ""
    takes_urls: ClassVar[bool] = False
    counts_as_search: ClassVar[bool] = False

    @property
    def spec(self) -> ToolSpec:
        """The tool as the model and the rewards see it (a protocol may present it otherwise)."""
        return ToolSpec(
            self.name,
            self.argument,
            takes_urls=self.takes_urls,
            description=self.description,
            argument_description=self.argument_description,
        )

    def inputs_from_text(self, content: str, tag: str) -> tuple[str, ...]:
        """The inputs of a tag call, ``<tag>content</tag>`` (tag protocols); ValueError in words for the model.

        URLs: whitespace-separated http(s) URLs; anything else: the stripped text, one input.
        """
        if self.takes_urls:
            urls = tuple(content.split())
            if not urls:
                raise ValueError(f"Give one or more URLs inside the {tag} tags.")
            if not all(url.startswith(URL_PREFIXES) for url in urls):
                raise ValueError("Only http(s) URLs can be browsed.")
            return urls
        text = content.strip()
        if not text:
            raise ValueError(f"The {self.name} {self.argument} is empty.")
        return (text,)

    @abstractmethod
    def execute(self, inputs: tuple[str, ...], context: ToolContext) -> Any:
        """Run the call on its non-empty ``inputs``. Raising is allowed: the env shows the model what failed."""

    def render(self, result: Any, inputs: tuple[str, ...], context: ToolContext) -> str:
        """The observation body for ``result`` (the protocol frames it); by default ``str(result)``."""
        return str(result)
