"""skyrl 0.3.0 declares Python >= 3.11 but fails to import there: pydantic (>= 2.0) refuses a
model field typed with ``typing.TypedDict`` before Python 3.12 (``skyrl/tinker/types.py``,
``MultiModalKwargs``) and asks for ``typing_extensions.TypedDict``. This machine's torch CPU
build is for Python 3.11, so the tests give SkyRL that class under the ``typing`` name
before importing it. Import this module before any ``skyrl`` module; nothing else changes.
"""

from __future__ import annotations

import sys
import typing

import typing_extensions

if sys.version_info < (3, 12):
    typing.TypedDict = typing_extensions.TypedDict  # type: ignore[misc]
