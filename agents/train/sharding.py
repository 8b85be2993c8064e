"""FSDP2 (``torch.distributed.fsdp.fully_shard``) over a Hugging Face causal LM, LoRA or not.

Each transformer block (the classes the model lists in ``_no_split_modules``) becomes one
FSDP unit; the decoder's remaining parameters (embeddings, final norm) and the output head
form one more, grouped (``fully_shard([decoder, head])``), because the GRPO loss calls the
decoder and the head separately (the head only on the positions the loss reads) and a
tied head shares its weight with the embeddings; the root comes last. Parameters stay sharded float32 masters; forward and backward gather one
block at a time in ``param_dtype`` and reduce-scatter gradients in ``reduce_dtype``.
Gradients are summed across ranks, not averaged: the loss is already normalised by the
whole step's token count (every rank divides by the global total), so the sum is exactly
the single-process gradient.

FSDP2 runs on CPU with gloo in torch 2.13 (the tests use it), except ``CPUOffloadPolicy``,
which fails there with ``RuntimeError: Cannot access accelerator device when none is
available.``; ``cpu_offload`` is therefore rejected up front on CPU.
"""

from __future__ import annotations

from typing import Any

import torch

from deepresearch.agents.train.distributed import DistributedConfig, Parallel

CPU_OFFLOAD_ERROR = (
    "distributed.cpu_offload needs CUDA: FSDP2's CPUOffloadPolicy on a CPU-only machine fails with "
    "'RuntimeError: Cannot access accelerator device when none is available.'"
)


def param_dtype_for(config: DistributedConfig, device: torch.device) -> torch.dtype:
    if config.param_dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, config.param_dtype)


def transformer_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of a transformers model (a PEFT wrapper included), outermost first."""
    block_names = set(base_model(model)._no_split_modules or ())
    if not block_names:
        raise ValueError(f"{type(model).__name__} lists no _no_split_modules; cannot find its transformer blocks to shard")
    blocks = [module for module in model.modules() if type(module).__name__ in block_names]
    if not blocks:
        raise ValueError(f"no module of {sorted(block_names)} found in {type(model).__name__}")
    return blocks


def shard_model(model: torch.nn.Module, config: DistributedConfig, device: torch.device) -> torch.nn.Module:
    """``fully_shard`` every block, then the root, in place; returns ``model`` (now an ``FSDPModule``)."""
    from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, MixedPrecisionPolicy, OffloadPolicy, fully_shard

    if config.cpu_offload and device.type != "cuda":
        raise ValueError(CPU_OFFLOAD_ERROR)
    options: dict[str, Any] = {
        "mp_policy": MixedPrecisionPolicy(
            param_dtype=param_dtype_for(config, device), reduce_dtype=getattr(torch, config.reduce_dtype)
        ),
        "offload_policy": CPUOffloadPolicy() if config.cpu_offload else OffloadPolicy(),
    }
    reshard = config.reshard_after_forward
    for block in transformer_blocks(model):
        fully_shard(block, reshard_after_forward=reshard, **options)
    base = base_model(model)
    decoder, head = base.get_decoder(), base.get_output_embeddings()
    if decoder is not base and head is not None:  # else the loss runs the whole model's forward
        fully_shard([decoder, head], reshard_after_forward=reshard, **options)
    fully_shard(model, reshard_after_forward=reshard, **options)
    # Sum, not average (see the module docstring); plain SUM collectives, which gloo has
    # (a divide factor alone selects NCCL's PREMUL_SUM: "Cannot use ReduceOp.PREMUL_SUM with Gloo").
    # Each fully_shard call is its own unit with its own setting.
    for unit in (module for module in model.modules() if isinstance(module, FSDPModule)):
        unit.set_gradient_divide_factor(1.0)
        unit.set_force_sum_reduction_for_comms(True)
    # FSDP2 picks its root as the first unit to run forward; the GRPO loss calls the
    # decoder directly, so one tiny forward through the whole model (every rank) fixes it.
    with torch.no_grad():
        model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=device))
    return model


def check_same_weights(model: torch.nn.Module, parallel: Parallel) -> None:
    """Fail unless every process holds the same weights before sharding.

    ``fully_shard`` keeps each process's own slice of its own tensors, so processes that
    loaded different checkpoints or initialised LoRA under different seeds would train a
    silent mixture. Compares one float64 sum per tensor (a cheap fingerprint).
    """
    sums = [float(tensor.detach().double().sum()) for tensor in model.state_dict().values()]
    if parallel.all_reduce(sums, "max") != parallel.all_reduce(sums, "min"):
        raise RuntimeError("processes hold different initial weights: load the same model and seed LoRA identically on every rank")


def base_model(model: torch.nn.Module) -> Any:
    """The transformers model under a PEFT wrapper (its ``get_base_model`` contract), else ``model``."""
    from peft import PeftModel

    return model.get_base_model() if isinstance(model, PeftModel) else model
