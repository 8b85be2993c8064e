"""Turn-synchronous multi-turn rollouts: the reference schedule.

Every turn, all active episodes generate together in one engine call; then their
envs step concurrently in threads, and nobody starts the next turn until the
slowest generation and the slowest env step are done; a call that raises or
outlives ``generation_deadline_s`` drops the episodes it carried. The per-episode
asynchronous schedule (``async_runner.py``) is the default; this one stays as the
reference it is tested against (greedy decoding gives the same token streams).
What happens to each episode (``episode_state.py``) is shared by both.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from deepresearch.agents.rollout.deadline import DeadlineExceeded, call_with_deadline
from deepresearch.agents.rollout.engines.base import RolloutEngine, sampling_request
from deepresearch.agents.rollout.episode import Episode
from deepresearch.agents.rollout.episode_state import (
    EpisodeState,
    RolloutConfig,
    RolloutStats,
    finished_episodes,
    safe_env_call,
)
from deepresearch.agents.rollout.request import RolloutRequest, as_request
from deepresearch.agents.rollout.turns import TurnEncoder

__all__ = ["Episode", "RolloutConfig", "RolloutRequest", "RolloutStats", "run_rollouts", "start_episodes"]


def run_rollouts(request: RolloutRequest, *legacy: Any, **legacy_kwargs: Any) -> tuple[list[Episode], RolloutStats]:
    """Run the request's episodes turn by turn, all of them generating together each turn."""
    request = as_request("run_rollouts", request, legacy, legacy_kwargs)
    engine, envs, resets, group_ids = request.engine, request.envs, request.resets, request.group_ids
    config, encoder, on_finished = request.config, request.encoder, request.on_finished
    stats = RolloutStats()
    eos_ids = engine.end_of_turn_ids
    wall_start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(config.env_threads, len(envs)))) as pool:
        start = time.perf_counter()
        active = start_episodes(pool, envs, resets, group_ids, encoder, stats)
        stats.env_seconds += time.perf_counter() - start

        turn = reported = 0
        context_limit = engine.max_model_len
        budgets: dict[int, int] = {}
        while running := [a for a in active if not a.done]:
            turn += 1
            for item in running:
                budgets[id(item)] = item.token_budget(config, context_limit)
                if budgets[id(item)] < 1:  # no room left to generate: end it like a length cut-off
                    safe_env_call(item, "scoring", item.end_for_length)
            running = [a for a in running if not a.done]
            if not running:
                break
            _generate_turn(engine, running, budgets, config, stats, turn)
            running = [a for a in running if not a.done]  # a failed engine call dropped its episodes
            start = time.perf_counter()
            list(pool.map(lambda a: safe_env_call(a, "step", a.step_env, encoder, eos_ids, config), running))
            stats.env_seconds += time.perf_counter() - start
            if on_finished is not None:
                finished_now = len(envs) - len(active) + sum(item.done for item in active)
                on_finished(finished_now - reported)
                reported = finished_now
    episodes = finished_episodes(active, encoder, eos_ids, stats)
    stats.wall_seconds = time.perf_counter() - wall_start
    return episodes, stats


def start_episodes(
    pool: ThreadPoolExecutor,
    envs: Sequence[Any],
    resets: Sequence[dict[str, Any]],
    group_ids: Sequence[Hashable],
    encoder: TurnEncoder,
    stats: RolloutStats,
) -> list[EpisodeState]:
    """Reset every env concurrently; an env whose reset raises is dropped (counted), not fatal."""

    def reset(pair: tuple[Any, dict[str, Any]]) -> Any:
        try:
            return pair[0].reset(**pair[1])
        except Exception as error:  # noqa: BLE001 - one env's failure must not stop the others
            return error

    states = []
    for env, outcome, group_id in zip(envs, pool.map(reset, zip(envs, resets)), group_ids):
        if isinstance(outcome, Exception):
            stats.drop(f"env reset raised {type(outcome).__name__}: {outcome}")
        else:
            states.append(EpisodeState.start(env, outcome, group_id, encoder))
    return states


def _generate_turn(
    engine: RolloutEngine, running: list[EpisodeState], budgets: dict[int, int], config: RolloutConfig, stats: RolloutStats, turn: int
) -> None:
    """One engine call per distinct (stop strings, token budget) — normally exactly one."""
    by_params: dict[tuple[tuple[str, ...], int], list[EpisodeState]] = {}
    for item in running:
        by_params.setdefault((item.stop, budgets[id(item)]), []).append(item)
    for (stop, max_new), items in by_params.items():
        sampling = sampling_request(config, max_new, stop, None if config.seed is None else config.seed + turn)
        start = time.perf_counter()
        prompts = [item.episode.input_ids for item in items]
        try:
            generations = call_with_deadline(lambda: engine.generate(prompts, sampling), config.generation_deadline_s)
        except Exception as error:  # noqa: BLE001 - a failed call drops its episodes, not the run
            detail = str(error) if isinstance(error, DeadlineExceeded) else f"{type(error).__name__}: {error}"
            for item in items:
                item.drop(f"engine call failed ({detail})")
            continue
        finally:
            stats.generate_seconds += time.perf_counter() - start
        for item, generation in zip(items, generations):
            item.take_generation(generation)
            stats.generated_tokens += len(generation.token_ids)
