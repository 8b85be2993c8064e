"""Dataclasses built from plain mappings with every key and value checked, and plain YAML back out.

``build_dataclass(cls, mapping, path)`` checks each key against ``cls``'s typed fields
and converts nested dataclasses, tuples and numeric strings; a typo or a wrong type is a
``ConfigError`` naming the dotted key (and the closest known one), not a ``TypeError``
from a constructor. Nothing here knows ``GRPOConfig``: the run config, its file reader
(``config_file.py``) and the metrics logger all use it without importing each other.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal


class ConfigError(ValueError):
    """A config file or override that does not fit ``GRPOConfig``; the message names the key."""


def build_dataclass(cls: type, values: Any, path: str) -> Any:
    """``cls(**values)`` after checking every key and value against ``cls``'s typed fields."""
    if isinstance(values, cls):
        return values
    if not isinstance(values, dict):
        raise ConfigError(f"{path or 'the config'}: expected a mapping of {cls.__name__} fields, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    arguments = {}
    for key, value in values.items():
        dotted = f"{path}.{key}" if path else str(key)
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {(f'{path}.' if path else '') + close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key {dotted!r}{hint}; {cls.__name__} has: {', '.join(known)}")
        arguments[key] = convert(hints[key], value, dotted)
    try:
        return cls(**arguments)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid {path or cls.__name__}: {error}") from None


def convert(hint: Any, value: Any, path: str) -> Any:
    """``value`` checked (and, for dataclasses, tuples and numeric strings, converted) to ``hint``."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, path)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(arguments, value, path)
    if origin is Literal:
        if value not in arguments:
            raise ConfigError(f"{path}: must be one of {list(arguments)}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        item = arguments[0] if arguments else Any
        items = [convert(item, element, f"{path}[{i}]") for i, element in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    return _convert_scalar(hint, value, path)


def _convert_union(options: tuple[Any, ...], value: Any, path: str) -> Any:
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{path}: must not be null")
    errors = []
    for option in (o for o in options if o is not type(None)):
        try:
            return convert(option, value, path)
        except ConfigError as error:
            errors.append(str(error))
    raise ConfigError(" / ".join(errors))


def _convert_scalar(hint: Any, value: Any, path: str) -> Any:
    if hint is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (hint in (int, float) and isinstance(value, bool)) or not isinstance(value, hint):
        raise ConfigError(f"{path}: expected {hint.__name__}, got {value!r} ({type(value).__name__})")
    return value


def to_yaml(document: dict[str, Any]) -> str:
    """Plain YAML (tuples written as lists), keys in their given order.

    A value YAML cannot hold (an object passed in code, e.g. a protocol instance or a reward
    function in ``env_kwargs``) is written as a string naming its class or function: the
    record stays readable and the run is not stopped, but that file does not reload into the
    same run (register the object and pass its name to make it reloadable).
    """
    import yaml

    return yaml.safe_dump(_plain(document), sort_keys=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        return f"<{value.__module__}.{value.__qualname__}: not reloadable>"
    return f"<{type(value).__module__}.{type(value).__qualname__} object: not reloadable>"
