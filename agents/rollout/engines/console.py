"""How every command that starts an engine keeps the console for its own progress.

``deepresearch train`` showed only progress and metrics while ``eval`` and ``data filter``
printed vLLM's start-up (thread binding, KV cache size, ~20 lines), a deprecation
warning per request and spent a minute compiling graphs on CPU. One function now builds
the engine of every command the same way: vLLM runs eager on CPU (graph compilation
costs ~30-70 s there and gains little for short runs), its own output goes to
``OUT/engine.log`` unless ``verbose``, and transformers' model-loading bars are off
unless ``verbose``. The trainer applies the same options to its own engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepresearch.agents.rollout.engines.base import RolloutEngine
from deepresearch.agents.rollout.engines.make import EngineKind, make_engine, resolve_engine_kind

ENGINE_LOG_NAME = "engine.log"


def engine_log_path(out_dir: str | Path, verbose: bool) -> Path | None:
    """Where a command's engine writes its own output: ``OUT/engine.log``, or None (the console) when verbose."""
    return None if verbose else Path(out_dir) / ENGINE_LOG_NAME


def vllm_console_options(log_file: Path | None, on_cpu: bool) -> dict[str, Any]:
    """The vLLM engine options every command uses: eager on CPU, own output to ``log_file``."""
    return {"enforce_eager": on_cpu, "log_file": log_file}


def make_command_engine(
    kind: EngineKind, model: str | Path, out_dir: str | Path, verbose: bool = False, gguf_file: str | None = None, **kwargs: Any
) -> RolloutEngine:
    """``make_engine`` as a command line tool calls it (``kwargs`` go to the engine, and win)."""
    import torch

    if not verbose:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    resolved = resolve_engine_kind(kind)
    if resolved == "vllm":
        kwargs = {**vllm_console_options(engine_log_path(out_dir, verbose), not torch.cuda.is_available()), **kwargs}
    return make_engine(resolved, model, gguf_file=gguf_file, **kwargs)
