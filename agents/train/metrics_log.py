"""Training metrics to JSONL (always), TensorBoard (when installed) and the console."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from deepresearch.agents.jsonl import read_jsonl


class MetricsLogger:
    """``resumed_at``: the step a resumed run continues from. Lines for later steps (logged
    after that checkpoint by the run that died) are dropped; None starts a fresh file."""

    def __init__(self, output_dir: Path, resumed_at: int | None = None, use_tensorboard: bool = True) -> None:
        output_dir.mkdir(parents=True, exist_ok=True)
        self.path = output_dir / "metrics.jsonl"
        kept = [r for r in read_metrics(self.path) if r["step"] <= resumed_at] if resumed_at is not None else []
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        self._file = self.path.open("a", encoding="utf-8")
        self._tensorboard = None
        if use_tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tensorboard = SummaryWriter(str(output_dir / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self._tensorboard = None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tensorboard is not None:
            for name, value in record.items():
                if isinstance(value, (int, float)) and name != "step" and math.isfinite(value):
                    self._tensorboard.add_scalar(name, value, step)

    def close(self) -> None:
        self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records; a torn last line (the run was killed mid-write) is skipped."""
    return read_jsonl(path)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value


def console_line(step: int, metrics: dict[str, Any], keys: tuple[str, ...]) -> str:
    parts = [f"step {step}"]
    for key in keys:
        if key in metrics and isinstance(metrics[key], (int, float)):
            parts.append(f"{key} {metrics[key]:.3f}")
    return " | ".join(parts)
