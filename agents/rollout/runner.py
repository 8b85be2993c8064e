"""Batched multi-turn rollouts against any env that follows the text contract.

Every turn, all active episodes generate together in one engine call; then their
envs step concurrently in threads. Token-in-token-out: the ids the policy
sampled are appended exactly as sampled (``loss_mask`` 1, engine logprob kept);
only env text is tokenised (``loss_mask`` 0). At the end each episode is
checked: decoding its policy ids must give exactly the text the env saw; an
episode that fails is dropped and counted, never a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from deepresearch.agents.rollout.engines.base import RolloutEngine, SamplingConfig
from deepresearch.agents.rollout.episode import Episode
from deepresearch.agents.rollout.turns import TurnEncoder
from deepresearch.envs import end_episode_early
from deepresearch.envs.transcript import Transcript


@dataclass(frozen=True)
class RolloutConfig:
    """Sampling and token budgets of multi-turn episodes."""

    max_new_tokens_per_turn: int = 256
    # Budget for everything after the prompt (policy + env tokens); the episode ends at it.
    max_response_tokens: int = 1024
    temperature: float = 1.0
    top_p: float = 1.0
    env_threads: int = 16
    # Sampling seed (each turn adds its index); None: unseeded. The trainer sets one per step.
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens_per_turn <= self.max_response_tokens:
            raise ValueError("need 1 <= max_new_tokens_per_turn <= max_response_tokens")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.env_threads < 1:
            raise ValueError("need temperature >= 0, 0 < top_p <= 1 and env_threads >= 1")


@dataclass
class RolloutStats:
    episodes: int = 0
    dropped: int = 0
    drop_reasons: list[str] = field(default_factory=list)
    generate_seconds: float = 0.0
    env_seconds: float = 0.0
    generated_tokens: int = 0


class _Active:
    """Bookkeeping for one running episode.

    ``own_transcript`` is kept for envs whose ``info`` carries no transcript and segments
    (any Gymnasium text env): the loop knows who wrote each piece, so it records them.
    """

    def __init__(self, env: Any, episode: Episode, stop: tuple[str, ...], prompt: str, info: dict[str, Any]) -> None:
        self.env, self.episode, self.stop = env, episode, stop
        self.done = False
        self.budget = 0
        self.last_ids: list[int] = []
        self.own_transcript = None if "segments" in info else Transcript(prompt)
        self.record(info)

    def record(self, info: dict[str, Any], action: str = "", observation: str = "") -> None:
        """Take the transcript and segments from the env, or extend our own."""
        if self.own_transcript is None:
            self.episode.transcript, self.episode.segments = info["transcript"], info["segments"]
            return
        self.own_transcript.append(action, "policy")
        self.own_transcript.append(observation, "env")
        self.episode.transcript, self.episode.segments = self.own_transcript.text, self.own_transcript.segments()


def run_rollouts(
    engine: RolloutEngine,
    envs: Sequence[Any],
    resets: Sequence[dict[str, Any]],
    group_ids: Sequence[Hashable],
    config: RolloutConfig,
    encoder: TurnEncoder,
    on_finished: Callable[[int], None] | None = None,
) -> tuple[list[Episode], RolloutStats]:
    """Run one episode per env; ``resets[i]`` are the kwargs of ``envs[i].reset`` (seed/options).

    ``on_finished(n)`` is told each time ``n`` more episodes have ended (for a progress bar).
    """
    if not (len(envs) == len(resets) == len(group_ids)):
        raise ValueError("envs, resets and group_ids must have the same length")
    stats = RolloutStats()
    eos_ids = engine.end_of_turn_ids
    with ThreadPoolExecutor(max_workers=max(1, min(config.env_threads, len(envs)))) as pool:
        start = time.perf_counter()
        resets_out = list(pool.map(lambda pair: pair[0].reset(**pair[1]), zip(envs, resets)))
        stats.env_seconds += time.perf_counter() - start
        active = []
        for env, (prompt, info), group_id in zip(envs, resets_out, group_ids):
            episode = Episode(group_id=group_id, prompt_ids=encoder.encode_prompt(prompt, info.get("messages")))
            episode.question = str(info.get("question", ""))
            active.append(_Active(env, episode, tuple(info.get("stop", ())), prompt, info))

        turn = reported = 0
        context_limit = engine.max_model_len
        while running := [a for a in active if not a.done]:
            turn += 1
            for item in running:
                item.budget = _token_budget(item.episode, config, context_limit)
                if item.budget < 1:  # no room left to generate: end it like a length cut-off
                    _end_for_length(item)
            running = [a for a in running if not a.done]
            if not running:
                break
            _generate_turn(engine, running, config, stats, turn)
            start = time.perf_counter()
            list(pool.map(lambda a: _step(a, encoder, eos_ids, config), running))
            stats.env_seconds += time.perf_counter() - start
            if on_finished is not None:
                finished_now = sum(item.done for item in active)
                on_finished(finished_now - reported)
                reported = finished_now

    finished = []
    for item in active:
        problem = _check_policy_text(item.episode, encoder.tokenizer, eos_ids, encoder.mode)
        if problem:
            stats.dropped += 1
            stats.drop_reasons.append(problem)
        else:
            finished.append(item.episode)
    stats.episodes = len(finished)
    return finished, stats


def _generate_turn(engine: RolloutEngine, running: list[_Active], config: RolloutConfig, stats: RolloutStats, turn: int) -> None:
    """One engine call per distinct (stop strings, token budget) — normally exactly one."""
    by_params: dict[tuple[tuple[str, ...], int], list[_Active]] = {}
    for item in running:
        by_params.setdefault((item.stop, item.budget), []).append(item)
    for (stop, max_new), items in by_params.items():
        sampling = SamplingConfig(
            max_new_tokens=max_new,
            temperature=config.temperature,
            top_p=config.top_p,
            stop=stop,
            seed=None if config.seed is None else config.seed + turn,
        )
        start = time.perf_counter()
        generations = engine.generate([item.episode.input_ids for item in items], sampling)
        stats.generate_seconds += time.perf_counter() - start
        for item, generation in zip(items, generations):
            item.episode.append(generation.token_ids, True, generation.logprobs)
            item.episode.finish_reason = generation.finish_reason
            stats.generated_tokens += len(generation.token_ids)
            item.last_ids = generation.token_ids


def _step(item: _Active, encoder: TurnEncoder, eos_ids: frozenset[int], config: RolloutConfig) -> None:
    episode = item.episode
    action_ids = _strip_trailing_eos(item.last_ids, eos_ids)
    action = encoder.tokenizer.decode(action_ids)
    episode.policy_texts.append(action)
    observation, reward, terminated, truncated, info = item.env.step(action)
    episode.turns += 1
    item.record(info, action, observation)
    if terminated or truncated:
        item.done = True
        episode.untokenized_tail = observation
        episode.reward = float(reward)
        episode.reward_components = dict(info.get("reward_components", {}))
        episode.finish_reason = "terminated" if terminated else "truncated"
        return
    observation_ids = encoder.encode_observation(observation, info.get("new_messages") or [], item.last_ids)
    if len(episode.response_ids) + len(observation_ids) >= config.max_response_tokens:
        episode.untokenized_tail = observation
        _end_for_length(item)
        return
    episode.append(observation_ids, False)


def _token_budget(episode: Episode, config: RolloutConfig, context_limit: int | None) -> int:
    """New tokens this turn may use: per-turn cap, response budget and the engine's context."""
    budget = min(config.max_new_tokens_per_turn, config.max_response_tokens - len(episode.response_ids))
    if context_limit is not None:
        budget = min(budget, context_limit - len(episode.prompt_ids) - len(episode.response_ids))
    return budget


