"""A protocol's vocabulary as one value: the tags it writes and reads, and its tools.

Each protocol (``deepresearch.envs.protocols``) owns one ``ProtocolTags`` and every
reward function receives it, so a protocol defined in user code, with tag names of
its own, is parsed, checked and scored like the built-in ones. Only names live
here; the rules live in ``format_checks`` and ``extraction``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

URL_PREFIXES = ("http://", "https://")


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model calls with JSON: its name and the argument holding its inputs.

    ``takes_urls`` marks a browsing tool, whose inputs must be http(s) URLs;
    ``list_only`` refuses a bare string where a list is expected (DeepResearcher's
    tools); the descriptions are what a prompt shows the model.
    """

    name: str
    argument: str
    takes_urls: bool = False
    description: str = ""
    argument_description: str = ""
    list_only: bool = False


@dataclass(frozen=True)
class ProtocolTags:
    """Tag names of one protocol (written without angle brackets).

    ``call`` is what the policy writes to act (a search, or a JSON tool call when
    ``tools`` is set), ``observation`` the block the env writes back, ``answer`` the
    final answer, and ``boxed_answer`` whether the answer must wrap its final value in
    ``\\boxed{...}``. ``browse`` is a second call tag (a URL to read) for tag protocols
    on the web; its result comes back in ``observation`` too. ``search_tool`` names
    the tool among ``tools`` that counts as a search.
    """

    name: str
    think: str
    call: str
    observation: str
    answer: str
    boxed_answer: bool = False
    browse: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    search_tool: str | None = None
    _tool_by_name: Mapping[str, ToolSpec] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        names = self.names
        if len(set(names)) != len(names) or not all(re.fullmatch(r"[A-Za-z_][\w.-]*", tag) for tag in names):
            raise ValueError(f"protocol {self.name!r}: tag names must be distinct identifiers, got {names}")
        object.__setattr__(self, "_tool_by_name", {tool.name: tool for tool in self.tools})
        if self.search_tool is not None and self.search_tool not in self._tool_by_name:
            raise ValueError(f"protocol {self.name!r}: search_tool {self.search_tool!r} is not one of its tools")

    @property
    def calls(self) -> tuple[str, ...]:
        return (self.call, self.browse) if self.browse else (self.call,)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.think, *self.calls, self.observation, self.answer)

    @property
    def action_tags(self) -> tuple[str, ...]:
        """Tags that end a policy turn: the calls and the answer."""
        return (*self.calls, self.answer)

    @property
    def uses_tools(self) -> bool:
        """True when ``call`` holds a JSON tool call rather than a plain query."""
        return bool(self.tools)

    def tool(self, name: object) -> ToolSpec | None:
        return self._tool_by_name.get(name) if isinstance(name, str) else None


# Chat-template special tokens written as ``<|name|>`` (ChatML/Qwen, Llama 3, Phi), with
# the role name some templates put after a turn opener. Decoded chat transcripts carry
# them between turns; the checks read them as whitespace, so a tool turn or a trailing
# end-of-turn token is never a format error.
CHAT_MARKUP = re.compile(r"<\|[A-Za-z0-9_]+\|>(?:(?:system|user|assistant|tool|ipython)(?=<\||\n))?\n?")


def parse_tool_call(payload: str, tags: ProtocolTags) -> tuple[ToolSpec, list[str]]:
    """Parse the JSON inside a tool-call block into ``(tool, inputs)``.

    Raises ValueError with a human-readable reason when the JSON does not parse, the
    tool is unknown, or its argument is missing, empty, not strings, or (for a
    browsing tool) not http(s) URLs. A bare string argument counts as a list of one
    unless the tool is ``list_only``.
    """
    try:
        call = json.loads(payload)
    except json.JSONDecodeError as error:
        raise ValueError(f"tool call is not valid JSON ({error.msg})") from None
    if not isinstance(call, dict):
        raise ValueError("tool call JSON is not an object")
    tool = tags.tool(call.get("name"))
    if tool is None:
        known = ", ".join(spec.name for spec in tags.tools)
        raise ValueError(f"unknown tool {call.get('name')!r}; known tools: {known}")
    arguments = call.get("arguments")
    if not isinstance(arguments, dict) or tool.argument not in arguments:
        raise ValueError(f"tool {tool.name} needs arguments {{{tool.argument!r}: [...]}}")
    inputs = arguments[tool.argument]
    if isinstance(inputs, str) and not tool.list_only:
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        shape = "a non-empty list" if tool.list_only else "a string or a non-empty list"
        raise ValueError(f"tool {tool.name} argument {tool.argument!r} must be {shape}")
    if not all(isinstance(item, str) and item.strip() for item in inputs):
        raise ValueError(f"tool {tool.name} argument {tool.argument!r} must hold non-empty strings")
    if tool.takes_urls and not all(item.strip().startswith(URL_PREFIXES) for item in inputs):
        raise ValueError(f"tool {tool.name} needs http(s) URLs")
    return tool, inputs
