"""The trainer's rollout batches, generated at most ``max_staleness`` policy versions ahead.

Version ``v`` is the policy after ``v`` training steps (the trainer's step count; a step
that learned nothing still counts, its weights are unchanged).
The batch of step ``s`` is generated with weights of version ``>= s - max_staleness``
and every episode records the version that sampled it.

* ``max_staleness = 0`` (default): the batch is generated when the trainer asks for
  it, after the previous update's weights were synced: on-policy, in the caller's
  thread, with the engine woken for it and put to sleep after (GPU memory goes to
  training in between).
* ``max_staleness = k >= 1``: a producer thread generates batches while the trainer
  updates. The loss corrects for the older sampling policy with the rollout
  logprobs (truncated importance sampling).

Weight sync is **finish-then-swap at batch boundaries**: the trainer publishes each
new version; the producer loads the newest published weights into the engine only
between its batches, when no episode is in flight. No episode is lost or cut, none
mixes two policies (so its version, staleness and importance weights are defined per
episode), and no generated token is thrown away. Abort-and-resume would swap sooner
but discards the partial generations of the in-flight turns and, resumed, gives an
episode turns from two policies; the bound on staleness already keeps the engine
busy while the trainer updates, which is what the swap delay would cost.

Everything that touches the engine (rollouts, held-out evaluation, weight syncs)
runs in one thread — the caller's for ``k = 0``, the producer's otherwise — so the
engine is never used from two threads at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from deepresearch.agents.grpo.dynamic_sampling import informative, uninformative_groups
from deepresearch.agents.rollout.engines.base import RolloutEngine
from deepresearch.agents.rollout.episode import Episode
from deepresearch.agents.rollout.episode_state import RolloutStats
from deepresearch.agents.rollout.request import RolloutRequest
from deepresearch.agents.rollout.schedules import collect_rollouts
from deepresearch.agents.rollout.turns import TurnEncoder
from deepresearch.agents.train.config import GRPOConfig
from deepresearch.agents.train.sampler import QuestionSampler
from deepresearch.envs import question_reset

T = TypeVar("T")
Weights = Iterable[tuple[str, Any]]
# (total, description) -> a progress bar with ``update(n)``, used as a context manager.
ProgressFactory = Callable[[int, str], AbstractContextManager[Any]]


@dataclass
class ProducedBatch:
    """One step's episodes, the questions they answer and what producing them cost."""

    step: int
    episodes: list[Episode]
    stats: RolloutStats
    questions: list[int]
    policy_version: int
    metrics: dict[str, float] = field(default_factory=dict)


