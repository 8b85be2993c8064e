"""Loading a policy to train: a Hugging Face id or path (or a GGUF file, converted once),
fp32, optional LoRA; and its weights under the names an inference engine expects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from deepresearch.agents.models.gguf import resolve_model_source


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_policy(
    model: str | Path,
    device: torch.device,
    lora_rank: int = 0,
    lora_alpha: int = 32,
    gradient_checkpointing: bool = False,
    gguf_file: str | None = None,
) -> tuple[Any, Any]:
    """(model, tokenizer) ready to train: fp32 weights (autocast does bf16 on GPU), optional LoRA.

    ``model`` may be a ``.gguf`` file, or a folder with ``gguf_file`` naming one in it
    (converted to a cached Hugging Face folder on first use, see ``models.gguf``).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model_source(model, gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    policy = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).to(device)
    if gradient_checkpointing:
        policy.gradient_checkpointing_enable()
        policy.config.use_cache = False
    if lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        policy = get_peft_model(
            policy, LoraConfig(r=lora_rank, lora_alpha=lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM")
        )
    return policy, tokenizer


def engine_weights(model: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """Weights under the base model's names, LoRA merged in, for syncing an inference engine."""
    if not hasattr(model, "merge_adapter"):
        yield from model.state_dict().items()
        return
    model.merge_adapter()
    try:
        merged = {
            name.removeprefix("base_model.model.").replace(".base_layer", ""): tensor.detach().clone()
            for name, tensor in model.state_dict().items()
            if "lora_" not in name
        }
    finally:
        model.unmerge_adapter()
    yield from merged.items()
