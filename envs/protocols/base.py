"""A tag protocol: how the model asks for tools and answers, and how results are shown.

A protocol owns its whole vocabulary: one ``ProtocolTags`` value (tag names, tools),
from which its stop strings and turn parsing follow, the framing of what the env
appends, the prompt (base and chat forms) and its default reward preset. The format
check of a whole trajectory and answer extraction live in ``deepresearch.rewards``
(pure Python, shared with trainers that never build an env) and receive
``protocol.tags``, so a protocol defined in user code is scored like ours.
"""

from __future__ import annotations

import copy
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from deepresearch.deprecations import warn_once
from deepresearch.envs.documents import Document
from deepresearch.envs.tools import PageResult, Tool, get_tool
from deepresearch.rewards import ProtocolTags, ToolSpec, extract_boxed, parse_tool_call
from deepresearch.rewards.blocks import blocks, first_block

ANSWER, INVALID = "answer", "invalid"


@dataclass(frozen=True, slots=True, init=False)
class Action:
    """One parsed policy turn.

    ``kind`` is ``"answer"``, ``"invalid"`` (``error`` explains it to the model) or the
    registered name of the tool to run on ``inputs``; ``called`` is the name the policy
    wrote for it (a call tag such as ``search``, or a tool-call name such as ``web_search``).
    """

    kind: str
    inputs: tuple[str, ...]
    answer: str | None
    error: str | None
    called: str | None

    def __init__(
        self,
        kind: str,
        inputs: Sequence[str] = (),
        answer: str | None = None,
        error: str | None = None,
        called: str | None = None,
        *,
        queries: Sequence[str] | None = None,
        urls: Sequence[str] | None = None,
    ) -> None:
        if queries is not None or urls is not None:
            warn_once("Action(queries=..., urls=...)", "Action(inputs=...)")
            inputs = tuple(queries or ()) + tuple(urls or ())
        for name, value in (("kind", kind), ("inputs", tuple(inputs)), ("answer", answer), ("error", error), ("called", called)):
            object.__setattr__(self, name, value)

    @property
    def is_tool_call(self) -> bool:
        return self.kind not in (ANSWER, INVALID)

    @property
    def queries(self) -> tuple[str, ...]:
        """Deprecated: what it always was, a search's inputs (empty for any other action)."""
        warn_once("Action.queries", "Action.inputs")
        return self.inputs if self.kind == "search" else ()

    @property
    def urls(self) -> tuple[str, ...]:
        """Deprecated: what it always was, a browse's inputs (empty for any other action)."""
        warn_once("Action.urls", "Action.inputs")
        return self.inputs if self.kind == "browse" else ()

    def to_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"kind": self.kind}
        if self.called is not None:
            info["called"] = self.called
        if self.inputs:
            info["inputs"] = list(self.inputs)
        if self.kind == ANSWER:
            info["answer"] = self.answer
        if self.error:
            info["error"] = self.error
        return info


def invalid(error: str) -> Action:
    return Action(kind=INVALID, error=error)


@dataclass(frozen=True, slots=True)
class Prompt:
    """``text`` is the base-model prompt (the reset observation); ``messages`` the chat form."""

    text: str
    messages: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TagMatch:
    tag: str
    content: str
    start: int
    end: int


def first_complete_tag(text: str, tags: Sequence[str]) -> TagMatch | None:
    """The earliest ``<tag>…</tag>`` among ``tags`` in ``text`` (non-greedy), if any.

    The earliest, because a turn ends at the first stop string: whatever a model
    writes after its first complete action is never acted on. The same match as
    ``re.search("<(a|b)>(.*?)</\\1>")``, found with one forward search per tag, so a turn
    repeating an opening tag thousands of times costs no more than reading it once.
    """
    found = [(block, tag) for tag in tags if (block := first_block(text, f"<{tag}>", f"</{tag}>")) is not None]
    if not found:
        return None
    block, tag = min(found, key=lambda pair: pair[0].start)
    return TagMatch(tag, block.content(text), block.start, block.end)


