"""Atomic, resharding checkpoints (``torch.distributed.checkpoint``) and a plain Hugging Face export.

A checkpoint is ``checkpoint-<step>/`` holding ``state/`` (model and optimizer in DCP's
format: each rank writes its own shards, plus one metadata file), ``trainer_state.pt``
(step, scheduler, data position, config), one ``rng-rank<r>.pt`` and one
``rank-state-rank<r>.pt`` (what that rank's rollout producer generated ahead) per rank,
and ``COMPLETE``. DCP saves tensors with their global shapes, so a checkpoint written by N
processes loads into M (2 -> 1, 1 -> 2, ...): each rank reads the slices it owns. Only
trainable parameters are saved (frozen ones, e.g. a LoRA base, come from ``config.model``).

Atomicity: everything is written into ``.checkpoint-<step>.tmp`` beside its final place; rank
0 writes ``COMPLETE`` last (fsynced) and renames the directory (``os.replace`` is atomic on
one filesystem). ``latest_checkpoint`` ignores any directory without the marker, so a run
killed mid-write (any rank, even ``kill -9``) resumes from the previous complete one. A write
that fails (the disk is full) removes its staging directory and raises ``CheckpointError``
naming the intact previous checkpoint. Every rank must see the same directory: on several
nodes use a shared filesystem.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepresearch.agents.train.distributed import Parallel

MARKER = "COMPLETE"
PREFIX = "checkpoint-"
STATE_DIR = "state"


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _state_dict_options(strict: bool = True) -> Any:
    """Trainable parameters only. Loading is not strict about the frozen ones it leaves out;
    ``dcp.load`` still fails on any trainable key the checkpoint lacks."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(ignore_frozen_params=True, strict=strict)


@contextmanager
def _single_process_quiet(parallel: Parallel) -> Iterator[None]:
    """DCP warns at every call without a process group, even when asked for exactly that."""
    with warnings.catch_warnings():
        if not parallel.is_distributed:
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def save_checkpoint(
    root: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
    parallel: Parallel,
    keep: int = 2,
    rank_state: dict[str, Any] | None = None,
) -> Path:
    """Write ``root/checkpoint-<step>`` atomically (every rank calls this); keep the newest ``keep``.
    ``rank_state``: this rank's own state, read back by ``load_rank_state`` at the same world size."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.state_dict import get_state_dict

    final = root / f"{PREFIX}{step:07d}"
    staging = root / f".{final.name}.tmp"
    try:
        if parallel.is_main:
            root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
        parallel.barrier()
        model_state, optimizer_state = get_state_dict(model, optimizer, options=_state_dict_options())
        with _single_process_quiet(parallel):
            state = {"model": model_state, "optimizer": optimizer_state}
            dcp.save(state, checkpoint_id=str(staging / STATE_DIR), no_dist=not parallel.is_distributed)
        torch.save(rng_state(), staging / f"rng-rank{parallel.rank}.pt")
        torch.save(rank_state or {}, staging / f"rank-state-rank{parallel.rank}.pt")
        if parallel.is_main:
            torch.save(trainer_state, staging / "trainer_state.pt")
            (staging / "meta.json").write_text(json.dumps({"step": step, "world_size": parallel.world_size}))
        parallel.barrier()
        if parallel.is_main:
            with open(staging / MARKER, "w") as marker:
                marker.write("ok")
                marker.flush()
                os.fsync(marker.fileno())
    except (Exception, CheckpointException) as error:  # e.g. the disk is full: free what was written, keep the rest
        shutil.rmtree(staging, ignore_errors=True)
        raise CheckpointError(final, error) from error
    if parallel.is_main:
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        for old in complete_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    parallel.barrier()
    return final


class CheckpointError(RuntimeError):
    """A checkpoint could not be written; what was written of it is removed, older ones are untouched.

    The message names the checkpoint, the cause (DCP's own report is a traceback per rank:
    its last line), the space left on the filesystem and the checkpoint a resume would use.
    """

    def __init__(self, checkpoint: Path, error: BaseException) -> None:
        lines = str(error).strip().splitlines()
        cause = f"{type(error).__name__}: {lines[-1].strip() if lines else ''}"
        existing = next(parent for parent in checkpoint.parents if parent.exists())
        free_mb = shutil.disk_usage(existing).free / 1024**2
        previous = latest_checkpoint(checkpoint.parent)
        kept = f"{previous} is intact" if previous is not None else "there is no earlier checkpoint"
        super().__init__(f"could not write checkpoint {checkpoint} ({cause}; {free_mb:.0f} MB free there); {kept}")


def load_checkpoint(checkpoint: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, parallel: Parallel) -> dict[str, Any]:
    """Load model and optimizer (resharded to this run's world size) and this rank's RNG; returns the trainer state."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer, options=_state_dict_options())
    state = {"model": model_state, "optimizer": optimizer_state}
    with _single_process_quiet(parallel):
        dcp.load(state, checkpoint_id=str(checkpoint / STATE_DIR), no_dist=not parallel.is_distributed)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"], options=_state_dict_options(strict=False))
    own_rng = checkpoint / f"rng-rank{parallel.rank}.pt"
    # A rank the saving run did not have (1 -> 2) continues from rank 0's generator state.
    restore_rng_state(torch.load(own_rng if own_rng.is_file() else checkpoint / "rng-rank0.pt", weights_only=False))
    return load_trainer_state(checkpoint)


def load_rank_state(checkpoint: Path, parallel: Parallel) -> dict[str, Any] | None:
    """This rank's ``rank_state``, or None when the checkpoint was written at another world
    size (its ranks' states do not map onto this run's) or holds none."""
    meta = json.loads((checkpoint / "meta.json").read_text())
    path = checkpoint / f"rank-state-rank{parallel.rank}.pt"
    if meta["world_size"] != parallel.world_size or not path.is_file():
        return None
    return torch.load(path, weights_only=False) or None


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """The trainer's own state in a checkpoint (step, config, scheduler, sampler position, ...)."""
    return torch.load(checkpoint / "trainer_state.pt", weights_only=False)


def complete_checkpoints(root: Path) -> list[Path]:
    """Finished checkpoints, oldest first; leftovers of interrupted writes are ignored."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / MARKER).is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(root: Path) -> Path | None:
    checkpoints = complete_checkpoints(root)
    return checkpoints[-1] if checkpoints else None


def export_hf_model(model: torch.nn.Module, tokenizer: Any, out_dir: Path, parallel: Parallel) -> Path:
    """A plain Hugging Face model directory (LoRA merged) that vLLM, transformers and ``deepresearch eval`` load.

    Every rank streams its shards (one gathered tensor at a time); rank 0 keeps them on the
    CPU and writes ``out_dir`` atomically (staging directory, then rename).
    """
    from deepresearch.agents.models.loading import engine_weights
    from deepresearch.agents.train.sharding import base_model

    base = base_model(model)
    tied_head = _tied_head_name(base)
    state = {}
    for name, tensor in engine_weights(model):
        if parallel.is_main and name != tied_head:
            state[name] = tensor.detach().to("cpu", copy=True)
    if parallel.is_main:
        staging = out_dir.with_name(f".{out_dir.name}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        base.save_pretrained(staging, state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    parallel.barrier()
    return out_dir


def _tied_head_name(base: Any) -> str | None:
    """The output head's weight name when it is tied to the input embeddings (written once, as they are)."""
    if not base.config.get_text_config().tie_word_embeddings:
        return None
    head = base.get_output_embeddings()
    return next((f"{name}.weight" for name, module in base.named_modules() if module is head), None)
