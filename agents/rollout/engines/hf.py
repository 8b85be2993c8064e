"""Rollout engine on plain transformers: a batched, left-padded KV-cache decode loop.

Runs anywhere torch runs (the trainer's own model object can be passed in, so no
weight sync is needed), and is the reference the vLLM engine is tested against.
A manual loop rather than ``model.generate`` because stop strings must end each
sequence of the batch independently and we need the logprob of every sampled
token under the documented semantics (see ``base.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from deepresearch.agents.rollout.end_of_turn import end_of_turn_ids
from deepresearch.agents.rollout.engines.base import Generation, SamplingConfig, validate_prompts


class HFEngine:
    """``RolloutEngine`` over a ``transformers`` causal LM; ``device``/``dtype`` apply when loading from a path."""

    def __init__(
        self,
        model_path_or_model: str | Path | torch.nn.Module,
        tokenizer: Any = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if isinstance(model_path_or_model, (str, Path)):
            self.model = AutoModelForCausalLM.from_pretrained(model_path_or_model, dtype=dtype).to(device)
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_path_or_model)
        else:
            self.model = model_path_or_model
        if tokenizer is None:
            raise ValueError("HFEngine needs a tokenizer when given a model object")
        self.tokenizer = tokenizer
        # A live model object stays where its owner put it; generate on that device.
        self.device = next(self.model.parameters()).device
        self.end_of_turn_ids = end_of_turn_ids(tokenizer, self.model.generation_config)
        self.max_model_len: int | None = self.model.config.get_text_config().max_position_embeddings
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.end_of_turn_ids)
        self.pad_token_id = int(pad)

    @torch.inference_mode()
    def generate(self, prompts: list[list[int]], sampling: SamplingConfig) -> list[Generation]:
        validate_prompts(prompts, self.model.config.get_text_config().vocab_size)
        if not prompts:
            return []
        was_training = self.model.training
        self.model.eval()
        try:
            return self._decode_loop(prompts, sampling)
        finally:
            self.model.train(was_training)

    def _decode_loop(self, prompts: list[list[int]], sampling: SamplingConfig) -> list[Generation]:
        input_ids, attention_mask = self._left_pad(prompts)
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        generator = None
        if sampling.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(sampling.seed)
        tracks = [_Track(self.tokenizer, self.end_of_turn_ids, sampling) for _ in prompts]
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True)
        next_position = positions[:, -1:] + 1
        for _ in range(sampling.max_new_tokens):
            tokens, logprobs = sample_next_tokens(out.logits[:, -1, :], sampling, generator)
            for track, token, logprob in zip(tracks, tokens.tolist(), logprobs.tolist()):
                track.push(token, logprob)
            if all(track.finish_reason for track in tracks):
                break
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(prompts), 1))], dim=-1)
            out = self.model(
                input_ids=tokens.unsqueeze(-1),
                attention_mask=attention_mask,
                position_ids=next_position,
                past_key_values=out.past_key_values,
                use_cache=True,
            )
            next_position = next_position + 1
        return [track.result() for track in tracks]

    def _left_pad(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            attention_mask[row, width - len(prompt) :] = 1
        return input_ids.to(self.device), attention_mask.to(self.device)

    @torch.no_grad()
    def sync_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy tensors in by name; unknown names are an error (a silent partial sync trains the wrong policy)."""
        own = self.model.state_dict()
        for name, tensor in named_tensors:
            if name not in own:
                raise KeyError(f"sync_weights: the engine's model has no tensor named {name!r}")
            own[name].copy_(tensor.to(own[name].device, own[name].dtype))

    def sleep(self) -> None:
        """No-op: the transformers engine shares memory with whoever owns the model."""

    def wake(self) -> None:
        """No-op, see ``sleep``."""


class _Track:
    """One sequence's sampled ids, logprobs and stopping state during decoding."""

    def __init__(self, tokenizer: Any, eos_token_ids: frozenset[int], sampling: SamplingConfig) -> None:
        self.tokenizer = tokenizer
        self.eos_token_ids = eos_token_ids
        self.sampling = sampling
        self.token_ids: list[int] = []
        self.logprobs: list[float] = []
        self.finish_reason: str | None = None

    def push(self, token: int, logprob: float) -> None:
        if self.finish_reason:
            return
        self.token_ids.append(token)
        self.logprobs.append(logprob)
        if token in self.eos_token_ids:
            self.finish_reason = "eos"
        elif self.sampling.stop and self._hit_stop_string():
            self.finish_reason = "stop"
        elif len(self.token_ids) >= self.sampling.max_new_tokens:
            self.finish_reason = "length"

    def _hit_stop_string(self) -> bool:
        # Like vLLM: stop strings are matched in the generated text with special tokens skipped.
        text = self.tokenizer.decode(self.token_ids, skip_special_tokens=True)
        return any(stop in text for stop in self.sampling.stop)

    def result(self) -> Generation:
        return Generation(
            token_ids=self.token_ids,
            logprobs=self.logprobs,
            text=self.tokenizer.decode(self.token_ids, skip_special_tokens=False),
            finish_reason=self.finish_reason or "length",
        )


def filter_top_k_top_p(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Set logits outside the top-k / nucleus set to ``-inf`` (the top token is always kept).

    Nucleus rule as in vLLM: walking up from the least likely token, drop tokens while
    their cumulative probability stays ``<= 1 - top_p``.
    """
    if 0 < top_k < logits.shape[-1]:
        kth_largest = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if top_p < 1.0:
        ascending, order = torch.sort(logits, dim=-1)
        drop_sorted = ascending.softmax(dim=-1).cumsum(dim=-1) <= 1.0 - top_p
        drop_sorted[:, -1] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next_tokens(
    logits: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row of ``logits`` [batch, vocab]; return (ids [batch], logprobs [batch]).

    The logprob comes from the distribution sampled from: ``log_softmax(logits)`` when
    greedy, else ``log_softmax(filter_top_k_top_p(logits / temperature))``.
    """
    logits = logits.float()
    if sampling.greedy:
        logprobs = torch.log_softmax(logits, dim=-1)
        tokens = logits.argmax(dim=-1)
    else:
        scaled = filter_top_k_top_p(logits / sampling.temperature, sampling.top_k, sampling.top_p)
        logprobs = torch.log_softmax(scaled, dim=-1)
        tokens = torch.multinomial(logprobs.exp(), 1, generator=generator).squeeze(-1)
    return tokens, logprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
