"""PNG plots of a run: reward, searches per episode and response length over steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PANELS = (
    ("reward/mean", "train reward"),
    ("eval/reward", "held-out reward"),
    ("episode/searches", "searches per episode"),
    ("episode/response_tokens", "response tokens"),
)


def plot_run(records: list[dict[str, Any]], out_path: Path) -> Path:
    """One figure with a panel per metric; metrics absent from the run are skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(key, title) for key, title in PANELS if any(key in r for r in records)]
    figure, axes = plt.subplots(1, max(len(panels), 1), figsize=(4 * max(len(panels), 1), 3.2), squeeze=False)
    for axis, (key, title) in zip(axes[0], panels):
        points = [(r["step"], r[key]) for r in records if key in r]
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o" if len(points) < 30 else None)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=100)
    plt.close(figure)
    return out_path
