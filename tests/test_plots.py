"""The run's plot shows the figures a user watches for learning or collapse."""

from __future__ import annotations

from deepresearch.agents.train.plots import PANELS, plot_run


def test_the_plot_has_a_panel_per_logged_figure_and_the_zero_variance_share_is_a_ratio(tmp_path):
    records = [
        {"step": 1, "reward/mean": 0.2, "grpo/zero_variance_groups": 3, "grpo/groups": 4, "entropy": 0.9, "episode/searches": 1.0},
        {"step": 2, "reward/mean": 0.4, "grpo/zero_variance_groups": 1, "grpo/groups": 4, "entropy": 0.8, "episode/searches": 1.5},
    ]
    panels = dict(PANELS)
    assert [panels["zero-variance groups (share)"](r) for r in records] == [0.75, 0.25]
    assert panels["KL to reference"](records[0]) is None  # no reference model: the panel is left out
    path = plot_run(records, tmp_path / "training.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
