"""Tag protocols, selected by name: ``research``, ``search_r1``, ``deepresearcher``, ``tool_call``; or pass your own instance."""

from __future__ import annotations

from deepresearch.envs.protocols.base import Action, Prompt, Protocol
from deepresearch.envs.protocols.deepresearcher import DeepResearcherProtocol
from deepresearch.envs.protocols.prompting import PromptTemplate
from deepresearch.envs.protocols.research import ResearchProtocol
from deepresearch.envs.protocols.search_r1 import SearchR1Protocol
from deepresearch.envs.protocols.tool_call import ToolCallProtocol

PROTOCOLS: dict[str, type[Protocol]] = {
    cls.tags.name: cls for cls in (ResearchProtocol, SearchR1Protocol, DeepResearcherProtocol, ToolCallProtocol)
}


def get_protocol(name: str | Protocol) -> Protocol:
    """A protocol instance by name (an instance passes through, for custom protocols)."""
    if isinstance(name, Protocol):
        return name
    try:
        return PROTOCOLS[name]()
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; choose one of {sorted(PROTOCOLS)} or pass a Protocol instance") from None


__all__ = [
    "Action",
    "DeepResearcherProtocol",
    "PROTOCOLS",
    "Prompt",
    "PromptTemplate",
    "Protocol",
    "ResearchProtocol",
    "SearchR1Protocol",
    "ToolCallProtocol",
    "get_protocol",
]
