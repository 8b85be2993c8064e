"""Supervised warm start on trajectories, with env-written text masked out of the loss.

A tiny model trained from scratch cannot find the tag format by chance, and real
users distil teacher trajectories before RL: both are next-token prediction on
the policy's turns only. Trajectories come from the demo world's scripted oracle
or from any JSON-lines file of transcripts with segments (what our envs write).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from deepresearch.agents.grpo.masked_forward import masked_next_token_logprobs
from deepresearch.agents.grpo.update import autocast_for
from deepresearch.agents.rollout.turns import TurnEncoder
from deepresearch.agents.trajectories import Trajectory, Turn


@dataclass
class SFTConfig:
    steps: int = 200
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 1024
    # Sequences per forward/backward (gradient accumulation; None: the whole batch at once).
    # The loss is normalised by the whole batch's tokens, so any split gives the same step.
    micro_batch_size: int | None = None
    # Linear decay to 0 over every ``restart_every`` steps, then back to the full rate
    # (0 = one decay over all steps). Restarts get a tiny model off its loss plateau
    # sooner: on the demo, 5 cycles of 300 steps copy names from the context where
    # one 1500-step decay still guesses them.
    restart_every: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise ValueError(f"micro_batch_size must be >= 1 or None, got {self.micro_batch_size}")


def collect_oracle_trajectories(env: Any, count: int, policy: Any) -> list[Trajectory]:
    """Run a scripted policy (``reset(info)`` / ``act()``) for ``count`` episodes of ``env``,
    each trajectory carrying the env's reward."""
    trajectories = []
    for index in range(count):
        prompt, info = env.reset(options={"index": index})
        policy.reset(info)
        trajectory = Trajectory(prompt=prompt, messages=info.get("messages", []), turns=[])
        while True:
            action = policy.act()
            observation, reward, terminated, truncated, info = env.step(action)
            trajectory.turns.append(Turn("policy", action))
            if terminated or truncated:
                trajectory.reward = float(reward)
                break
            trajectory.turns.append(Turn("env", observation, info.get("new_messages") or []))
        trajectories.append(trajectory)
    return trajectories


def encode_trajectory(trajectory: Trajectory, encoder: TurnEncoder, eos_id: int | None) -> tuple[list[int], list[int]]:
    """(ids, loss_mask): policy turns 1, prompt and env text 0; ``eos_id`` (the encoder's
    ``turn_end_id``) closes the final policy turn."""
    ids = encoder.encode_prompt(trajectory.prompt, trajectory.messages)
    mask = [0] * len(ids)
    for turn in trajectory.turns:
        if turn.source == "policy":
            piece = encoder.encode_text(turn.text)
        else:
            piece = encoder.encode_observation(turn.text, turn.messages)
        ids += piece
        mask += [int(turn.source == "policy")] * len(piece)
    if eos_id is not None and trajectory.turns and trajectory.turns[-1].source == "policy":
        ids.append(eos_id)
        mask.append(1)
    return ids, mask


def lr_factor(step: int, config: SFTConfig) -> float:
    """The learning-rate multiplier at ``step``: linear decay, restarted every ``restart_every``."""
    period = config.restart_every if config.restart_every > 0 else max(config.steps, 1)
    return 1.0 - (step % period) / period


def sft_train(
    model: Any,
    tokenizer: Any,
    trajectories: Sequence[Trajectory],
    config: SFTConfig,
    encoder: TurnEncoder,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Masked next-token cross-entropy on policy tokens; returns the loss per step."""
    if not trajectories:
        raise ValueError("no trajectories to train on")
    device = next(model.parameters()).device
    examples = [encode_trajectory(t, encoder, encoder.turn_end_id()) for t in trajectories]
    examples = [(ids[: config.max_length], mask[: config.max_length]) for ids, mask in examples]
    optimizer = torch.optim.AdamW((p for p in model.parameters() if p.requires_grad), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config))
    rng = random.Random(config.seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    losses = []
    model.train()
    for step in range(config.steps):
        # Longest first, so each micro-batch pads only to lengths near its own.
        chosen = sorted((examples[rng.randrange(len(examples))] for _ in range(config.batch_size)), key=lambda e: -len(e[0]))
        total_tokens = max(sum(sum(mask[1:]) for _, mask in chosen), 1)
        size = config.micro_batch_size or len(chosen)
        optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for start in range(0, len(chosen), size):
            loss = masked_nll_sum(model, chosen[start : start + size], pad, device) / total_tokens
            loss.backward()
            loss_sum += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        schedule.step()
        losses.append(loss_sum)
        if on_step:
            on_step(step, losses[-1])
    return losses


def masked_nll_sum(model: Any, rows: Sequence[tuple[list[int], list[int]]], pad: int, device: torch.device) -> torch.Tensor:
    """Summed negative log-likelihood of the policy tokens of ``rows`` (ids, loss mask), right-padded."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    loss_mask = torch.zeros_like(input_ids)
    for row, (ids, mask) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        loss_mask[row, : len(mask)] = torch.tensor(mask)
    input_ids, attention, loss_mask = input_ids.to(device), attention.to(device), loss_mask.to(device)
    target_mask = loss_mask[:, 1:].float()
    with autocast_for(device):
        logprobs, _ = masked_next_token_logprobs(model, input_ids, attention, target_mask)
    return -(logprobs * target_mask).sum()
