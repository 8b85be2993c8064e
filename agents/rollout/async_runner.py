"""Per-episode asynchronous multi-turn rollouts (the default schedule).

Each episode advances on its own, in its own thread: as soon as its generation
ends, its env step runs, and as soon as that returns, its next request goes to
the engine, where it joins the running batch (vLLM batches
continuously; other engines get a ``CallBatcher``). No episode waits for the
slowest generation or the slowest env call of the others, so with slow tools
(live web search, hundreds of ms to seconds per call) the engine keeps working
while envs wait on the network.

The steps applied to an episode are the turn-synchronous reference's
(``episode_state.py``), so the invariants are the same: token-in-token-out,
``loss_mask``, rollout logprobs, token budgets, ``end_episode_early`` at a length
cut-off, the end-of-episode decode check, and an env that raises, or an engine
request that raises or outlives ``generation_deadline_s``, drops only its own
episode. With greedy decoding both schedules give the same token streams.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout  # not the builtin before Python 3.11
from contextlib import contextmanager
from typing import Any

from deepresearch.agents.rollout.engines.base import Generation, RolloutEngine, SamplingConfig, sampling_request
from deepresearch.agents.rollout.engines.continuous import RequestEngine, request_engine
from deepresearch.agents.rollout.episode import Episode
from deepresearch.agents.rollout.episode_state import EpisodeState, RolloutConfig, RolloutStats, finished_episodes, safe_env_call
from deepresearch.agents.rollout.request import RolloutRequest, as_request
from deepresearch.agents.rollout.turns import TurnEncoder


def run_rollouts_async(request: RolloutRequest, *legacy: Any, **legacy_kwargs: Any) -> tuple[list[Episode], RolloutStats]:
    """``run_rollouts``' contract (the same request, episodes in the same order), each episode on its own.

    Sampling seeds are per request (``request_seed``): engines that honour them (vLLM on
    GPU) sample each episode the same way whatever the timing; a batched engine samples
    a call with the seed of its first request.
    """
    request = as_request("run_rollouts_async", request, legacy, legacy_kwargs)
    engine, envs, config, encoder = request.engine, request.envs, request.config, request.encoder
    stats = RolloutStats()
    wall_start = time.perf_counter()
    stalled = threading.Event()  # a request outlived its deadline: its engine call may never return
    with request_engine(engine, stalled.is_set) as requests, ThreadPoolExecutor(max_workers=max(1, len(envs)), thread_name_prefix="episode") as pool:
        busy_before = requests.busy_seconds
        driver = _Driver(requests, engine, config, encoder, stats, request.on_finished, stalled)
        futures = [pool.submit(driver.episode, slot, *work) for slot, work in enumerate(zip(envs, request.resets, request.group_ids))]
        states = [future.result() for future in futures]
        stats.generate_seconds = requests.busy_seconds - busy_before
    episodes = finished_episodes([s for s in states if s is not None], encoder, engine.end_of_turn_ids, stats)
    stats.wall_seconds = time.perf_counter() - wall_start
    return episodes, stats


def request_seed(seed: int | None, turn: int, slot: int) -> int | None:
    """A distinct sampling seed per (episode slot, turn): copies of one prompt must not share a sample."""
    return None if seed is None else (seed + turn) * 1_000_003 + slot


class _Driver:
    """One thread per episode: it waits for its own generations and steps its own env.

    Threads rather than an event loop: a finished generation wakes its episode's thread
    directly, which steps the env and submits the next request itself — the fewest
    hand-offs between threads per turn, which matters when the CPUs are shared.
    At most ``config.env_threads`` env calls run at once.
    """

    def __init__(
        self,
        requests: RequestEngine,
        engine: RolloutEngine,
        config: RolloutConfig,
        encoder: TurnEncoder,
        stats: RolloutStats,
        on_finished: Callable[[int], None] | None,
        stalled: threading.Event,
    ) -> None:
        self.requests, self.config, self.encoder, self.stats = requests, config, encoder, stats
        self.eos_ids = engine.end_of_turn_ids
        self.context_limit = engine.max_model_len
        self.on_finished = on_finished
        self.stalled = stalled
        self._env_slots = threading.BoundedSemaphore(config.env_threads)
        self._lock = threading.Lock()

    def episode(self, slot: int, env: Any, reset: dict[str, Any], group_id: Hashable) -> EpisodeState | None:
        try:
            with self._env_call():
                outcome = env.reset(**reset)
        except Exception as error:  # noqa: BLE001 - one env's failure must not stop the others
            with self._lock:
                self.stats.drop(f"env reset raised {type(error).__name__}: {error}")
            self._report()
            return None
        state = EpisodeState.start(env, outcome, group_id, self.encoder)
        turn = 0
        while not state.done:
            turn += 1
            budget = state.token_budget(self.config, self.context_limit)
            if budget < 1:  # no room left to generate: end it like a length cut-off
                with self._env_call():
                    safe_env_call(state, "scoring", state.end_for_length)
                break
            sampling = sampling_request(self.config, budget, state.stop, request_seed(self.config.seed, turn, slot))
            generation = self._generate(state, sampling)
            if generation is None:
                break
            state.take_generation(generation)
            with self._lock:
                self.stats.generated_tokens += len(generation.token_ids)
            with self._env_call():
                safe_env_call(state, "step", state.step_env, self.encoder, self.eos_ids, self.config)
        self._report()
        return state

    def _generate(self, state: EpisodeState, sampling: SamplingConfig) -> Generation | None:
        """The episode's next generation, or None when the engine failed it (the episode is dropped):
        the request raised, or had no answer by ``generation_deadline_s``."""
        deadline = self.config.generation_deadline_s
        try:
            return self.requests.submit(state.episode.input_ids, sampling).result(timeout=deadline)
        except FutureTimeout:
            self.stalled.set()
            state.drop(f"engine request failed (no answer after {deadline:g} s)")
        except Exception as error:  # noqa: BLE001 - one request's failure is its episode's
            state.drop(f"engine request failed ({type(error).__name__}: {error})")
        return None

    @contextmanager
    def _env_call(self) -> Iterator[None]:
        """Hold one of the ``env_threads`` slots for a blocking env call; its time adds to ``env_seconds``."""
        with self._env_slots:
            start = time.perf_counter()
            try:
                yield
            finally:
                with self._lock:
                    self.stats.env_seconds += time.perf_counter() - start

    def _report(self) -> None:
        if self.on_finished is not None:
            with self._lock:
                self.on_finished(1)
