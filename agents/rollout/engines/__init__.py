"""Rollout engines: one token-in/token-out interface over vLLM and transformers.

``make_engine("auto", path)`` picks vLLM when it imports here, else transformers.
Both backends are imported lazily, so importing this package costs nothing. What a
trainer rolls out with is chosen by name among registered factories (``factory.py``:
``hf``, ``vllm``, and any ``register_engine`` adds).
"""

from __future__ import annotations

from deepresearch.agents.rollout.engines.base import FinishReason, Generation, RolloutEngine, SamplingConfig
from deepresearch.agents.rollout.engines.factory import ENGINES, EngineRequest, TrainingEngine, build_training_engine, register_engine
from deepresearch.agents.rollout.engines.make import EngineKind, make_engine, resolve_engine_kind

__all__ = [
    "ENGINES",
    "EngineKind",
    "EngineRequest",
    "FinishReason",
    "Generation",
    "RolloutEngine",
    "SamplingConfig",
    "TrainingEngine",
    "build_training_engine",
    "make_engine",
    "register_engine",
    "resolve_engine_kind",
]
