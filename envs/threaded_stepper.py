"""Step many envs at once in threads, so their searches can meet in one batch.

An env step is mostly waiting on the retriever (or the network); threads overlap that
waiting, and a ``CoalescingRetriever`` shared by the envs turns their concurrent
searches into one batched search. Autoreset is off by design: a finished env stays
finished until the caller resets it (an RL rollout scores an episode once, then
decides what to do with the slot), and a ``None`` action skips an env for this step.

Gymnasium's own vectorisation also runs these envs, with its defaults:
``gym.make_vec(env_id, num_envs=N, vectorization_mode="async")`` (one process and one
index per env; ``UnicodeText`` carries observations through shared memory) or
``"sync"`` (one process, envs stepped one after another), both with autoreset. This
helper is the in-process alternative whose envs share one index and step
concurrently, so their searches can be coalesced.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import gymnasium as gym


@dataclass(frozen=True)
class StepResult:
    observation: str
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]


class ThreadedEnvStepper:
    """Owns a thread pool; ``reset``/``step`` take and return one entry per env."""

    def __init__(self, envs: Sequence[gym.Env], max_workers: int | None = None) -> None:
        if not envs:
            raise ValueError("ThreadedEnvStepper needs at least one env")
        self.envs = list(envs)
        self._pool = ThreadPoolExecutor(max_workers=max_workers or len(self.envs), thread_name_prefix="env-step")

    def __len__(self) -> int:
        return len(self.envs)

    def reset(
        self, seeds: Sequence[int | None] | None = None, options: Sequence[dict[str, Any] | None] | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Reset every env (``seeds[i]``/``options[i]`` for env ``i``)."""
        seeds = self._per_env(seeds, "seeds")
        options = self._per_env(options, "options")
        return self._map(lambda env, index: env.reset(seed=seeds[index], options=options[index]))

    def step(self, actions: Sequence[str | None]) -> list[StepResult | None]:
        """Step env ``i`` with ``actions[i]``; ``None`` skips it (and returns ``None``)."""
        if len(actions) != len(self.envs):
            raise ValueError(f"got {len(actions)} actions for {len(self.envs)} envs")

        def step_one(env: gym.Env, index: int) -> StepResult | None:
            if actions[index] is None:
                return None
            return StepResult(*env.step(actions[index]))

        return self._map(step_one)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "ThreadedEnvStepper":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _map(self, function: Callable[[gym.Env, int], Any]) -> list[Any]:
        futures = [self._pool.submit(function, env, index) for index, env in enumerate(self.envs)]
        return [future.result() for future in futures]

    def _per_env(self, values: Sequence[Any] | None, name: str) -> list[Any]:
        if values is None:
            return [None] * len(self.envs)
        if len(values) != len(self.envs):
            raise ValueError(f"got {len(values)} {name} for {len(self.envs)} envs")
        return list(values)
