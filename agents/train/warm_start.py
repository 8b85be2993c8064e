"""Warm-start a model on a scripted teacher's episodes (SFT), saved as a new model directory.

GRPO needs a policy that already writes the protocol's format now and then, or no episode
is ever rewarded; a pretrained chat model follows none of our tags zero-shot and the tiny
model knows nothing. ``WarmStartConfig`` in a run's config (``warm_start:`` in a recipe)
makes the trainer do it first, into ``OUTPUT/warm_start``, and reuse that folder while the
settings are unchanged (after a kill, or on ``resume``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym

from deepresearch.agents.models.build_cache import build_once
from deepresearch.agents.models.loading import load_policy, resolve_device
from deepresearch.agents.rollout.turns import TurnEncoder
from deepresearch.agents.train.sft import SFTConfig, collect_oracle_trajectories, sft_train
from deepresearch.envs.oracle import OraclePolicy

WARM_START_INFO_FILE = "warm_start.json"


@dataclass(frozen=True)
class WarmStartConfig:
    """SFT on ``trajectories`` episodes of the demo world's scripted oracle (0: no warm start).

    The teacher's habits are what GRPO is then left to fix: ``guess_rate`` of its episodes
    answer at once by echoing the question's subject, ``single_search_rate`` of its multi-hop
    episodes answer after the first search (see ``OraclePolicy``). ``think`` writes its
    ``<think>`` sentences, which the Search-R1 and ReSearch format rules require.
    """

    trajectories: int = 0
    think: bool = True
    guess_rate: float = 0.0
    single_search_rate: float = 0.0
    sft: SFTConfig = field(default_factory=SFTConfig)

    def __post_init__(self) -> None:
        if self.trajectories < 0:
            raise ValueError(f"trajectories must be >= 0, got {self.trajectories}")

    @property
    def enabled(self) -> bool:
        return self.trajectories > 0 and self.sft.steps > 0


def warm_start(
    model_path: str | Path,
    out_dir: Path,
    env_id: str = "DeepResearch-Wiki-v0",
    env_kwargs: dict[str, Any] | None = None,
    config: WarmStartConfig = WarmStartConfig(trajectories=512),
    prompt_mode: str = "auto",
    device: str = "auto",
    on_step: Callable[[int, float], None] | None = None,
    teacher: OraclePolicy | None = None,
) -> tuple[Path, list[float]]:
    """SFT ``model_path`` on ``config.trajectories`` teacher episodes of ``env_id`` and save it to
    ``out_dir`` (replaced; written to a sibling first). ``teacher``: another scripted policy to
    imitate instead of the oracle ``config`` describes."""
    staging = out_dir.with_name(out_dir.name + f".tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    losses, _ = _train_into(staging, model_path, env_id, env_kwargs or {}, config, prompt_mode, device, on_step, teacher)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(staging, out_dir)
    return out_dir, losses


def warm_started_model(
    model_path: str | Path,
    directory: Path,
    env_id: str,
    env_kwargs: dict[str, Any],
    config: WarmStartConfig,
    prompt_mode: str = "auto",
    device: str = "auto",
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[Path, bool]:
    """``directory`` holding ``model_path`` warm-started as ``config`` says, and whether it was
    built now: a finished warm start with the same model, env and settings is reused."""
    settings = {"model": str(model_path), "env_id": env_id, "env_kwargs": env_kwargs, "prompt_mode": prompt_mode, "warm_start": asdict(config)}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    built = False

    def build(staging: Path) -> dict[str, Any]:
        nonlocal built
        built = True
        losses, seconds = _train_into(staging, model_path, env_id, env_kwargs, config, prompt_mode, device, on_step, None)
        return {"settings": json.loads(json.dumps(settings, default=str)), "loss_first": losses[0], "loss_last": losses[-1],
                "sft_seconds": seconds}

    return build_once(directory, key, WARM_START_INFO_FILE, build), built


def _train_into(
    staging: Path,
    model_path: str | Path,
    env_id: str,
    env_kwargs: dict[str, Any],
    config: WarmStartConfig,
    prompt_mode: str,
    device: str,
    on_step: Callable[[int, float], None] | None,
    teacher: OraclePolicy | None,
) -> tuple[list[float], float]:
    """Train into ``staging``; the loss per step and the SFT loop's own seconds."""
    import deepresearch  # noqa: F401  (registers the env ids)

    env = gym.make(env_id, **env_kwargs)
    oracle = teacher or OraclePolicy(
        env.unwrapped.protocol, think=config.think, guess_rate=config.guess_rate,
        single_search_rate=config.single_search_rate, seed=config.sft.seed,
    )
    episodes = collect_oracle_trajectories(env, config.trajectories, oracle)
    env.close()
    model, tokenizer = load_policy(model_path, resolve_device(device))
    encoder = TurnEncoder.for_tokenizer(tokenizer, prompt_mode)
    started = time.perf_counter()
    losses = sft_train(model, tokenizer, episodes, config.sft, encoder, on_step)
    seconds = time.perf_counter() - started
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    return losses, seconds
