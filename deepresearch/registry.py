"""Named extension objects: the one mechanism behind every extension point.

Tools (``deepresearch.envs.register_tool``), reward functions
(``deepresearch.rewards.register_reward``), policy-loss variants and their aggregations
(``deepresearch.agents.register_policy_loss`` / ``register_loss_aggregation``) and rollout
engines (``deepresearch.agents.register_engine``) each keep one ``Registry``. The
built-ins are registered the same way user code registers its own, so a config names
either kind alike. Pure Python: ``deepresearch.rewards`` uses it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """A read-only mapping ``name -> object`` that grows only through ``register``.

    ``kind`` names what it holds in error messages ("tool", "reward"...). Objects are
    checked when registered, so a wrong one fails there and not when a training run first
    uses it: ``signature`` (e.g. ``"(token_loss, mask, normalizers) -> scalar"``) requires a
    callable and names the call it must take; ``check`` runs any other test.
    """

    def __init__(self, kind: str, *, signature: str | None = None, check: Callable[[str, T], None] | None = None) -> None:
        self.kind = kind
        self._signature = signature
        self._check = check
        self._entries: dict[str, T] = {}

    def register(self, name: str, value: Any = None, *, replace: bool = False) -> Any:
        """Add ``value`` under ``name`` and return it; an existing name is an error unless ``replace``.

        Without ``value``, a decorator that registers what it decorates (``@LOSSES.register("mine")``).
        """
        if value is None:
            return lambda decorated: self.register(name, decorated, replace=replace)
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"a {self.kind} named {name!r} is already registered (pass replace=True to override it)")
        if self._signature is not None and not callable(value):
            raise TypeError(f"{self.kind} {name!r} must be callable as {self._signature}, not {type(value).__name__}")
        if self._check is not None:
            self._check(name, value)
        self._entries[name] = value
        return value

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests and notebooks that re-register); unknown names are an error."""
        self.lookup(name)
        del self._entries[name]

    def lookup(self, name: str) -> T:
        """The object named ``name``; a ValueError that lists the registered names when there is none."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            known = ", ".join(sorted(self._entries)) or "none"
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {known}") from None

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"
