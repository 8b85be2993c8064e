"""API keys from environment variables, checked once, at construction.

A key pasted with a trailing newline used to reach the HTTP header, where
``requests`` refused it with a message quoting the key, which then went to the
logs; the model was told "malformed JSON". Surrounding whitespace is stripped
here; anything else that cannot be a header value is refused with an error that
names where the key came from, never the key.
"""

from __future__ import annotations

import os


def clean_api_key(value: str, source: str) -> str:
    """``value`` without surrounding whitespace; refused if it is not printable ASCII (``source`` names it)."""
    key = value.strip()
    for position, character in enumerate(key):
        if not "\x21" <= character <= "\x7e":
            raise ValueError(
                f"the API key in {source} has a space, control or non-ASCII character at position {position}; "
                "API keys are printable ASCII (the value is not shown)"
            )
    return key


def read_api_key(variable: str, required: bool = True) -> str:
    """The checked key in ``$variable``; ``""`` when it is unset or blank and not ``required``."""
    key = clean_api_key(os.environ.get(variable, ""), f"the environment variable {variable}")
    if not key and required:
        raise ValueError(f"the API key is missing: set the environment variable {variable}")
    return key
