"""Parsing and scoring stay linear on degenerate turns (models in early RL repeat tags).

Each episode is 4 turns of exactly ``max_action_chars`` (16,000) characters of one
pathological pattern (an opening tag repeated, a closing tag repeated, an observation
and a call tag alternating, ...), against a retriever whose every document is 6,000
characters of the same pattern. Measured per protocol: the whole episode (reset, four
steps, the final scoring with the protocol's default preset), and scoring the final
transcript with every preset that fits the protocol. Plus one turn of 1,000,000
characters (over the limit: judged invalid unread, kept in the transcript, and read
once by scoring). Goal (issue 11): every episode within the limits <= 50 ms.

Each time is the best of ``REPEATS`` runs (the machine is shared; the best run is the
cost, the others add other people's load). Prints JSON: the worst pattern and its
milliseconds per protocol and per preset.
"""

from __future__ import annotations

import json
import os
import platform
import time

from deepresearch.envs import PROTOCOLS, Document, QAItem, make_wiki_env
from deepresearch.rewards import REWARD_PRESETS, EpisodeContext

QUESTIONS = [QAItem(id="0", question="Where was Velmora Quistad born?", golden_answers=("Tarsenby",))]
ACTION_CHARS = 16_000
OBSERVATION_CHARS = 6_000
TURNS = 4
GOAL_MS = 50.0
REPEATS = 3


class PatternRetriever:
    """Every search returns ``k`` documents made of the pattern (what a hostile page could hold)."""

    def __init__(self) -> None:
        self.pattern = "x"

    def search(self, queries: list[str], k: int) -> list[list[Document]]:
        text = (self.pattern * (OBSERVATION_CHARS // max(1, len(self.pattern)) + 1))[:OBSERVATION_CHARS]
        return [[Document(id=str(i), title="T", text=text, contents=f'"T"\n{text}') for i in range(k)] for _ in queries]


def patterns(tags) -> dict[str, str]:
    names = tags.names
    found = {f"<{name}>*": f"<{name}>" for name in names}
    found |= {f"</{name}>*": f"</{name}>" for name in names}
    found[f"<{tags.observation}><{tags.call}>*"] = f"<{tags.observation}><{tags.call}>"
    found[f"<{tags.answer}>x</{tags.call}>*"] = f"<{tags.answer}>x</{tags.call}>"
    found["all tags*"] = "".join(f"<{name}></{name}>" if i % 2 else f"<{name}>" for i, name in enumerate(names))
    found["\\boxed{*"] = "\\boxed{"
    found["<|im_end|>*"] = "<|im_end|>\n<|im_start|>assistant\n"
    return found


def fitting_presets(protocol) -> list[str]:
    fitting = []
    for name, reward_fn in REWARD_PRESETS.items():
        try:
            reward_fn("", [""], protocol.tags)
        except ValueError:
            continue
        fitting.append(name)
    return fitting


def run_episode(env, turn: str) -> tuple[float, dict]:
    start = time.perf_counter()
    _, info = env.reset(seed=0)
    for _ in range(TURNS):
        _, _, terminated, truncated, info = env.step(turn)
        if terminated or truncated:
            break
    return (time.perf_counter() - start) * 1000, info


def score_ms(preset: str, info: dict, tags) -> float:
    """Score the episode's transcript the way the env does, from its prompt and segments."""
    segments = info["segments"]
    offset = segments[0]["end"]
    spans = tuple((s["start"] - offset, s["end"] - offset) for s in segments if s["source"] == "env")
    episode = EpisodeContext(prompt=info["transcript"][:offset], env_spans=spans, finished=False)
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        REWARD_PRESETS[preset](info["transcript"][offset:], info["golden_answers"], tags, episode=episode)
        best = min(best, (time.perf_counter() - start) * 1000)
    return best


def worst(results: dict[str, float]) -> dict[str, object]:
    name = max(results, key=results.get)
    return {"pattern": name, "ms": round(results[name], 2)}


def main() -> None:
    report: dict[str, object] = {}
    for protocol_name in PROTOCOLS:
        retriever = PatternRetriever()
        env = make_wiki_env(retriever=retriever, dataset=QUESTIONS, protocol=protocol_name, max_turns=TURNS,
                            max_action_chars=ACTION_CHARS, max_observation_chars=OBSERVATION_CHARS)
        protocol = env.protocol
        presets = fitting_presets(protocol)
        episode_ms: dict[str, float] = {}
        preset_ms: dict[str, dict[str, float]] = {preset: {} for preset in presets}
        for name, unit in patterns(protocol.tags).items():
            retriever.pattern = unit
            turn = (unit * (ACTION_CHARS // len(unit) + 1))[:ACTION_CHARS]
            # a search first, so the env writes an observation of the pattern too
            env.reset(seed=0)
            run_episode(env, turn)  # warm-up
            for candidate in (turn, protocol.search_action("q") + turn[: ACTION_CHARS - 40]):
                runs = [run_episode(env, candidate) for _ in range(REPEATS)]
                elapsed, info = min(runs[0][0], *(ms for ms, _ in runs[1:])), runs[-1][1]
                episode_ms[name] = max(episode_ms.get(name, 0.0), elapsed)
                for preset in presets:
                    preset_ms[preset][name] = max(preset_ms[preset].get(name, 0.0), score_ms(preset, info, protocol.tags))
        oversized = (f"<{protocol.tags.answer}>" * 1_000_000)[:1_000_000]
        env.reset(seed=0)
        start = time.perf_counter()
        _, _, _, _, info = env.step(oversized)
        step_ms = (time.perf_counter() - start) * 1000
        report[protocol_name] = {
            "episode_worst": worst(episode_ms),
            "scoring_worst_by_preset": {preset: worst(values) for preset, values in preset_ms.items()},
            "oversized_turn_1M_chars": {
                "step_ms": round(step_ms, 2),
                "judged": info["action"]["kind"],
                "score_ms_by_preset": {preset: round(score_ms(preset, info, protocol.tags), 2) for preset in presets},
            },
        }
    episode_worst = max(entry["episode_worst"]["ms"] for entry in report.values())  # type: ignore[index]
    print(json.dumps({
        "benchmark": "parsing",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()]},
        "episode": f"{TURNS} turns x {ACTION_CHARS} chars, observations {OBSERVATION_CHARS} chars of the same pattern",
        "goal_ms": GOAL_MS,
        "worst_episode_ms": episode_worst,
        "goal_met": episode_worst <= GOAL_MS,
        "protocols": report,
    }, indent=1))


if __name__ == "__main__":
    main()
