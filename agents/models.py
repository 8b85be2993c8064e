"""Loading the policy: a Hugging Face id/path, or the tiny offline model built on demand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from deepresearch.agents.tiny_model import TinyModelConfig, build_tiny_model, default_cache_root

# The demo's model: ~1.5M parameters (head_dim 64 for vLLM's CPU attention). Small enough
# that warm start and GRPO fit in minutes on two CPU cores; the default TinyModelConfig
# (~4M) is the one the engine tests use. A vocabulary of up to 8192 (BPE runs out of
# merges at ~5.6k on the demo world) makes most names one or two tokens, which a model
# this small copies far more easily than byte pieces.
DEMO_MODEL = TinyModelConfig(vocab_size=8192, hidden_size=128, num_hidden_layers=4, num_attention_heads=2, num_key_value_heads=1, intermediate_size=384)


def default_tiny_model(config: TinyModelConfig = DEMO_MODEL) -> Path:
    """The tiny model whose tokenizer knows the demo world and the protocols' prompts and result layouts."""
    from deepresearch.data import demo_corpus_path, demo_questions_path
    from deepresearch.envs import PROTOCOLS
    from deepresearch.envs.documents import Document

    # Each protocol's prompt and rendered results, so the tokenizer sees their fixed wording.
    document = Document("0", "Velmora Quistad", "Velmora Quistad was born in Tarsenby.", '"Velmora Quistad"\nVelmora Quistad was born in Tarsenby.')
    samples = [(cls().build_prompt("Where was Velmora Quistad born?").text, cls().format_results(["Velmora Quistad born"], [[document]])) for cls in PROTOCOLS.values()]
    prompts = default_cache_root() / "tiny-model-prompts.txt"
    text = "\n".join(piece for sample in samples for piece in sample)
    if not prompts.is_file() or prompts.read_text(encoding="utf-8") != text:
        prompts.parent.mkdir(parents=True, exist_ok=True)
        prompts.write_text(text, encoding="utf-8")
    return build_tiny_model([demo_corpus_path(), demo_questions_path("train"), prompts], config=config)


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
) -> tuple[Any, Any]:
    """(model, tokenizer) ready to train: fp32 weights (autocast does bf16 on GPU), optional LoRA."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    policy = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32).to(device)
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
