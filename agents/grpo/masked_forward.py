"""Logprobs of the next token at the positions a loss reads, and only there.

A causal LM's head turns every position's hidden state into ``V`` logits, yet
the GRPO and SFT losses read only the policy's tokens (a fifth of a search
episode's tokens, far less with long retrieved passages). Running the decoder,
then the head on just those hidden states, skips most of the head's matmul and
the ``[B, T, V]`` logits tensor: on the demo's tiny model (vocabulary ~6k, hidden
128) the head is about half the FLOPs; on a 150k-vocabulary model it is the
largest activation of the step. Models that post-process logits (soft-capping,
scaling) or hide their head fall back to the full forward.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from deepresearch.agents.grpo.logprobs import entropy_from_logits, selective_log_softmax

# Config fields that change logits after the head; with any set, use the model's own forward.
_LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "output_multiplier_scale")


def masked_next_token_logprobs(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    target_mask: Tensor,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """``[B, L-1]`` log p(input_ids[:, 1:]) where ``target_mask`` is nonzero, 0 elsewhere.

    Args:
        input_ids, attention_mask: ``[B, L]``.
        target_mask: ``[B, L-1]``; position ``t`` scores token ``t + 1``.
        temperature: logits are divided by it (the sampling temperature).
        with_entropy: also return each scored position's entropy (detached), 0 elsewhere.

    Example::

        input_ids   = [[p, p, a, b]]       target_mask = [[0, 1, 1]]
        -> [[0, log p(a | p p), log p(b | p p a)]]
    """
    if target_mask.shape != (input_ids.shape[0], input_ids.shape[1] - 1):
        raise ValueError(f"target_mask must have shape {(input_ids.shape[0], input_ids.shape[1] - 1)}, got {tuple(target_mask.shape)}")
    targets = input_ids[:, 1:]
    parts = _decoder_and_head(model)
    if parts is None:
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float() / temperature
        logprobs = selective_log_softmax(logits, targets) * (target_mask != 0)
        entropy = entropy_from_logits(logits.detach()) * (target_mask != 0) if with_entropy else None
        return logprobs, entropy

    decoder, head = parts
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, :-1]
    rows, cols = target_mask.nonzero(as_tuple=True)
    logits = head(hidden[rows, cols]).float() / temperature  # [N, V]
    picked = logits.gather(-1, targets[rows, cols].unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    logprobs = torch.zeros(target_mask.shape, dtype=torch.float32, device=logits.device).index_put((rows, cols), picked)
    entropy = None
    if with_entropy:
        values = entropy_from_logits(logits.detach().unsqueeze(0))[0]
        entropy = torch.zeros_like(logprobs).index_put((rows, cols), values)
    return logprobs, entropy


def _decoder_and_head(model: Any) -> tuple[Any, Any] | None:
    """(decoder returning ``last_hidden_state``, output head) of a plain or PEFT-wrapped causal LM."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if config is None or any(getattr(config, name, None) not in (None, 1.0) for name in _LOGIT_POSTPROCESSING):
        return None
    get_decoder = getattr(base, "get_decoder", None)
    get_head = getattr(base, "get_output_embeddings", None)
    decoder = get_decoder() if callable(get_decoder) else None
    head = get_head() if callable(get_head) else None
    if decoder is None or decoder is base or head is None:
        return None
    return decoder, head