def _end_for_length(item: _Active) -> None:
    """Out of tokens: the episode ends unanswered, scored as the env would score it now
    (our envs score a transcript cut short; other envs give 0)."""
    item.done = True
    item.episode.finish_reason = "length"
    item.episode.reward, item.episode.reward_components = end_episode_early(item.env)


def _check_policy_text(episode: Episode, tokenizer: Any, eos_ids: frozenset[int], mode: str) -> str | None:
    """Decoding the ids must reproduce the env's transcript.

    Always: the policy turns, decoded from the sampled ids, are exactly the env's
    ``policy`` spans. In text mode also: decoding the whole response (EOS ids
    aside) is exactly the transcript after the prompt — this catches env text
    that does not survive tokenisation.
    """
    spans = {"policy": [], "env": []}
    for segment in episode.segments:
        if segment["source"] in spans:
            spans[segment["source"]].append(episode.transcript[segment["start"] : segment["end"]])
    if "".join(spans["policy"]) != "".join(episode.policy_texts):
        return "decoded policy turns differ from the env's policy spans"
    if mode == "text":
        prompt_end = episode.segments[0]["end"] if episode.segments[0]["source"] == "prompt" else 0
        decoded = tokenizer.decode([t for t in episode.response_ids if t not in eos_ids])
        if decoded + episode.untokenized_tail != episode.transcript[prompt_end:]:
            return "decoded response differs from the transcript"
    return None


def _strip_trailing_eos(ids: Sequence[int], eos_ids: frozenset[int]) -> list[int]:
    ids = list(ids)
    while ids and ids[-1] in eos_ids:
        ids.pop()
    return ids
