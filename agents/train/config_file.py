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
``TypeError`` from a constructor or a knob silently ignored (``typed_config.py``). Strings
such as ``1e-6`` are read as numbers where the field is a float (YAML 1.1 reads ``1e-6``
without a dot as a string). ``imports: [my_package.extensions]`` imports modules first, so
the tools, rewards, losses and engines they register can be named in the same file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepresearch.agents.train.config import GRPOConfig, import_plugins
from deepresearch.agents.train.typed_config import ConfigError, build_dataclass, to_yaml

RECIPE_KEY = "recipe"
EXTENDS_KEY = "extends"


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
    import_plugins(raw.get("imports") or ())  # their registrations must exist before names are checked
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


def config_to_yaml(config: GRPOConfig, recipe: RecipeInfo | None = None) -> str:
    """The resolved config as YAML that ``load_config`` reads back to an equal config."""
    document = config.to_dict()
    if recipe is not None and recipe != RecipeInfo():
        document[RECIPE_KEY] = dataclasses.asdict(recipe)
    return to_yaml(document)


