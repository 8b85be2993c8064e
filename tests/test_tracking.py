"""``report_to: [jsonl, tensorboard, wandb]``: each tracker gets every step and the full resolved config.

W&B runs in offline mode (``WANDB_MODE=offline`` writes a local run folder, no account or
network); its records are read back from the run file it wrote.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from deepresearch.agents import GRPOConfig
from deepresearch.agents.train.metrics_log import MetricsLogger, read_metrics

WANDB_BLOCK = 32 * 1024  # W&B's run file is a LevelDB-style log of 32 KiB blocks


def wandb_records(run_file: Path) -> Iterator[Any]:
    """The protobuf records of an offline W&B run file (``run-<id>.wandb``)."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    position, pending = 7, b""  # header: magic, 2-byte identifier, 1-byte version
    while position + 7 <= len(data):
        if WANDB_BLOCK - position % WANDB_BLOCK < 7:  # a block's tail too short for a header is padding
            position += WANDB_BLOCK - position % WANDB_BLOCK
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if kind == 0:
            break
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def wandb_run(output_dir: Path, wait_s: float = 60.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(run config, history rows) of the single offline run under ``output_dir/wandb``.

    W&B's service process may still be writing the file after ``finish()`` returns (seen on a
    loaded machine: no config read back), so this waits, bounded, for its closing ``exit`` record.
    """
    deadline = time.monotonic() + wait_s
    while True:
        run_files = list(output_dir.glob("wandb/offline-run-*/run-*.wandb"))
        complete = len(run_files) == 1 and any(r.WhichOneof("record_type") == "exit" for r in wandb_records(run_files[0]))
        if complete or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    (run_file,) = run_files
    config: dict[str, Any] = {}
    history = []
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind in ("run", "config"):  # the config arrives with the run record and in later updates
            items = record.run.config.update if kind == "run" else record.config.update
            config.update({item.key: json.loads(item.value_json) for item in items})
        elif kind == "history":
            # Names with a "/" are stored as a nested key.
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
    return config, history


def test_jsonl_tensorboard_and_wandb_get_the_steps_and_the_resolved_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    config = GRPOConfig(steps=2, report_to=("jsonl", "tensorboard", "wandb"), output_dir=str(tmp_path))
    logger = MetricsLogger(tmp_path, None, config.report_to, config.to_dict())
    logger.log(1, {"reward/mean": 0.25, "data/questions": [3, 1]})
    logger.log(2, {"reward/mean": 0.5})
    logger.close()

    assert [(r["step"], r["reward/mean"]) for r in read_metrics(tmp_path / "metrics.jsonl")] == [(1, 0.25), (2, 0.5)]
    import yaml

    assert GRPOConfig.from_dict(yaml.safe_load((tmp_path / "config.yaml").read_text())) == config

    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"tensors": 0}).Reload()
    assert [(e.step, e.value) for e in events.Scalars("reward/mean")] == [(1, 0.25), (2, 0.5)]
    assert "update:" in events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()

    run_config, history = wandb_run(tmp_path)
    assert run_config["update"]["loss"]["kl_coef"] == config.update.loss.kl_coef and run_config["steps"] == 2
    assert [(row["_step"], row["reward/mean"]) for row in history] == [(1, 0.25), (2, 0.5)]
    assert all("data/questions" not in row for row in history)  # lists stay in the JSONL


def test_a_resumed_run_continues_its_wandb_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    first = MetricsLogger(tmp_path, None, ("wandb",), {"steps": 2})
    first.close()
    run_id = (tmp_path / "wandb_run_id").read_text()
    MetricsLogger(tmp_path, 1, ("wandb",), {"steps": 2}).close()
    assert (tmp_path / "wandb_run_id").read_text() == run_id
    folders = list(tmp_path.glob("wandb/offline-run-*"))
    assert len(folders) == 2 and all(f"-{run_id}" in folder.name for folder in folders)


def test_unknown_tracker_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tracker"):
        MetricsLogger(tmp_path, None, ("jsonl", "mlflow"))
