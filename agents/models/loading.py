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
    trainable_layers: int = 0,
) -> tuple[Any, Any]:
    """(model, tokenizer) ready to train: fp32 weights (autocast does bf16 on GPU), optional LoRA.

    ``trainable_layers`` > 0 trains only the last that many decoder layers and the final norm
    (LoRA, if any, goes on those layers only): the backward pass and its saved activations
    then stop at the first trained layer, which on a CPU is most of a step's cost.

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
    trained = freeze_all_but_last_layers(policy, trainable_layers) if trainable_layers > 0 else None
    if lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        # PEFT takes a layer subset only with module names listed (not with "all-linear").
        targets = "all-linear" if trained is None else _linear_modules_in(policy, trained)
        policy = get_peft_model(policy, LoraConfig(r=lora_rank, lora_alpha=lora_alpha, target_modules=targets, task_type="CAUSAL_LM"))
    return policy, tokenizer


def freeze_all_but_last_layers(model: Any, count: int) -> list[int]:
    """Freeze every parameter except the last ``count`` decoder layers' and the final norm's
    (embeddings and a tied head stay frozen); returns the trained layers' indices.

    Needs the Hugging Face decoder layout: ``get_decoder()`` with a ``layers`` list and a ``norm``.
    """
    decoder = model.get_decoder()
    layers, norm = getattr(decoder, "layers", None), getattr(decoder, "norm", None)
    if not isinstance(layers, torch.nn.ModuleList) or not isinstance(norm, torch.nn.Module):
        raise ValueError(f"trainable_layers needs a decoder with .layers and .norm; {type(model).__name__}'s has not")
    if not 0 < count <= len(layers):
        raise ValueError(f"trainable_layers must be in 1..{len(layers)} for {type(model).__name__}, got {count}")
    model.requires_grad_(False)
    trained = list(range(len(layers) - count, len(layers)))
    for index in trained:
        layers[index].requires_grad_(True)
    norm.requires_grad_(True)
    return trained


def _linear_modules_in(model: Any, layer_indices: list[int]) -> list[str]:
    """Full names of the linear modules inside the given decoder layers."""
    layers = model.get_decoder().layers
    return [
        f"{prefix}.{name}" if name else prefix
        for prefix, layer in ((_module_name(model, layers[i]), layers[i]) for i in layer_indices)
        for name, module in layer.named_modules()
        if isinstance(module, torch.nn.Linear)
    ]


def _module_name(model: Any, target: Any) -> str:
    return next(name for name, module in model.named_modules() if module is target)


def engine_weights(model: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """Weights under the base model's names, LoRA merged in, streamed one tensor at a time.

    For an FSDP-sharded model each tensor is gathered (``full_tensor``, a collective every
    rank runs in the same order) just before it is yielded; the engine copies it in before
    asking for the next, so beyond the shards at most one full tensor (plus its LoRA pair)
    exists at a time, never a second full copy of the model. Unsharded tensors without
    LoRA are yielded as they are, without a copy.
    """
    adapters = _lora_layers(model)
    adapter_keys = tuple(f"{name}." for name in adapters)
    for name, tensor in model.state_dict().items():
        layer_name = next((prefix[:-1] for prefix in adapter_keys if name.startswith(prefix)), None)
        if layer_name is not None and not name.startswith(f"{layer_name}.base_layer."):
            continue  # the adapter's own A/B matrices: merged into the base weight below
        full = full_tensor(tensor)
        if layer_name is not None and name == f"{layer_name}.base_layer.weight":
            full = full + _lora_delta(adapters[layer_name]).to(full.dtype)
        yield name.removeprefix("base_model.model.").replace(".base_layer", ""), full


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor: gathered from its shards when it is a ``DTensor`` (a collective), else itself."""
    from torch.distributed.tensor import DTensor

    if not isinstance(tensor, DTensor):
        return tensor.detach()
    if tensor.device.type == "cpu" and tensor.device_mesh.device_type == "cuda":
        tensor = tensor.to("cuda")  # CPU-offloaded shards gather over NCCL from the GPU
    return tensor.detach().full_tensor()


def _lora_layers(model: Any) -> dict[str, Any]:
    """PEFT LoRA layers by module name (empty for a model without adapters)."""
    from peft.tuners.lora import LoraLayer

    return {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}


def _lora_delta(layer: Any) -> torch.Tensor:
    """``scaling * B @ A`` summed over the active adapters, as PEFT merges a linear LoRA layer."""
    delta = None
    for adapter in layer.active_adapters:
        if adapter not in layer.lora_A:
            raise NotImplementedError(f"only linear LoRA layers can be merged for the engine; {type(layer).__name__} is not one")
        if layer.use_dora.get(adapter) or layer.lora_bias.get(adapter):
            raise NotImplementedError("merging DoRA or LoRA-bias adapters into the engine weights is not supported")
        a, b = full_tensor(layer.lora_A[adapter].weight), full_tensor(layer.lora_B[adapter].weight)
        update = (b.float() @ a.float()) * layer.scaling[adapter]
        update = update.T if layer.fan_in_fan_out else update
        delta = update if delta is None else delta + update
    if delta is None:
        raise ValueError("a LoRA layer with no active adapter")
    return delta
