"""``deepresearch eval --suite NAME``: the suite's pinned settings, its datasets, and its report.

A setting the user gives on the command line wins over the suite's and is marked ``≠``
under the table; everything left unset takes the paper's value. Datasets are looked up
under ``--data-dir`` by name and split; missing ones are an error that prints the
``data/download.py`` command, are fetched with ``--download``, or skipped with
``--allow-missing`` (the table then shows ``-`` and the settings say which are missing).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from deepresearch.agents.eval.harness import load_dataset
from deepresearch.agents.eval.suite_report import RunSettings, suite_report
from deepresearch.agents.eval.suites import EvalSuite
from deepresearch.envs import QAItem

# What ``deepresearch eval`` uses when neither the user nor a suite says.
DEFAULTS = {"env_id": "DeepResearch-Wiki-v0", "protocol": "research", "max_turns": 8, "top_k": 3, "max_new_tokens": 512,
            "max_response_tokens": 4096}


def resolve_settings(args: argparse.Namespace, suite: EvalSuite | None) -> None:
    """Fill every setting the user left unset: from the suite, else the command's default."""
    pinned = {} if suite is None else {
        "env_id": suite.env_id, "protocol": suite.protocol, "max_turns": suite.max_turns, "top_k": suite.top_k,
        "max_new_tokens": suite.max_new_tokens, "max_response_tokens": suite.max_response_tokens,
    }
    for name, default in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, pinned.get(name, default))


def suite_env_kwargs(suite: EvalSuite, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The suite's reward preset and env rules under whatever the user passed."""
    return {"reward": suite.reward, **suite.env_kwargs, **env_kwargs}


def suite_datasets(suite: EvalSuite, data_dir: str | None, limit: int | None, allow_missing: bool, download: bool) -> list[tuple[str, list[QAItem]]]:
    """The suite's datasets found under ``data_dir`` (each at its own split and question limit)."""
    if data_dir is None:
        raise SystemExit(f"--suite {suite.name} needs --data-dir (the folder holding {', '.join(d.name for d in suite.datasets)})")
    loaded, missing = [], []
    for dataset in suite.datasets:
        try:
            loaded.append(load_dataset(dataset.name, data_dir, dataset.split, limit or dataset.limit))
        except FileNotFoundError:
            missing.append(dataset)
    if missing and download:
        from deepresearch.data.download import download_qa

        for dataset in missing:
            download_qa(dataset.name, Path(data_dir), (dataset.split,))
        return suite_datasets(suite, data_dir, limit, allow_missing, download=False)
    if missing and not allow_missing:
        commands = "\n".join(f"  python data/download.py qa {d.name} --split {d.split} --out {data_dir}" for d in missing)
        raise SystemExit(f"--suite {suite.name}: not found under {data_dir}: {', '.join(d.name for d in missing)}. Fetch them with\n"
                         f"{commands}\nor rerun with --download, or with --allow-missing to evaluate the others.")
    return loaded


def write_suite_report(suite: EvalSuite, args: argparse.Namespace, summary: dict[str, dict[str, float]], judged: bool, replayed: bool,
                       env_kwargs: dict[str, Any], out: Path) -> Path:
    """``OUT/suite.md``: the paper's table with this run's row and the settings under it."""
    evaluated = {}
    for dataset in suite.datasets:
        if dataset.name in summary:
            evaluated[dataset.name] = (dataset.split, args.limit or dataset.limit, int(summary[dataset.name]["n"]))
    run = RunSettings(
        label=Path(args.replay).name if replayed else (args.model or "the tiny model"),
        corpus=args.corpus, retriever=args.retriever, top_k=args.top_k, max_turns=args.max_turns, max_new_tokens=args.max_new_tokens,
        protocol=args.protocol, judged=judged, replayed=replayed, prompt_template="prompt_template" in env_kwargs, datasets=evaluated,
    )
    path = out / "suite.md"
    path.write_text(suite_report(suite, summary, run), encoding="utf-8")
    return path
