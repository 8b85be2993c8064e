"""``RolloutRequest``: one batch of episodes to run, the single argument of every rollout schedule."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from deepresearch.agents.rollout.engines.base import RolloutEngine
from deepresearch.agents.rollout.episode_state import RolloutConfig
from deepresearch.agents.rollout.turns import TurnEncoder
from deepresearch.deprecations import warn_once


@dataclass(frozen=True)
class RolloutRequest:
    """Run one episode per env: ``envs[i]`` is reset with the kwargs ``resets[i]`` (seed / options) and its
    episode joins GRPO group ``group_ids[i]``. ``on_finished(n)`` hears each time ``n`` more episodes
    ended (a progress bar)."""

    engine: RolloutEngine
    envs: Sequence[Any]
    resets: Sequence[dict[str, Any]]
    group_ids: Sequence[Hashable]
    config: RolloutConfig
    encoder: TurnEncoder
    on_finished: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        if not (len(self.envs) == len(self.resets) == len(self.group_ids)):
            raise ValueError("envs, resets and group_ids must have the same length")


def as_request(function: str, request: RolloutRequest | RolloutEngine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RolloutRequest:
    """``request`` itself, or one built from the positional form ``function(engine, envs, resets, ...)``
    that every schedule took before (it still works, and says so once)."""
    if isinstance(request, RolloutRequest) and not args and not kwargs:
        return request
    warn_once(f"{function}(engine, envs, resets, group_ids, config, encoder)", f"{function}(RolloutRequest(...))", stacklevel=4)
    return RolloutRequest(request, *args, **kwargs)
