"""A suite's table in its paper's layout: the published rows, this run's row, and the settings under it.

Every setting is printed twice, as the paper ran it and as this run did, with a mark:
``=`` the same, ``≠`` different (this run's numbers are not comparable on that count),
``?`` not checkable from here (a corpus or an index we did not build, a subsample of the same size).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import mean

from deepresearch.agents.eval.suites import EvalSuite


@dataclass(frozen=True)
class RunSettings:
    """What this run actually used, in the terms of a suite's settings."""

    label: str
    corpus: str | None
    retriever: str | None
    top_k: int
    max_turns: int
    max_new_tokens: int
    protocol: str
    judged: bool
    replayed: bool
    prompt_template: bool
    # dataset -> (split, limit, questions evaluated); absent datasets were not run
    datasets: dict[str, tuple[str, int | None, int]] = field(default_factory=dict)


def format_value(suite: EvalSuite, value: float | None, from_run: bool) -> str:
    """A cell in the paper's scale: our metrics are fractions; the papers' are what they printed."""
    if value is None:
        return "-"
    if suite.percent:
        shown = value * 100 if from_run else value
        return f"{shown:.2f}" if suite.name == "research" else f"{shown:.1f}"
    return f"{value:.3f}"


def suite_table(suite: EvalSuite, summary: dict[str, dict[str, float]], run: RunSettings) -> str:
    headings = [f"{d.heading} {suite.metric_headings[m]}" if len(suite.metrics) > 1 else d.heading for d in suite.datasets for m in suite.metrics]
    if suite.average:
        headings.append("Avg.")
    lines = ["| Method | " + " | ".join(headings) + " |", "|---" * (len(headings) + 1) + "|"]
    for row in suite.published:
        cells = [format_value(suite, row.values.get(d.name, {}).get(m), False) for d in suite.datasets for m in suite.metrics]
        if suite.average:
            cells.append(format_value(suite, mean(row.values[d.name][suite.metrics[0]] for d in suite.datasets), False))
        lines.append(f"| {row.method} | " + " | ".join(cells) + " |")
    ours = [format_value(suite, summary.get(d.name, {}).get(m), True) for d in suite.datasets for m in suite.metrics]
    if suite.average:
        present = [summary[d.name][suite.metrics[0]] for d in suite.datasets if d.name in summary]
        average = format_value(suite, mean(present), True) if present else "-"
        ours.append(average if len(present) == len(suite.datasets) else f"{average} ({len(present)} of {len(suite.datasets)})")
    lines.append(f"| **this run: {run.label}** | " + " | ".join(ours) + " |")
    return "\n".join(lines) + "\n"


def settings_rows(suite: EvalSuite, run: RunSettings) -> list[tuple[str, str, str, str]]:
    """``(setting, paper, this run, mark)`` for every pinned setting."""
    pinned = {setting.name: setting.paper for setting in suite.settings}
    web = suite.env_id.endswith("Web-v0")
    corpus = run.corpus or ("the live web" if web else "the embedded demo world")
    corpus_mark = "≠" if run.corpus is None and not web else "?"
    retriever = run.retriever or ("the provider's results" if web else "the index's own kind (BM25 for a .jsonl)")
    retriever_mark = "≠" if not web and uses_bm25(run.corpus, run.retriever) else "?"
    missing = [d.name for d in suite.datasets if d.name not in run.datasets]
    changed = [name for name, (split, limit, _) in run.datasets.items() if (split, limit) != (suite.dataset(name).split, suite.dataset(name).limit)]
    # The paper's own subsample (DeepResearcher's 512 random questions) is not the first N: same size, other questions.
    sampled = any(limit is not None for _, limit, _ in run.datasets.values())
    evaluated = ", ".join(f"{name} {split} n={n}" + (f" (first {limit})" if limit else "") for name, (split, limit, n) in run.datasets.items())
    needs_judge = "judge" in suite.metrics
    return [
        ("corpus", pinned["corpus"], corpus, corpus_mark),
        ("retriever", pinned["retriever"], retriever, retriever_mark),
        ("top-k", pinned["top-k"], str(run.top_k), "=" if str(run.top_k) == str(suite.top_k) else "≠"),
        ("turns", pinned["turns"], str(run.max_turns), "=" if run.max_turns == suite.max_turns else "≠"),
        ("tokens", pinned["tokens"], f"{run.max_new_tokens} per turn", "=" if run.max_new_tokens == suite.max_new_tokens else "≠"),
        ("decoding", pinned["decoding"], "recorded responses (replay)" if run.replayed else "greedy", "?" if run.replayed else "="),
        ("metric", pinned["metric"], "EM/F1 as FlashRAG" + (" and the LLM judge" if run.judged else ", no LLM judge run"),
         "=" if run.judged or not needs_judge else "≠"),
        ("splits", pinned["splits"], evaluated or "none", "≠" if changed else "?" if sampled else "="),
        ("protocol", suite.protocol, run.protocol, "=" if run.protocol == suite.protocol else "≠"),
        ("prompt", pinned["prompt"], "a prompt_template you passed" if run.prompt_template else "this protocol's default",
         "?" if run.prompt_template or suite.name == "research" else "≠"),
    ] + ([("datasets", "all of the suite", f"missing {', '.join(missing)}", "≠")] if missing else [])


def uses_bm25(corpus: str | None, retriever: str | None) -> bool:
    """BM25 for sure: asked for, or the default over a .jsonl corpus or the demo world (the papers used E5)."""
    return retriever == "bm25" or (retriever is None and (corpus is None or corpus.endswith(".jsonl")))


def suite_report(suite: EvalSuite, summary: dict[str, dict[str, float]], run: RunSettings) -> str:
    """The markdown a suite run writes to ``suite.md`` and prints."""
    lines = [f"## {suite.paper}: `--suite {suite.name}`", "", f"Published rows: {suite.table_source}.", "", suite_table(suite, summary, run)]
    lines += ["Settings (= same as the paper, ≠ differs, ? cannot be checked here):", "",
              "| setting | paper | this run | |", "|---|---|---|---|"]
    lines += [f"| {name} | {paper} | {ours} | {mark} |" for name, paper, ours, mark in settings_rows(suite, run)]
    lines += ["", "Sources: " + "; ".join(f"{s.name}: {s.source}" for s in suite.settings)]
    return "\n".join(lines) + "\n"
