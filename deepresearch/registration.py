"""Registers ``DeepResearch-Wiki-v0`` and ``DeepResearch-Web-v0`` with Gymnasium.

Only string entry points are registered, so nothing of ``deepresearch.envs`` loads
until an env is made. Gymnasium itself (and numpy with it) is imported here only
if something else already imported it; otherwise registration waits until the
first ``import gymnasium``. That keeps ``import deepresearch.rewards`` — pure
Python, used by trainers that never build an env — free of both.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any, Sequence

WIKI_ENV_ID = "DeepResearch-Wiki-v0"
WEB_ENV_ID = "DeepResearch-Web-v0"


def register_envs() -> None:
    """Register both ids (idempotent); imports Gymnasium."""
    import gymnasium as gym

    if WIKI_ENV_ID not in gym.registry:
        gym.register(id=WIKI_ENV_ID, entry_point="deepresearch.envs.wiki:make_wiki_env")
    if WEB_ENV_ID not in gym.registry:
        gym.register(id=WEB_ENV_ID, entry_point="deepresearch.envs.web_env:make_web_env", nondeterministic=True)


class _RegisterWhenGymnasiumLoads(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A one-shot import hook: loads ``gymnasium`` as usual, then registers our ids."""

    def __init__(self) -> None:
        self._loader: importlib.abc.Loader | None = None

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if name != "gymnasium":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)  # by the remaining finders, as an import would
        if spec is None or spec.loader is None:
            return spec
        self._loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        assert self._loader is not None
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        assert self._loader is not None
        self._loader.exec_module(module)
        register_envs()


def register_now_or_on_gymnasium_import() -> None:
    if "gymnasium" in sys.modules:
        register_envs()
    elif not any(isinstance(finder, _RegisterWhenGymnasiumLoads) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterWhenGymnasiumLoads())
