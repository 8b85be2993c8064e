"""Atomic checkpoints: a run killed mid-write resumes from the last complete one.

A checkpoint is written into a temporary directory beside its final place, a
``COMPLETE`` marker is written last, and only then is the directory renamed
(``os.replace`` is atomic on one filesystem). ``latest_checkpoint`` ignores any
directory without the marker, so a half-written checkpoint is never loaded.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

MARKER = "COMPLETE"
PREFIX = "checkpoint-"


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


def save_checkpoint(
    root: Path,
    step: int,
    model: Any,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write ``root/checkpoint-<step>`` atomically; keep the newest ``keep`` checkpoints."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:07d}"
    staging = root / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    model.save_pretrained(staging / "model", safe_serialization=True)
    tokenizer.save_pretrained(staging / "model")
    torch.save(trainer_state, staging / "trainer_state.pt")
    (staging / "meta.json").write_text(json.dumps({"step": step}))
    with open(staging / MARKER, "w") as marker:
        marker.write("ok")
        marker.flush()
        os.fsync(marker.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    for old in complete_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def complete_checkpoints(root: Path) -> list[Path]:
    """Finished checkpoints, oldest first; leftovers of interrupted writes are ignored."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / MARKER).is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(root: Path) -> Path | None:
    checkpoints = complete_checkpoints(root)
    return checkpoints[-1] if checkpoints else None


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(checkpoint / "trainer_state.pt", weights_only=False)
