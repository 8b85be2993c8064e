"""One running episode and the steps every rollout schedule applies to it.

The turn-synchronous loop (``runner.py``) and the per-episode asynchronous loop
(``async_runner.py``) differ only in *when* these steps run; what each step does
to an episode is written once, here, so both keep the same invariants:
token-in-token-out (sampled ids appended as sampled, ``loss_mask`` 1 and the
engine logprob kept; only env text is tokenised), the per-turn and per-episode
token budgets, ``end_episode_early`` at a length cut-off, the end-of-episode
decode check, and an env that raises ends only its own episode (dropped and
counted, never a crash of the others). So do an engine request that raises or
outlives ``generation_deadline_s``, and (``drop_on_tool_error``) a tool call the env
reports as failed: no episode is scored on an observation it never got.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from deepresearch.agents.rollout.engines.base import Generation
from deepresearch.agents.rollout.episode import Episode
from deepresearch.agents.rollout.turns import TurnEncoder
from deepresearch.envs import end_episode_early
from deepresearch.envs.transcript import Transcript

RolloutSchedule = Literal["async", "sync"]


@dataclass(frozen=True)
class RolloutConfig:
    """Sampling, token budgets and schedule of multi-turn episodes.

    ``schedule``: ``async`` runs each episode on its own (its env step starts as soon as
    its generation ends, and its next request joins the engine's running batch);
    ``sync`` is the turn-synchronous reference (all active episodes generate together,
    then all envs step). With greedy decoding both give the same token streams.
    """

    max_new_tokens_per_turn: int = 256
    # Budget for everything after the prompt (policy + env tokens); the episode ends at it.
    max_response_tokens: int = 1024
    temperature: float = 1.0
    top_p: float = 1.0
    # Keep only the k most likely tokens when sampling (0: off).
    top_k: int = 0
    # Concurrent env calls (reset/step run in a thread pool of this size).
    env_threads: int = 16
    # Sampling seed; None: unseeded. The trainer sets one per step.
    seed: int | None = None
    schedule: RolloutSchedule = "async"
    # An engine request (async) or call (sync) still unanswered after this many seconds is given
    # up: its episodes are dropped and counted instead of the run stalling (None: wait forever).
    generation_deadline_s: float | None = 600.0
    # Drop (and count) an episode whose env reports a failed tool call (``info["tool_error"]``: the
    # retriever was unreachable) instead of training on an observation it never got.
    drop_on_tool_error: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens_per_turn <= self.max_response_tokens:
            raise ValueError("need 1 <= max_new_tokens_per_turn <= max_response_tokens")
        if self.generation_deadline_s is not None and self.generation_deadline_s <= 0:
            raise ValueError(f"generation_deadline_s must be > 0 or None, got {self.generation_deadline_s}")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0 or self.env_threads < 1:
            raise ValueError("need temperature >= 0, 0 < top_p <= 1, top_k >= 0 and env_threads >= 1")
        if self.schedule not in ("async", "sync"):
            raise ValueError(f"schedule must be 'async' or 'sync', not {self.schedule!r}")


@dataclass
class RolloutStats:
    """What a rollout run cost.

    ``generate_seconds`` is the time the engine was computing (the sync path: its
    batched calls; the async path: its steps or calls, overlapping env work), so
    ``engine_busy_fraction = generate_seconds / wall_seconds``. ``env_seconds`` is the
    wall time of the env phases on the sync path and the env calls' time summed over
    episodes on the async path (where they overlap each other and generation).
    """

    episodes: int = 0
    dropped: int = 0
    drop_reasons: list[str] = field(default_factory=list)
    generate_seconds: float = 0.0
    env_seconds: float = 0.0
    generated_tokens: int = 0
    wall_seconds: float = 0.0

    @property
    def engine_busy_fraction(self) -> float:
        return self.generate_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def drop(self, reason: str) -> None:
        self.dropped += 1
        self.drop_reasons.append(reason)

    def add(self, other: RolloutStats) -> None:
        """Fold in another run's counts and times (several rollout rounds of one training step)."""
        self.episodes += other.episodes
        self.dropped += other.dropped
        self.drop_reasons.extend(other.drop_reasons)
        self.generate_seconds += other.generate_seconds
        self.env_seconds += other.env_seconds
        self.generated_tokens += other.generated_tokens
        self.wall_seconds += other.wall_seconds


class EpisodeState:
    """Bookkeeping for one running episode.

    ``own_transcript`` is kept for envs whose ``info`` carries no transcript and segments
    (any Gymnasium text env): the loop knows who wrote each piece, so it records them.
    ``error`` is set when the env or the engine failed the episode; it then ends and is dropped.
    """

    def __init__(self, env: Any, episode: Episode, stop: tuple[str, ...], prompt: str, info: dict[str, Any]) -> None:
        self.env, self.episode, self.stop = env, episode, stop
        self.done = False
        self.error: str | None = None
        self.last_ids: list[int] = []
        self.own_transcript = None if "segments" in info else Transcript(prompt)
        self.record(info)

    @classmethod
    def start(cls, env: Any, reset: tuple[str, dict[str, Any]], group_id: Hashable, encoder: TurnEncoder) -> EpisodeState:
        """The state right after ``env.reset`` returned ``reset``."""
        prompt, info = reset
        episode = Episode(group_id=group_id, prompt_ids=encoder.encode_prompt(prompt, info.get("messages")))
        episode.question = str(info.get("question", ""))
        return cls(env, episode, tuple(info.get("stop", ())), prompt, info)

    def record(self, info: dict[str, Any], action: str = "", observation: str = "") -> None:
        """Take the transcript and segments from the env, or extend our own."""
        if self.own_transcript is None:
            self.episode.transcript, self.episode.segments = info["transcript"], info["segments"]
            return
        self.own_transcript.append(action, "policy")
        self.own_transcript.append(observation, "env")
        self.episode.transcript, self.episode.segments = self.own_transcript.text, self.own_transcript.segments()

    def token_budget(self, config: RolloutConfig, context_limit: int | None) -> int:
        """New tokens this turn may use: per-turn cap, response budget and the engine's context."""
        episode = self.episode
        budget = min(config.max_new_tokens_per_turn, config.max_response_tokens - len(episode.response_ids))
        if context_limit is not None:
            budget = min(budget, context_limit - len(episode.prompt_ids) - len(episode.response_ids))
        return budget

    def take_generation(self, generation: Generation) -> None:
        """Append the sampled ids exactly as sampled (trainable, with their logprobs)."""
        self.episode.append(generation.token_ids, True, generation.logprobs)
        self.episode.finish_reason = generation.finish_reason
        self.last_ids = generation.token_ids

    def step_env(self, encoder: TurnEncoder, eos_ids: frozenset[int], config: RolloutConfig) -> None:
        """Decode the last turn, step the env with it, and append the env's text (masked)."""
        episode = self.episode
        action = encoder.tokenizer.decode(strip_trailing_eos(self.last_ids, eos_ids))
        episode.policy_texts.append(action)
        observation, reward, terminated, truncated, info = self.env.step(action)
        episode.turns += 1
        self.record(info, action, observation)
        if config.drop_on_tool_error and info.get("tool_error"):
            self.drop(f"env tool failed: {info['tool_error']}")
            return
        if terminated or truncated:
            self.done = True
            episode.untokenized_tail = observation
            episode.reward = float(reward)
            episode.reward_components = dict(info.get("reward_components", {}))
            episode.finish_reason = "terminated" if terminated else "truncated"
            return
        observation_ids = encoder.encode_observation(observation, info.get("new_messages") or [], self.last_ids)
        if len(episode.response_ids) + len(observation_ids) >= config.max_response_tokens:
            episode.untokenized_tail = observation
            self.end_for_length()
            return
        episode.append(observation_ids, False)

    def end_for_length(self) -> None:
        """Out of tokens: the episode ends unanswered, scored as the env would score it now
        (our envs score a transcript cut short; other envs give 0)."""
        self.done = True
        self.episode.finish_reason = "length"
        self.episode.reward, self.episode.reward_components = end_episode_early(self.env)

    def fail(self, where: str, error: BaseException) -> None:
        """The env raised: end this episode only; it is dropped at the end, with the reason."""
        self.drop(f"env {where} raised {type(error).__name__}: {error}")

    def drop(self, reason: str) -> None:
        """End this episode only; it is dropped at the end and counted under ``reason``."""
        self.done = True
        self.error = reason


def safe_env_call(state: EpisodeState, where: str, call: Any, *args: Any) -> None:
    """Run ``call(*args)`` for ``state``; an exception ends this episode, never the run."""
    try:
        call(*args)
    except Exception as error:  # noqa: BLE001 - any env failure is this episode's, not the batch's
        state.fail(where, error)


def finished_episodes(states: Sequence[EpisodeState], encoder: TurnEncoder, eos_ids: frozenset[int], stats: RolloutStats) -> list[Episode]:
    """The episodes that pass the end-of-episode checks; the others are counted as dropped."""
    finished = []
    for state in states:
        problem = state.error or check_policy_text(state.episode, encoder.tokenizer, eos_ids, encoder.mode)
        if problem:
            stats.drop(problem)
        else:
            finished.append(state.episode)
    stats.episodes = len(finished)
    return finished


def check_policy_text(episode: Episode, tokenizer: Any, eos_ids: frozenset[int], mode: str) -> str | None:
    """Decoding the ids must reproduce the env's transcript.

    Always: the policy turns, decoded from the sampled ids, are exactly the env's
    ``policy`` spans. In text mode also: decoding the whole response (EOS ids
    aside) is exactly the transcript after the prompt — this catches env text
    that does not survive tokenisation.
    """
    spans: dict[str, list[str]] = {"policy": [], "env": []}
    for segment in episode.segments:
        if segment["source"] in spans:
            spans[segment["source"]].append(episode.transcript[segment["start"] : segment["end"]])
    if "".join(spans["policy"]) != "".join(episode.policy_texts):
        return "decoded policy turns differ from the env's policy spans"
    if mode == "text":
        prompt_end = episode.segments[0]["end"] if episode.segments[0]["source"] == "prompt" else 0
        # End-of-turn ids are dropped only where the policy sampled them: env text may hold the
        # same special token literally (DeepResearcher's tool turns are ChatML text).
        kept = [t for t, sampled in zip(episode.response_ids, episode.loss_mask) if not (sampled and t in eos_ids)]
        decoded = tokenizer.decode(kept)
        if decoded + episode.untokenized_tail != episode.transcript[prompt_end:]:
            return "decoded response differs from the transcript"
    return None


def strip_trailing_eos(ids: Sequence[int], eos_ids: frozenset[int]) -> list[int]:
    ids = list(ids)
    while ids and ids[-1] in eos_ids:
        ids.pop()
    return ids
