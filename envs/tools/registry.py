"""The registered tools, by name: ``register_tool(MyTool())`` makes ``MyTool.name`` available to every protocol."""

from __future__ import annotations

from deepresearch.envs.tools.base import Tool
from deepresearch.registry import Registry


def _require_tool(tool: object) -> None:
    if not isinstance(tool, Tool):
        raise TypeError(f"register a Tool instance (a subclass of deepresearch.envs.Tool), not {type(tool).__name__}")


def _check_tool(name: str, tool: object) -> None:
    _require_tool(tool)
    if tool.name != name:
        raise ValueError(f"tool {tool.name!r} registered under another name ({name!r})")


TOOLS: Registry[Tool] = Registry("tool", check=_check_tool)


def register_tool(tool: Tool, *, replace: bool = False) -> Tool:
    """Register ``tool`` under ``tool.name``; a name already taken is an error unless ``replace``."""
    _require_tool(tool)
    return TOOLS.register(tool.name, tool, replace=replace)


def get_tool(name: str) -> Tool:
    """The tool registered as ``name``; a ValueError lists the registered tools."""
    return TOOLS.lookup(name)
