"""The engines a trainer can roll out with, by name: one factory per kind, registered like a user's.

A factory takes an ``EngineRequest`` (what the trainer has: the model's path, its live
model and tokenizer, the device, whether the model is sharded or rollouts overlap
training) and returns a ``TrainingEngine``: an object following the ``RolloutEngine``
contract, and whether it generates with the trainer's own model object (then no weight
sync is needed). ``GRPOConfig.engine`` names one: ``hf``, ``vllm``, ``auto`` (vLLM when it
imports, else transformers) or any ``register_engine`` name (``engine: mine`` in YAML,
with ``imports: [my_module]`` to register it first).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepresearch.agents.rollout.engines.base import RolloutEngine
from deepresearch.agents.rollout.engines.console import vllm_console_options
from deepresearch.agents.rollout.engines.make import make_engine, resolve_engine_kind
from deepresearch.registry import Registry

AUTO = "auto"


@dataclass(frozen=True)
class EngineRequest:
    """What a trainer asks an engine factory for (``log_file``: where the engine's own output goes; None: the console)."""

    model_path: str
    model: Any
    tokenizer: Any
    device: Any
    log_file: Path | None = None
    sharded: bool = False
    overlapped: bool = False


@dataclass(frozen=True)
class TrainingEngine:
    """A built engine; ``shares_model``: it generates with the trainer's live model, so it is never synced."""

    engine: RolloutEngine
    shares_model: bool


EngineFactory = Callable[[EngineRequest], TrainingEngine]

ENGINES: Registry[EngineFactory] = Registry("engine", signature="factory(request: EngineRequest) -> TrainingEngine")


def register_engine(name: str, factory: EngineFactory | None = None, *, replace: bool = False):
    """Register ``factory`` as the engine ``name``; without ``factory``, a decorator that does."""
    if name == AUTO:
        raise ValueError(f"{AUTO!r} is not a registrable name: it picks vllm or hf")
    return ENGINES.register(name, factory, replace=replace)


def resolve_engine_name(name: str) -> str:
    """``auto`` is vLLM when it imports here, else transformers; any other name must be registered."""
    if name == AUTO:
        return resolve_engine_kind(AUTO)
    ENGINES.lookup(name)
    return name


def build_training_engine(name: str, request: EngineRequest) -> TrainingEngine:
    """The engine ``name`` for ``request``; the result is checked against the ``RolloutEngine`` contract."""
    built = ENGINES.lookup(resolve_engine_name(name))(request)
    if not isinstance(built, TrainingEngine) or not isinstance(built.engine, RolloutEngine):
        raise TypeError(f"engine factory {name!r} must return a TrainingEngine holding a RolloutEngine, got {built!r}")
    return built


@register_engine("hf")
def hf_training_engine(request: EngineRequest) -> TrainingEngine:
    """Transformers: the trainer's live model (no sync), unless it is sharded (every forward of a sharded
    model is a collective, and processes generate different lengths) or rollouts overlap training; then
    its own full copy, synced like vLLM."""
    if request.sharded or request.overlapped:
        return TrainingEngine(make_engine("hf", request.model_path, tokenizer=request.tokenizer, device=request.device), False)
    return TrainingEngine(make_engine("hf", request.model, tokenizer=request.tokenizer), True)


@register_engine("vllm")
def vllm_training_engine(request: EngineRequest) -> TrainingEngine:
    """vLLM: its own copy (eager on CPU, where graph compilation costs ~30 s and gains little), synced after
    every update; ``sharded``: one engine per process inside torchrun's group."""
    max_len = min(request.model.config.get_text_config().max_position_embeddings, 8192)
    launcher: dict[str, Any] = {}
    if request.sharded:
        # vLLM joins torchrun's group ("external launcher") instead of starting its own, which needs it
        # to stay in this process.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        launcher["distributed_executor_backend"] = "external_launcher"
    engine = make_engine(
        "vllm",
        request.model_path,
        tokenizer=request.tokenizer,
        max_model_len=max_len,
        **vllm_console_options(request.log_file, request.device.type == "cpu"),
        **launcher,
    )
    return TrainingEngine(engine, False)
