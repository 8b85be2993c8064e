"""Renamed public names keep working for a while and say so, once per process each."""

from __future__ import annotations

import warnings

_warned: set[str] = set()


def warn_once(old: str, new: str, stacklevel: int = 3) -> None:
    """A ``DeprecationWarning`` that ``old`` is now ``new``, the first time ``old`` is used in this process."""
    if old in _warned:
        return
    _warned.add(old)
    warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=stacklevel)
