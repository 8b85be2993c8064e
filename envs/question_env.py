"""The contract a trainer relies on beyond Gymnasium's: questions by index, early scoring.

Our envs draw each episode's question from a list and can end an episode early and
score what was written (a trainer's token budget ran out). Any other Gymnasium env
still trains and evaluates: its question is pinned by the reset seed instead, and
an episode cut short scores 0.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import gymnasium as gym

from deepresearch.envs.datasets import QAItem


@runtime_checkable
class QuestionEnv(Protocol):
    """An env whose episodes are questions from ``questions`` and that can be scored early."""

    questions: Sequence[QAItem]

    def end_episode(self) -> tuple[float, dict[str, Any]]:
        """End the running episode now and score what was written: ``(reward, components)``."""
        ...


def as_question_env(env: Any) -> QuestionEnv | None:
    """``env``'s unwrapped core when it follows :class:`QuestionEnv`, else None."""
    core = env.unwrapped if isinstance(env, gym.Env) else env
    return core if isinstance(core, QuestionEnv) else None


def question_reset(env: Any, question: int, seed: int) -> dict[str, Any]:
    """``reset`` kwargs that pose question ``question``: by index to a :class:`QuestionEnv`,
    as the reset seed to any other env."""
    if as_question_env(env) is not None:
        return {"seed": seed, "options": {"index": question}}
    return {"seed": question}


def question_count(env: Any, default: int) -> int:
    """How many questions ``env`` has; ``default`` for envs that pick by seed (any seed is a question)."""
    core = as_question_env(env)
    return len(core.questions) if core is not None and core.questions else default


def end_episode_early(env: Any) -> tuple[float, dict[str, Any]]:
    """Score a cut-short episode as the env would now, or ``(0.0, {"finish": "cut"})`` for other envs."""
    core = as_question_env(env)
    return core.end_episode() if core is not None else (0.0, {"finish": "cut"})
