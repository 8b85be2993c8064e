"""``make_engine``: a vLLM or transformers engine from a model path (or a live model), with its own settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from deepresearch.agents.rollout.engines.base import RolloutEngine

EngineKind = Literal["auto", "vllm", "hf"]


def resolve_engine_kind(kind: EngineKind) -> Literal["vllm", "hf"]:
    """``auto`` is vLLM when it imports here, else transformers."""
    if kind == "auto":
        from deepresearch.agents.rollout.engines.vllm import vllm_available

        return "vllm" if vllm_available() else "hf"
    if kind not in ("vllm", "hf"):
        raise ValueError(f"unknown engine kind {kind!r}; expected 'auto', 'vllm' or 'hf'")
    return kind


def make_engine(
    kind: EngineKind, model: str | Path | Any, tokenizer: Any = None, gguf_file: str | None = None, **kwargs: Any
) -> RolloutEngine:
    """Build a rollout engine; ``kwargs`` go to ``VLLMEngine`` or ``HFEngine`` unchanged.

    ``model`` is a model directory or id, or a ``.gguf`` file (or a folder with
    ``gguf_file`` in it), converted once into a cached folder; the transformers engine
    also takes a live model object (then it generates with the trainer's own weights and
    needs no sync).
    """
    if isinstance(model, (str, Path)):
        from deepresearch.agents.models.gguf import resolve_model_source

        model = resolve_model_source(model, gguf_file)
    kind = resolve_engine_kind(kind)
    if kind == "vllm":
        from deepresearch.agents.rollout.engines.vllm import VLLMEngine

        return VLLMEngine(model, tokenizer=tokenizer, **kwargs)
    from deepresearch.agents.rollout.engines.hf import HFEngine

    return HFEngine(model, tokenizer=tokenizer, **kwargs)
