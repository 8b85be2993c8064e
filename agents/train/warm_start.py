"""Warm-start a model on the demo world's oracle trajectories, saved as a new model directory."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym

from deepresearch.agents.models.loading import load_policy, resolve_device
from deepresearch.agents.rollout.turns import TurnEncoder
from deepresearch.agents.train.sft import SFTConfig, collect_oracle_trajectories, sft_train
from deepresearch.envs.oracle import OraclePolicy


def warm_start(
    model_path: str | Path,
    out_dir: Path,
    env_id: str = "DeepResearch-Wiki-v0",
    env_kwargs: dict[str, Any] | None = None,
    trajectories: int = 512,
    config: SFTConfig = SFTConfig(),
    prompt_mode: str = "auto",
    device: str = "auto",
    think: bool = True,
    guess_rate: float = 0.0,
    on_step: Callable[[int, float], None] | None = None,
    teacher: OraclePolicy | None = None,
) -> tuple[Path, list[float]]:
    """SFT ``model_path`` on oracle episodes of ``env_id`` and save it to ``out_dir`` (atomically).

    ``think=False`` drops the oracle's ``<think>`` sentences: fewer tokens to learn, which
    is what a tiny model trained from scratch on two CPU cores needs. ``guess_rate``: the
    share of episodes in which the oracle answers at once, without searching, by
    echoing the question's subject (see ``OraclePolicy``). ``teacher``: another scripted
    policy to imitate instead (``think`` and ``guess_rate`` are then its own).
    """
    import deepresearch  # noqa: F401  (registers the env ids)

    env = gym.make(env_id, **(env_kwargs or {}))
    oracle = teacher or OraclePolicy(env.unwrapped.protocol, think=think, guess_rate=guess_rate, seed=config.seed)
    episodes = collect_oracle_trajectories(env, trajectories, oracle)
    model, tokenizer = load_policy(model_path, resolve_device(device))
    encoder = TurnEncoder.for_tokenizer(tokenizer, prompt_mode)
    losses = sft_train(model, tokenizer, episodes, config, encoder, on_step)
    staging = out_dir.with_name(out_dir.name + f".tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(staging, out_dir)
    return out_dir, losses
