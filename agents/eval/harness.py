"""Evaluate any policy on any env over QA datasets: per-item JSONL, per-dataset table, resumable.

One JSON line per (dataset, question id), appended and flushed as items finish,
so an interrupted run loses at most the items in flight; rerunning skips every
item already in the file and recomputes the table from the file alone.

Record fields: ``dataset, id, question, golden_answers, prediction, metrics``
(``em``, ``f1``, ``acc`` from the env's ``reward_components``, plus ``judge``
when an LLM judge ran), ``judge_status``, ``reward, reward_components, turns,
searches, finish_reason, transcript, segments, error``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from deepresearch.agents.eval.judge import LLMJudge
from deepresearch.agents.eval.text_policies import TextEpisode, TextPolicy, run_text_episode
from deepresearch.agents.jsonl import append_jsonl, read_jsonl
from deepresearch.agents.rollout.request import RolloutRequest
from deepresearch.data.download import QA_SETS
from deepresearch.envs import QAItem, load_qa

if TYPE_CHECKING:
    import gymnasium as gym

    from deepresearch.agents.rollout.engines.base import RolloutEngine
    from deepresearch.agents.rollout.runner import RolloutConfig
    from deepresearch.agents.rollout.turns import TurnEncoder

STANDARD_DATASETS = ("nq", "triviaqa", "popqa", "hotpotqa", "2wiki", "musique", "bamboogle")
METRICS = ("em", "f1", "acc")
QA_SUFFIXES = (".jsonl", ".json", ".parquet")


# ------------------------------------------------------------------ datasets
def resolve_dataset(spec: str, data_dir: str | Path | None = None, split: str = "test") -> tuple[str, Path | str]:
    """``(name, source)`` for a QA file/folder path or a standard dataset name under ``data_dir``.

    A name resolves to ``<data_dir>/<name>.jsonl`` (or ``.json``/``.parquet``), a FlashRAG folder
    ``<data_dir>/<name>/<split>.jsonl`` (or FlashRAG's own folder name, as ``data/download.py qa``
    writes it: ``2wikimultihopqa/`` for ``2wiki``), or the one file ``<data_dir>/<name>_*`` (e.g. a
    sample's head).
    """
    if spec == "demo":
        return "demo", "demo"
    path = Path(spec)
    if path.exists():
        return (path.stem if path.is_file() else path.name), path
    if data_dir is None:
        raise FileNotFoundError(f"{spec!r} is not a file; pass a data dir to look up dataset names")
    root = Path(data_dir)
    candidates = [root / f"{spec}{suffix}" for suffix in QA_SUFFIXES] + [root / spec]
    if spec in QA_SETS:
        candidates.append(root / QA_SETS[spec][0])
    candidates += sorted(p for p in root.glob(f"{spec}_*") if p.suffix in QA_SUFFIXES)
    for candidate in candidates:
        if candidate.is_file() or (candidate.is_dir() and any(candidate.glob(f"{split}.*"))):
            return spec, candidate
    known = ", ".join(STANDARD_DATASETS)
    raise FileNotFoundError(f"dataset {spec!r} not found under {root} (standard names: {known})")


def load_dataset(spec: str, data_dir: str | Path | None = None, split: str = "test", limit: int | None = None) -> tuple[str, list[QAItem]]:
    name, source = resolve_dataset(spec, data_dir, split)
    items = load_qa(source, split=split, limit=limit)
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ValueError(f"dataset {name!r} repeats question id {item.id!r}; ids key the resumable results file")
        seen.add(item.id)
    return name, items


def reset_options(item: QAItem) -> dict[str, Any]:
    """Reset kwargs that pose ``item`` to any of our envs, whatever dataset the env was built with."""
    return {"options": {"id": item.id, "question": item.question, "golden_answers": list(item.golden_answers), "metadata": dict(item.metadata)}}


# ------------------------------------------------------------------ records
def make_record(dataset: str, item: QAItem, *, reward: float, components: dict[str, Any], turns: int,
                finish_reason: str, transcript: str, segments: list[dict[str, Any]], error: str | None = None) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "id": item.id,
        "question": item.question,
        "golden_answers": list(item.golden_answers),
        "prediction": components.get("answer"),
        "metrics": {name: float(components.get(name) or 0.0) for name in METRICS},
        "judge_status": None,
        "reward": float(reward),
        "reward_components": components,
        "turns": int(turns),
        "searches": int(components.get("searches", 0)),
        "finish_reason": finish_reason,
        "transcript": transcript,
        "segments": segments,
        "error": error,
    }


def record_from_text_episode(dataset: str, item: QAItem, episode: TextEpisode) -> dict[str, Any]:
    return make_record(dataset, item, reward=episode.reward, components=episode.reward_components, turns=episode.turns,
                       finish_reason=episode.finish_reason, transcript=episode.transcript, segments=episode.segments, error=episode.error)


# ------------------------------------------------------------------ runners
Runner = Callable[[str, Sequence[QAItem]], list[dict[str, Any]]]


@dataclass
class TextPolicyRunner:
    """Runs a text-level policy: one env per worker thread (envs are not thread-safe, policies are)."""

    make_env: Callable[[], Any]
    policy: TextPolicy
    workers: int = 1
    _envs: list[Any] = field(default_factory=list, init=False, repr=False)

    def __call__(self, dataset: str, items: Sequence[QAItem]) -> list[dict[str, Any]]:
        while len(self._envs) < max(1, self.workers):
            self._envs.append(self.make_env())
        width = len(self._envs)
        if width == 1:
            return [self._one(self._envs[0], dataset, item) for item in items]
        # Worker w plays items w, w + width, ... on its own env, one after another.
        def play(worker: int) -> list[dict[str, Any]]:
            return [self._one(self._envs[worker], dataset, item) for item in items[worker::width]]

        with ThreadPoolExecutor(max_workers=width) as pool:
            slices = list(pool.map(play, range(width)))
        return [slices[index % width][index // width] for index in range(len(items))]

    def _one(self, env: Any, dataset: str, item: QAItem) -> dict[str, Any]:
        return record_from_text_episode(dataset, item, run_text_episode(env, self.policy, reset_options(item)))

    def close(self) -> None:
        for env in self._envs:
            env.close()


@dataclass
class EngineRunner:
    """Runs a local model through a rollout engine, token level, ``len(envs)`` episodes per batch."""

    engine: RolloutEngine
    encoder: TurnEncoder
    envs: Sequence[gym.Env]
    rollout_config: RolloutConfig

    def __call__(self, dataset: str, items: Sequence[QAItem]) -> list[dict[str, Any]]:
        from deepresearch.agents.rollout.schedules import collect_rollouts

        records = []
        for start in range(0, len(items), len(self.envs)):
            chunk = list(items[start : start + len(self.envs)])
            envs = list(self.envs[: len(chunk)])
            episodes, _ = collect_rollouts(RolloutRequest(self.engine, envs, [reset_options(i) for i in chunk], list(range(len(chunk))), self.rollout_config, self.encoder))
            finished = {episode.group_id: episode for episode in episodes}
            for index, item in enumerate(chunk):
                episode = finished.get(index)
                if episode is None:  # dropped by the rollout's decode check: recorded, scored 0, never lost
                    records.append(make_record(dataset, item, reward=0.0, components={}, turns=0, finish_reason="dropped",
                                               transcript="", segments=[], error="episode dropped by the rollout's token/text check"))
                    continue
                records.append(make_record(dataset, item, reward=episode.reward, components=episode.reward_components, turns=episode.turns,
                                           finish_reason=episode.finish_reason, transcript=episode.transcript, segments=episode.segments))
        return records


# ------------------------------------------------------------------ evaluation
def apply_judge(judge: LLMJudge, record: dict[str, Any]) -> dict[str, Any]:
    verdict = judge.judge(record["question"], record["prediction"], record["golden_answers"])
    record["judge_status"] = verdict.status
    if verdict.equivalent is not None:
        record["metrics"]["judge"] = float(verdict.equivalent)
    if verdict.detail:
        record["judge_detail"] = verdict.detail
    return record


def run_evaluation(
    datasets: Sequence[tuple[str, Sequence[QAItem]]],
    runner: Runner,
    results_path: str | Path,
    judge: LLMJudge | None = None,
    chunk_size: int = 16,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """Evaluate every item not yet in ``results_path``; returns the per-dataset summary of the whole file."""
    path = Path(results_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["dataset"], r["id"]) for r in read_jsonl(path)}
    todo = [(name, [item for item in items if (name, item.id) not in done]) for name, items in datasets]
    total = sum(len(items) for _, items in todo)
    bar = tqdm(total=total, desc="eval", unit="item", disable=not progress or total == 0)
    for name, items in todo:
        for start in range(0, len(items), chunk_size):
            records = runner(name, items[start : start + chunk_size])
            if judge is not None:
                records = [apply_judge(judge, record) for record in records]
            append_jsonl(path, records)
            bar.update(len(records))
    bar.close()
    return summarize(read_jsonl(path))


# ------------------------------------------------------------------ summary
def summarize(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per dataset: mean EM/F1/acc, judge accuracy over judged items, judge failures, searches, turns,
    the web cost (total USD, when the records carry it), n."""
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_dataset.setdefault(record["dataset"], []).append(record)
    summary = {}
    for name, rows in by_dataset.items():
        row: dict[str, float] = {metric: mean(r["metrics"].get(metric, 0.0) for r in rows) for metric in METRICS}
        judged = [r["metrics"]["judge"] for r in rows if "judge" in r["metrics"]]
        if judged:
            row["judge"] = mean(judged)
        failed = sum(r.get("judge_status") in ("unparseable", "error") for r in rows)
        if failed or judged:
            row["judge_failed"] = failed
        row["searches"] = mean(r["searches"] for r in rows)
        row["turns"] = mean(r["turns"] for r in rows)
        costs = [r["reward_components"]["web_cost_usd"] for r in rows if "web_cost_usd" in r.get("reward_components", {})]
        if costs:  # the web env prices its provider calls; cache and replay hits are free
            row["cost_usd"] = sum(costs)
        row["n"] = len(rows)
        summary[name] = row
    return summary


def markdown_table(summary: dict[str, dict[str, float]]) -> str:
    """One row per dataset; judge columns show "-" where no judge ran; a web cost column (USD, all items)
    appears when some dataset's records carry the web env's cost."""
    with_cost = any("cost_usd" in row for row in summary.values())
    cost_header, cost_rule = (" web cost $ |", "---|") if with_cost else ("", "")
    lines = [f"| dataset | EM | F1 | acc | judge | judge failed | avg searches | avg turns |{cost_header} n |",
             f"|---|---|---|---|---|---|---|---|{cost_rule}---|"]
    for name, row in summary.items():
        judge = f"{row['judge']:.3f}" if "judge" in row else "-"
        failed = str(int(row["judge_failed"])) if "judge_failed" in row else "-"
        cost = (f" {row['cost_usd']:.4f} |" if "cost_usd" in row else " - |") if with_cost else ""
        lines.append(
            f"| {name} | {row['em']:.3f} | {row['f1']:.3f} | {row['acc']:.3f} | {judge} | {failed} "
            f"| {row['searches']:.2f} | {row['turns']:.2f} |{cost} {int(row['n'])} |"
        )
    return "\n".join(lines) + "\n"


def write_table(results_path: str | Path, table_path: str | Path | None = None) -> Path:
    """Recompute the table from the results file alone (``results.jsonl`` -> ``results.md``)."""
    results_path = Path(results_path)
    table_path = Path(table_path) if table_path else results_path.with_suffix(".md")
    tmp = table_path.with_suffix(table_path.suffix + ".tmp")
    tmp.write_text(markdown_table(summarize(read_jsonl(results_path))), encoding="utf-8")
    tmp.replace(table_path)
    return table_path
