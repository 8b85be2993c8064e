"""A run's ``GRPOConfig`` from a YAML file plus ``key=value`` overrides (the verl/TRL habit).

    model: Qwen/Qwen2.5-7B-Instruct
    update:
      loss: {kl_coef: 0.001}
    recipe: {hardware: 8x H100 80GB, expected_wall_time: 20 h}    # not a knob: what the file is

Overrides use dotted paths into the nested dataclasses (``update.loss.kl_coef=0.001``) and
into dict-valued knobs (``env_kwargs.top_k=5``); values are read as YAML (``true``,
``[jsonl, wandb]``, ``null``). ``extends: base.yaml`` (relative to the file) merges the file
over another, dicts key by key, so a CPU variant restates only what it shrinks.

Every key is checked against the dataclass fields before anything is built: a typo or a
wrong type is an error that names the dotted key (and the closest known one), not a
``TypeError`` from a constructor or a knob silently ignored. Strings such as ``1e-6`` are
read as numbers where the field is a float (YAML 1.1 reads ``1e-6`` without a dot as a string).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deepresearch.agents.train.config import GRPOConfig

RECIPE_KEY = "recipe"
EXTENDS_KEY = "extends"


class ConfigError(ValueError):
    """A config file or override that does not fit ``GRPOConfig``; the message names the key."""


@dataclass(frozen=True)
class RecipeInfo:
    """What a recipe file reproduces and what it needs; logged with the run, never a knob."""

    name: str = ""
    paper: str = ""
    hardware: str = ""
    expected_wall_time: str = ""
    sources: tuple[str, ...] = ()
    notes: str = ""


@dataclass(frozen=True)
class RunFile:
    config: GRPOConfig
    recipe: RecipeInfo = field(default_factory=RecipeInfo)


def load_run_file(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunFile:
    """Read ``path`` (None: defaults only), apply ``overrides`` and build the checked config."""
    import yaml

    raw: dict[str, Any] = read_yaml_with_extends(Path(path)) if path is not None else {}
    for override in overrides:
        key, separator, text = override.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"override {override!r} is not key=value (e.g. update.loss.kl_coef=0.001)")
        set_dotted(raw, key.strip(), yaml.safe_load(text))
    recipe = build_dataclass(RecipeInfo, raw.pop(RECIPE_KEY, None) or {}, RECIPE_KEY)
    return RunFile(config=build_dataclass(GRPOConfig, raw, ""), recipe=recipe)


def with_overrides(config: GRPOConfig, overrides: dict[str, Any]) -> GRPOConfig:
    """``config`` with values at dotted paths replaced (``{"update.loss.kl_coef": 0.01}``), checked
    as a config file is."""
    tree = config.to_dict()
    for key, value in overrides.items():
        set_dotted(tree, key, value)
    return build_dataclass(GRPOConfig, tree, "")


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> GRPOConfig:
    return load_run_file(path, overrides).config


def read_yaml_with_extends(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's mapping, merged over the file it ``extends`` (recursively; cycles are an error)."""
    import yaml

    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: 'extends' forms a cycle through {[str(p) for p in seen]}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    loaded = {} if loaded is None else loaded
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of config keys, not {type(loaded).__name__}")
    base_name = loaded.pop(EXTENDS_KEY, None)
    if base_name is None:
        return loaded
    base = read_yaml_with_extends(path.parent / str(base_name), (*seen, path))
    return deep_merge(base, loaded)


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """``tree["a"]["b"] = value`` for ``"a.b"``, creating mappings on the way."""
    *parents, leaf = dotted.split(".")
    node = tree
    for depth, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {dotted!r}: {'.'.join(parents[: depth + 1])!r} is {child!r}, not a mapping")
        node = child
    node[leaf] = value


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


def config_to_yaml(config: GRPOConfig, recipe: RecipeInfo | None = None) -> str:
    """The resolved config as YAML that ``load_config`` reads back to an equal config."""
    document = config.to_dict()
    if recipe is not None and recipe != RecipeInfo():
        document[RECIPE_KEY] = dataclasses.asdict(recipe)
    return to_yaml(document)


def to_yaml(document: dict[str, Any]) -> str:
    """Plain YAML (tuples written as lists), keys in their given order.

    A value YAML cannot hold (an object passed in code, e.g. a protocol instance in
    ``env_kwargs``) is written as a string naming its class: the record stays readable
    and the run is not stopped, but that file does not reload into the same run.
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
    return f"<{type(value).__module__}.{type(value).__qualname__} object: not reloadable>"
