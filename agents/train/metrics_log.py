"""Training metrics to the trackers a run names (``report_to``: JSONL, TensorBoard, W&B) and the console.

Each tracker also receives the run's full resolved config once, where users look for it:
``OUTPUT/config.yaml`` beside ``metrics.jsonl``, a ``config`` text panel in TensorBoard,
the run config in W&B. W&B reads its own settings from its environment variables
(``WANDB_API_KEY``, ``WANDB_PROJECT``, ``WANDB_MODE=offline`` writes a local run folder
under ``OUTPUT/wandb/``); nothing here reads or logs the key.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any, Literal, Protocol

from deepresearch.agents.jsonl import read_jsonl
from deepresearch.agents.train.typed_config import to_yaml

ReportTarget = Literal["jsonl", "tensorboard", "wandb"]
REPORT_TARGETS: tuple[str, ...] = ("jsonl", "tensorboard", "wandb")
WANDB_RUN_ID_FILE = "wandb_run_id"


def check_report_to(targets: tuple[str, ...]) -> None:
    unknown = sorted(set(targets) - set(REPORT_TARGETS))
    if unknown:
        raise ValueError(f"report_to: unknown tracker(s) {unknown}; choose from {list(REPORT_TARGETS)}")


class MetricsSink(Protocol):
    """One destination of the per-step metrics."""

    def log(self, step: int, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """``OUTPUT/metrics.jsonl``, flushed per line. ``resumed_at``: lines for later steps (logged
    after that checkpoint by the run that died) are dropped; None starts a fresh file."""

    def __init__(self, output_dir: Path, resumed_at: int | None, config_yaml: str | None) -> None:
        self.path = output_dir / "metrics.jsonl"
        kept = [r for r in read_metrics(self.path) if r["step"] <= resumed_at] if resumed_at is not None else []
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        if config_yaml is not None:
            _write_atomically(output_dir / "config.yaml", config_yaml)
        self._file = self.path.open("a", encoding="utf-8")

    def log(self, step: int, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorBoardSink:
    """Scalars under ``OUTPUT/tensorboard``; the config as a text panel."""

    def __init__(self, output_dir: Path, config_yaml: str | None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError("report_to includes 'tensorboard', which is not installed: pip install tensorboard") from error
        self._writer = SummaryWriter(str(output_dir / "tensorboard"))
        if config_yaml is not None:
            self._writer.add_text("config", "```yaml\n" + config_yaml + "\n```", 0)

    def log(self, step: int, record: dict[str, Any]) -> None:
        for name, value in numeric_items(record):
            self._writer.add_scalar(name, value, step)

    def close(self) -> None:
        self._writer.close()


class WandbSink:
    """A W&B run in ``OUTPUT/wandb``; a resumed training run continues the same W&B run
    (its id is kept in ``OUTPUT/wandb_run_id``)."""

    def __init__(self, output_dir: Path, run_config: dict[str, Any] | None, resumed: bool) -> None:
        try:
            import wandb
        except ImportError as error:
            raise ImportError("report_to includes 'wandb', which is not installed: pip install wandb") from error
        id_file = output_dir / WANDB_RUN_ID_FILE
        run_id = id_file.read_text(encoding="utf-8").strip() if resumed and id_file.is_file() else secrets.token_hex(4)
        _write_atomically(id_file, run_id)
        self._run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "deepresearch-gym"),
            name=output_dir.resolve().name,
            id=run_id,
            resume="allow",
            dir=str(output_dir),
            config=run_config,
        )

    def log(self, step: int, record: dict[str, Any]) -> None:
        self._run.log(dict(numeric_items(record)), step=step)

    def close(self) -> None:
        self._run.finish()


class MetricsLogger:
    """Fans each step's metrics out to the ``report_to`` trackers.

    ``resumed_at``: the step a resumed run continues from (None: a fresh run);
    ``run_config``: the resolved config, given to every tracker once.
    """

    def __init__(
        self,
        output_dir: Path,
        resumed_at: int | None = None,
        report_to: tuple[str, ...] = ("jsonl", "tensorboard"),
        run_config: dict[str, Any] | None = None,
    ) -> None:
        check_report_to(report_to)
        output_dir.mkdir(parents=True, exist_ok=True)
        config_yaml = to_yaml(run_config) if run_config is not None else None
        self.sinks: list[MetricsSink] = []
        if "jsonl" in report_to:
            self.sinks.append(JsonlSink(output_dir, resumed_at, config_yaml))
        if "tensorboard" in report_to:
            self.sinks.append(TensorBoardSink(output_dir, config_yaml))
        if "wandb" in report_to:
            self.sinks.append(WandbSink(output_dir, run_config, resumed=resumed_at is not None))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        for sink in self.sinks:
            sink.log(step, record)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def numeric_items(record: dict[str, Any]) -> list[tuple[str, float]]:
    """The finite numbers of a record other than ``step`` (lists such as ``data/questions`` stay in JSONL)."""
    return [
        (name, value)
        for name, value in record.items()
        if name != "step" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ]


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records; a torn last line (the run was killed mid-write) is skipped."""
    return read_jsonl(path)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value


def _write_atomically(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)


def console_line(step: int, metrics: dict[str, Any], keys: tuple[str, ...]) -> str:
    parts = [f"step {step}"]
    for key in keys:
        if key in metrics and isinstance(metrics[key], (int, float)):
            parts.append(f"{key} {metrics[key]:.3f}")
    return " | ".join(parts)
