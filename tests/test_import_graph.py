"""No import cycles among our modules, lazy (function-level) imports included: a cycle dodged by importing
inside a function (``train/config.py`` <-> ``config_file.py`` <-> ``metrics_log.py`` once) still ties the
modules together. Imports under ``if TYPE_CHECKING:`` are for type checkers only and do not count."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO_ROOT

PACKAGES = {"deepresearch": "deepresearch", "envs": "deepresearch.envs", "rewards": "deepresearch.rewards", "agents": "deepresearch.agents"}
# ``open_store`` in the store's base module picks the SQLite or Redis subclass, which import the base: one known,
# deliberate pair of modules (a factory beside the interface it returns).
KNOWN_CYCLES = [{"deepresearch.envs.web.storage.store", "deepresearch.envs.web.storage.sqlite_store", "deepresearch.envs.web.storage.redis_store"}]


def modules() -> dict[str, Path]:
    found = {}
    for folder, prefix in PACKAGES.items():
        for path in (REPO_ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(REPO_ROOT / folder).with_suffix("").parts)
            found[".".join([prefix, *(parts[:-1] if parts[-1] == "__init__" else parts)])] = path
    return found


def runtime_imports(path: Path) -> set[str]:
    """Every ``deepresearch`` module named by an import statement outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
               for statement in block.body for node in ast.walk(statement)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("deepresearch"):
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.startswith("deepresearch")}
    return names


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_our_modules_import_each_other_without_cycles() -> None:
    known = modules()
    graph = {name: {target for target in runtime_imports(path) if target in known and target != name} for name, path in known.items()}
    assert "deepresearch.agents.train.typed_config" in graph["deepresearch.agents.train.metrics_log"]
    assert [sorted(c) for c in cycles(graph) if c not in KNOWN_CYCLES] == []


def test_the_cycle_finder_finds_a_lazy_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_the_dependency_direction_holds() -> None:
    """``rewards`` imports only itself and the pure-Python ``deepresearch.registry`` (never ``envs``: tools
    describe themselves to it with ``ToolSpec``); ``envs`` never imports ``agents``."""
    known = modules()
    for name, path in known.items():
        ours = {target for target in runtime_imports(path) if target in known}
        if name.startswith("deepresearch.rewards"):
            assert {t for t in ours if not t.startswith("deepresearch.rewards")} <= {"deepresearch.registry"}, name
        if name.startswith("deepresearch.envs"):
            assert not {t for t in ours if t.startswith("deepresearch.agents")}, name
