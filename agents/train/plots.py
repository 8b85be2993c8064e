"""PNG plots of a run: what a user watches to see whether GRPO is learning or collapsing.

Rewards (train and held-out), the share of groups whose rewards are all equal (they carry no
gradient), policy entropy, KL to the reference policy (when the run has one), searches per
episode and response length, over steps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Record = dict[str, Any]


def _metric(key: str) -> Callable[[Record], float | None]:
    return lambda record: record.get(key)


def _zero_variance_share(record: Record) -> float | None:
    groups = record.get("grpo/groups")
    return record["grpo/zero_variance_groups"] / groups if groups else None


PANELS: tuple[tuple[str, Callable[[Record], float | None]], ...] = (
    ("train reward", _metric("reward/mean")),
    ("held-out reward", _metric("eval/reward")),
    ("zero-variance groups (share)", _zero_variance_share),
    ("entropy", _metric("entropy")),
    ("KL to reference", _metric("kl_ref")),
    ("searches per episode", _metric("episode/searches")),
    ("response tokens", _metric("episode/response_tokens")),
)


def plot_run(records: list[Record], out_path: Path) -> Path:
    """One figure with a panel per metric; metrics absent from the run are skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [(title, [(r["step"], value) for r in records if (value := read(r)) is not None]) for title, read in PANELS]
    series = [(title, points) for title, points in series if points]
    columns = min(max(len(series), 1), 4)
    rows = -(-max(len(series), 1) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    for axis, (title, points) in zip(axes.flat, series):
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o" if len(points) < 30 else None)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(series):]:
        axis.set_visible(False)
    figure.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=100)
    plt.close(figure)
    return out_path