class RolloutProducer:
    """Generates the trainer's batches (``max_staleness`` ahead) and runs its other engine work.

    ``first_step``: the step (= policy version) the engine's weights are at now.
    ``weights`` passed to ``publish`` are loaded with ``engine.sync_weights``; None means
    there is nothing to load (the engine shares the trainer's model, or nothing changed).
    Overlapped, they must be a list (loaded later, in the producer's thread); on-policy an
    iterator is consumed at once, in the caller's thread.

    Data-parallel: every process draws the step's questions (the same on each) and rolls
    out its own ``block`` of them; ``rank`` varies the sampling seed. Dynamic sampling
    refills from one process's own results, so it needs a single process.
    """

    def __init__(
        self,
        engine: RolloutEngine,
        envs: list[Any],
        encoder: TurnEncoder,
        sampler: QuestionSampler,
        config: GRPOConfig,
        first_step: int,
        progress: ProgressFactory,
        block: range | None = None,
        rank: int = 0,
    ) -> None:
        self.engine, self.envs, self.encoder, self.sampler, self.config = engine, envs, encoder, sampler, config
        self.progress = progress
        self.block = block if block is not None else range(config.questions_per_step)
        self.rank = rank
        self.overlapped = config.max_staleness > 0
        self._condition = threading.Condition()
        self._engine_version = first_step
        self._published: tuple[int, Weights | None] | None = None
        self._latest_version = first_step
        self._next_step = first_step
        self._ready: dict[int, ProducedBatch] = {}
        self._sampler_before: dict[int, dict[str, int]] = {}
        self._jobs: list[tuple[Callable[[RolloutEngine], Any], Future[Any]]] = []
        self._error: BaseException | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------- trainer side
    def next_batch(self, step: int) -> ProducedBatch:
        """The batch of ``step`` (steps are asked for in order)."""
        if not self.overlapped:
            self._apply_published()
            self.engine.wake()
            try:
                return self._produce(step)
            finally:
                self.engine.sleep()
        self._start_thread()
        with self._condition:
            self._condition.wait_for(lambda: step in self._ready or self._error is not None)
            self._raise_error()
            return self._ready.pop(step)

    def publish(self, version: int, weights: Weights | None) -> None:
        """The trainer's policy after ``version`` steps; with overlap, clone the weights first (training
        goes on). ``weights`` None: nothing new to load (a shared model, or a step that learned nothing)."""
        with self._condition:
            if weights is None and self._published is not None:
                weights = self._published[1]  # still to be loaded: a later version must not drop them
            self._published = (version, weights)
            self._latest_version = version
            self._condition.notify_all()
        if not self.overlapped:
            self._apply_published()

    def run_on_engine(self, work: Callable[[RolloutEngine], T]) -> T:
        """Run ``work(engine)`` with the newest published weights loaded (e.g. a held-out evaluation);
        with overlap, at the producer's next batch boundary."""
        if not self.overlapped:
            self._apply_published()
            self.engine.wake()
            try:
                return work(self.engine)
            finally:
                self.engine.sleep()
        self._start_thread()
        future: Future[T] = Future()
        with self._condition:
            self._raise_error()
            self._jobs.append((work, future))
            self._condition.notify_all()
        return future.result()

    def sampler_state(self, step: int) -> dict[str, int]:
        """The sampler's state before the questions of ``step`` were taken (what a resumed run restores)."""
        with self._condition:
            recorded = self._sampler_before.get(step)
            return dict(recorded) if recorded is not None else self.sampler.state_dict()

    def checkpoint_state(self, step: int) -> dict[str, Any]:
        """What a run resumed after ``step`` steps needs to go on exactly as this one does.

        With overlap, the batches of steps ``step .. step + max_staleness - 1`` may already be
        generated, by older weights than a resumed engine starts with: they are part of the
        run's state (waited for when still in flight; the trainer waits for the first of them
        next anyway), together with the sampler position after them. A later batch is
        generated with the weights of version ``step`` at the earliest, as a resumed run does.
        On-policy nothing runs ahead and this is the sampler position of ``step``.
        """
        ahead = range(step, min(step + self.config.max_staleness, self.config.steps)) if self.overlapped else range(step, step)
        if len(ahead):
            self._start_thread()
        with self._condition:
            self._condition.wait_for(lambda: all(s in self._ready for s in ahead) or self._error is not None)
            self._raise_error()
            return {
                "next_step": ahead.stop,
                "ready": {s: self._ready[s] for s in ahead},
                "sampler_before": {s: self.sampler_state(s) for s in range(step, ahead.stop + 1)},
            }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``checkpoint_state``'s result (before the first batch is asked for)."""
        with self._condition:
            if self._thread is not None or self._ready:
                raise RuntimeError("restore the producer before it generates anything")
            self._ready = dict(state["ready"])
            self._next_step = int(state["next_step"])
            self._sampler_before.update(state["sampler_before"])
            self.sampler.load_state_dict(state["sampler_before"][self._next_step])

    def close(self) -> None:
        """Stop the producer thread after the batch it is working on."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join()

    # ---------------------------------------------------------- producer side
    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="rollout-producer", daemon=True)
            self._thread.start()

    def _serve(self) -> None:
        try:
            while True:
                with self._condition:
                    self._condition.wait_for(lambda: self._closed or self._jobs or self._may_produce())
                    if self._closed:
                        return
                    job = self._jobs.pop(0) if self._jobs else None
                    step = None if job else self._next_step
                self._apply_published()
                if job is not None:
                    work, future = job
                    try:
                        future.set_result(work(self.engine))
                    except Exception as error:  # noqa: BLE001 - the trainer gets its evaluation's error
                        future.set_exception(error)
                    continue
                batch = self._produce(step)
                with self._condition:
                    self._ready[step] = batch
                    self._next_step += 1
                    self._condition.notify_all()
        except BaseException as error:  # noqa: BLE001 - handed to the trainer, which raises it
            with self._condition:
                self._error = error
                for _, future in self._jobs:
                    future.set_exception(error)
                self._condition.notify_all()

    def _may_produce(self) -> bool:
        """The next step is in range and the newest published version is recent enough for it."""
        step = self._next_step
        return step < self.config.steps and self._latest_version >= step - self.config.max_staleness

    def _raise_error(self) -> None:
        if self._error is not None:
            raise RuntimeError("the rollout producer failed") from self._error

    def _apply_published(self) -> None:
        """Load the newest published weights into the engine if it has older ones (no request in flight)."""
        with self._condition:
            published, self._published = self._published, None
        if published is None:
            return
        version, weights = published
        if weights is not None:
            self.engine.sync_weights(weights)
        self._engine_version = version

    def _take_questions(self, step: int, count: int) -> list[int]:
        with self._condition:
            self._sampler_before.setdefault(step, self.sampler.state_dict())
            for old in [s for s in self._sampler_before if s < step - self.config.max_staleness - 1]:
                del self._sampler_before[old]
            return self.sampler.take(count)

    def _produce(self, step: int) -> ProducedBatch:
        """Roll out the step's questions; with dynamic sampling, replace uninformative groups."""
        config = self.config
        questions = self._take_questions(step, config.questions_per_step)  # the whole step's
        episodes, stats = self._rollout(step, 0, questions[self.block.start : self.block.stop], self.block.start)
        metrics: dict[str, float] = {}
        if config.dynamic_sampling_rounds > 0:
            refilled = rounds = 0
            for round_index in range(1, config.dynamic_sampling_rounds + 1):
                flat = uninformative_groups(episodes)
                if not flat:
                    break
                extra = self._take_questions(step, len(flat))
                more, more_stats = self._rollout(step, round_index, extra)
                episodes = [e for e in episodes if e.group_id not in flat] + more
                stats.add(more_stats)
                questions += extra
                refilled, rounds = refilled + len(extra), rounds + 1
            kept = informative(episodes)
            metrics = {
                "dynamic_sampling/rounds": rounds,
                "dynamic_sampling/refilled_groups": refilled,
                "dynamic_sampling/kept_groups": len({e.group_id for e in kept}),
            }
            episodes = kept
        for episode in episodes:
            episode.policy_version = self._engine_version
        return ProducedBatch(step, episodes, stats, questions, self._engine_version, metrics)

    def _rollout(self, step: int, round_index: int, questions: list[int], first_question: int = 0) -> tuple[list[Episode], RolloutStats]:
        """``group_size`` episodes of each question (a round of dynamic sampling reuses the envs);
        ``first_question``: the position of ``questions[0]`` among the step's (env slots and
        reset seeds are numbered across processes)."""
        config = self.config
        envs = self.envs[: len(questions) * config.group_size]
        slots = config.questions_per_step * config.group_size
        resets: list[dict[str, Any]] = []
        group_ids: list[Hashable] = []
        for index, env in enumerate(envs):
            question = questions[index // config.group_size]
            slot = first_question * config.group_size + index
            resets.append(question_reset(env, question, seed=config.seed + (step + round_index * config.steps) * slots + slot))
            group_ids.append((step, round_index, question))
        # A fresh sampling seed per step, round and process (from them, so a resumed run samples the same way).
        seed = config.seed * 1_000_003 + step * 1_009 + round_index * 7 + self.rank * 7_919
        rollout_config = replace(config.rollout, seed=seed)
        description = f"step {step + 1}/{config.steps} rollouts" + (f" (refill {round_index})" if round_index else "")
        with self.progress(len(envs), description) as bar:
            return collect_rollouts(RolloutRequest(self.engine, envs, resets, group_ids, rollout_config, self.encoder, bar.update))
