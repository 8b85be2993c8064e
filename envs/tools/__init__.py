"""What an env can do for the model: tools by registration, over one ``ToolBackend``.

``backend.py``: the backend the env core talks to (a local retriever, the web);
``base.py``: the ``Tool`` contract; ``registry.py``: ``register_tool``; ``builtin.py``:
``search`` and ``browse``, registered like any user tool.
"""

from deepresearch.envs.tools import builtin  # noqa: F401  (registers search and browse)
from deepresearch.envs.tools.backend import PageResult, RetrieverBackend, ToolBackend
from deepresearch.envs.tools.base import Tool, ToolContext, ToolUnavailable
from deepresearch.envs.tools.registry import TOOLS, get_tool, register_tool

__all__ = ["PageResult", "RetrieverBackend", "TOOLS", "Tool", "ToolBackend", "ToolContext", "ToolUnavailable", "get_tool", "register_tool"]
