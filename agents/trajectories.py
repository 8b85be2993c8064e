"""Trajectory records: one JSON line per episode with its transcript and who wrote what.

The one format that trainers write (``episodes/*.jsonl``), ``deepresearch eval``
writes (``results.jsonl``), the viewer renders and SFT learns from. A record needs
``transcript`` and ``segments`` (spans ``{"start", "end", "source"}``, source
``prompt | policy | env``); other fields (question, reward, ...) ride along.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from deepresearch.agents.jsonl import read_jsonl
from deepresearch.agents.rollout.episode import Episode


def is_trajectory_record(row: Any) -> bool:
    return isinstance(row, dict) and isinstance(row.get("transcript"), str) and isinstance(row.get("segments"), list)


def read_trajectories(path: str | Path) -> list[dict[str, Any]]:
    """Trajectory records from a JSONL file, or from every ``*.jsonl`` under a folder (sorted
    by path); lines of other kinds (e.g. ``metrics.jsonl``) are skipped, so a run folder
    can be passed as it is. ``dataset`` defaults to the file's name."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob("*.jsonl"))
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"no such file or folder: {path}")
    records = []
    for file in files:
        for row in read_jsonl(file):
            if is_trajectory_record(row):
                row.setdefault("dataset", file.stem)
                records.append(row)
    return records


def episode_record(episode: Episode, **extra: Any) -> dict[str, Any]:
    """The record of a rollout ``Episode`` (``extra`` adds fields such as ``step``)."""
    components = dict(episode.reward_components)
    return {
        "question": episode.question,
        "group_id": str(episode.group_id),
        "prediction": components.get("answer"),
        "reward": float(episode.reward),
        "reward_components": components,
        "turns": episode.turns,
        "searches": episode.searches,
        "finish_reason": episode.finish_reason,
        "transcript": episode.transcript,
        "segments": list(episode.segments),
        **extra,
    }


@dataclass
class Turn:
    source: str  # "policy" or "env"
    text: str
    # Chat messages the env added with this text (a tool turn); [] when it continues the turn.
    messages: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Trajectory:
    """A prompt (text and chat form) and the turns after it, in order: what SFT trains on."""

    prompt: str
    messages: list[dict[str, str]]
    turns: list[Turn]
    # The env's reward for the episode, when it was played (None for recorded text).
    reward: float | None = None

    @classmethod
    def from_transcript(cls, transcript: str, segments: Sequence[dict[str, Any]], messages: list[dict[str, str]] | None = None) -> Trajectory:
        pieces = [(s["source"], transcript[s["start"] : s["end"]]) for s in segments]
        prompt = "".join(text for source, text in pieces if source == "prompt")
        return cls(prompt=prompt, messages=messages or [], turns=[Turn(s, t) for s, t in pieces if s != "prompt"])

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Trajectory:
        return cls.from_transcript(record["transcript"], record["segments"], record.get("messages"))