def unclosed_tag(text: str, tags: Sequence[str]) -> str | None:
    """A tag opened in ``text`` but never closed (to tell the model exactly what is wrong)."""
    for tag in tags:
        if f"<{tag}>" in text and f"</{tag}>" not in text:
            return tag
    return None


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, saying so, so a long page cannot flood the context."""
    if len(text) <= limit:
        return text
    marker = " …[truncated]"
    return text[: max(0, limit - len(marker))] + marker


class Protocol(ABC):
    """Base class: subclasses set ``tags``, the observation framing and the prompt wording.

    Everything that follows from the vocabulary (stop strings, turn parsing, the
    well-formed turns a scripted policy writes, the observation blocks) is derived
    here, so a new protocol is a ``ProtocolTags`` value, a prompt and a result layout.

    Tools come from the registry (``deepresearch.envs.register_tool``). A tag protocol
    runs ``search`` for its call tag and ``browse`` for its browse tag; a tool-calling
    protocol (``tags.tools`` set) offers registered tools by name: ``tool_specs`` says how
    it presents the ones it knows (``tool_call`` shows ``search`` as ``web_search``), any
    other is shown by its own ``Tool.spec``, and ``with_tools`` picks which it offers.
    """

    tags: ClassVar[ProtocolTags]
    # Tool-calling protocols: registered tool name -> the spec the model sees it as (name, argument, wording).
    tool_specs: ClassVar[Mapping[str, ToolSpec]] = {}
    # The reward preset used when an env is made without ``reward=`` (see ``deepresearch.rewards``).
    default_reward: ClassVar[str] = "f1"
    # The chat role of the env's text: "assistant" means it continues the model's turn
    # (ReSearch, Search-R1); "tool" means it opens a new tool turn (tool calling).
    observation_role: ClassVar[str] = "assistant"
    # The exact text around an observation's body: ``prefix + body + suffix``.
    observation_prefix: ClassVar[str]
    observation_suffix: ClassVar[str]

    @property
    def name(self) -> str:
        return self.tags.name

    @property
    def stop(self) -> tuple[str, ...]:
        """A turn ends at the first closing action tag (a search, a browse, an answer)."""
        return tuple(f"</{tag}>" for tag in self.tags.action_tags)

    def split_response(self, response: str) -> list[tuple[str, str]]:
        """Split a finished response into ``("policy" | "env", text)`` turns, in order.

        Lets recorded transcripts (another framework's rollouts, teacher data) be
        replayed turn by turn or masked without the segments that produced them. An env
        block is the observation framing exactly as ``wrap_observation`` renders it.
        """
        turns: list[tuple[str, str]] = []
        position = 0
        for block in blocks(response, self.observation_prefix, self.observation_suffix):
            if block.start > position:
                turns.append(("policy", response[position : block.start]))
            turns.append(("env", response[block.start : block.end]))
            position = block.end
        if position < len(response):
            turns.append(("policy", response[position:]))
        return turns

    @abstractmethod
    def build_prompt(self, question: str, browse: bool = False) -> Prompt:
        """The prompt; ``browse`` says whether to offer page browsing (only envs that can)."""

    @property
    def action_hint(self) -> str:
        """What to tell a model whose turn has no action (names the tags, writes no tag pair)."""
        kinds = "a tool call" if self.tags.uses_tools else "a search query"
        return f"Write {kinds} inside the {self.tags.call} tags or the final answer inside the {self.tags.answer} tags."

    def tool_names(self) -> dict[str, str]:
        """What the policy writes -> the registered tool it runs: each call tag (tag protocols) or tool-call name."""
        if not self.tags.uses_tools:
            names = {self.tags.call: "search"}
            if self.tags.browse:
                names[self.tags.browse] = "browse"
            return names
        registered_as = {spec.name: name for name, spec in self.tool_specs.items()}
        return {spec.name: registered_as.get(spec.name, spec.name) for spec in self.tags.tools}

    def tool(self, called: str) -> Tool:
        """The registered tool behind a name the policy wrote (a ValueError for one this protocol does not offer)."""
        names = self.tool_names()
        if called not in names:
            raise ValueError(f"protocol {self.name!r} offers no tool called {called!r}; it offers {sorted(names)}")
        return get_tool(names[called])

    def with_tools(self, names: Sequence[str]) -> Protocol:
        """A copy offering the registered tools ``names``, in that order (tool-calling protocols).

        Each is presented by this protocol's ``tool_specs`` when it has one, else by the tool's
        own ``spec``; the first that ``counts_as_search`` is the one the rewards count as a search.
        A tag protocol writes its tools as tags, so it accepts only the ones it already runs.
        """
        names = list(names)
        offered = sorted(set(self.tool_names().values()))
        if not self.tags.uses_tools:
            if sorted(set(names)) != offered:
                raise ValueError(
                    f"protocol {self.name!r} writes its tools as tags ({offered}); offer {names} "
                    "with a tool-calling protocol (tool_call, deepresearcher)"
                )
            return self
        if not names or len(set(names)) != len(names):
            raise ValueError(f"tools must be distinct registered names, at least one; got {names}")
        tools = [get_tool(name) for name in names]
        specs = tuple(self.tool_specs.get(tool.name, tool.spec) for tool in tools)
        search = next((spec.name for spec, tool in zip(specs, tools) if tool.counts_as_search), None)
        chosen = copy.copy(self)
        chosen.tags = replace(self.tags, tools=specs, search_tool=search)
        return chosen

    def parse(self, text: str) -> Action:
        """Parse one policy turn; never raises: malformed text becomes ``invalid``."""
        match = first_complete_tag(text, self.tags.action_tags)
        if match is None:
            tag = unclosed_tag(text, self.tags.action_tags)
            return invalid(f"The {tag} tag was opened but never closed." if tag else self.action_hint)
        if match.tag == self.tags.answer:
            return self.answer_from(match.content)
        if self.tags.uses_tools:
            return self.action_from_tool_call(match.content)
        tool = self.tool(match.tag)
        try:
            inputs = tool.inputs_from_text(match.content, match.tag)
        except ValueError as error:
            return invalid(str(error))
        return Action(kind=tool.name, inputs=inputs, called=match.tag)

    def answer_from(self, content: str) -> Action:
        """The answer action for an answer block's content (``\\boxed{}`` required when the tags say so)."""
        if not self.tags.boxed_answer:
            return Action(kind=ANSWER, answer=content.strip())
        answer = extract_boxed(content)
        if answer is None:
            return Action(kind=ANSWER, answer=None, error="The answer has no \\boxed{}.")
        return Action(kind=ANSWER, answer=answer)

    def action_from_tool_call(self, payload: str) -> Action:
        """The reward's own tool-call parser, so the env and the format check never disagree."""
        try:
            spec, inputs = parse_tool_call(payload, self.tags)
        except ValueError as error:
            return invalid(f"Invalid tool call: {error}.")
        return Action(kind=self.tool(spec.name).name, inputs=tuple(item.strip() for item in inputs), called=spec.name)

    def search_action(self, query: str) -> str:
        """The text of a well-formed search turn (the inverse of ``parse``; used by scripted policies)."""
        tags = self.tags
        if tags.tool(tags.search_tool) is None:
            return f"<{tags.call}> {query} </{tags.call}>"
        return self.tool_action(tags.search_tool, [query])

    def tool_action(self, name: str, inputs: Sequence[str]) -> str:
        """The text of a well-formed call of tool ``name`` with ``inputs`` (tool-calling protocols)."""
        tool = self.tags.tool(name)
        if tool is None:
            raise ValueError(f"protocol {self.name!r} has no tool {name!r}")
        call = {"name": tool.name, "arguments": {tool.argument: list(inputs)}}
        return f"<{self.tags.call}>{json.dumps(call, ensure_ascii=False)}</{self.tags.call}>"

    def answer_action(self, answer: str) -> str:
        """The text of a well-formed final-answer turn."""
        body = f"\\boxed{{{answer}}}" if self.tags.boxed_answer else answer
        return f"<{self.tags.answer}> {body} </{self.tags.answer}>"

    @abstractmethod
    def format_results(self, queries: Sequence[str], results: Sequence[Sequence[Document]]) -> str:
        """The body shown for search results."""

    def format_pages(self, pages: Sequence[PageResult]) -> str:
        """The body shown for browsed pages (or why each could not be read)."""
        parts = []
        for page in pages:
            content = f"Could not read {page.url}: {page.error}" if page.error else page.text
            parts.append(f"Page: {page.url}\n{content}")
        return "\n\n".join(parts)

    def wrap_observation(self, body: str) -> str:
        """The exact text appended to the transcript for a tool result."""
        return self.observation_prefix + body + self.observation_suffix

    def wrap_error(self, message: str) -> str:
        """The exact text appended after an invalid action (feedback mode)."""
        return self.wrap_observation(message)

    def observation_messages(self, body: str) -> list[dict[str, str]]:
        """Chat messages the env adds for this observation ([] when it continues the turn)."""
        if self.observation_role == "assistant":
            return []
        return [{"role": self.observation_role, "content": body}]
