"""The head-only-where-the-loss-reads forward equals the full forward, values and gradients."""

from __future__ import annotations

import pytest
import torch
from agents_helpers import tiny_policy

from deepresearch.agents.grpo.logprobs import entropy_from_logits, selective_log_softmax
from deepresearch.agents.grpo.masked_forward import _decoder_and_head, masked_next_token_logprobs


def full_forward(model, input_ids, attention_mask, target_mask, temperature):
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float() / temperature
    keep = target_mask != 0
    return selective_log_softmax(logits, input_ids[:, 1:]) * keep, entropy_from_logits(logits.detach()) * keep


def batch(vocab: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, vocab, (3, 20), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 15:] = 0  # a right-padded row
    target_mask = torch.zeros(3, 19, dtype=torch.long)
    target_mask[0, 4:9] = 1
    target_mask[0, 12:19] = 1  # two policy turns with env text between
    target_mask[1, 2:14] = 1
    target_mask[2, 18] = 1
    return input_ids, attention_mask, target_mask


@pytest.mark.parametrize("lora", [False, True])
def test_masked_forward_matches_the_full_forward_and_its_gradient(lora: bool) -> None:
    model, tokenizer, _ = tiny_policy()
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    input_ids, attention_mask, target_mask = batch(len(tokenizer))
    trainable = [p for p in model.parameters() if p.requires_grad]

    ours, ours_entropy = masked_next_token_logprobs(model, input_ids, attention_mask, target_mask, 0.7, with_entropy=True)
    ours_grads = torch.autograd.grad(ours.sum(), trainable)
    reference, reference_entropy = full_forward(model, input_ids, attention_mask, target_mask, 0.7)
    reference_grads = torch.autograd.grad(reference.sum(), trainable)

    assert (ours[target_mask == 0] == 0).all() and (ours[target_mask == 1] < 0).all()
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_entropy, reference_entropy, atol=1e-5, rtol=1e-5)
    for mine, theirs in zip(ours_grads, reference_grads):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-4)


def test_a_model_that_post_processes_logits_takes_the_full_forward() -> None:
    model, tokenizer, _ = tiny_policy()
    input_ids, attention_mask, target_mask = batch(len(tokenizer))
    assert _decoder_and_head(model) is not None
    model.config.final_logit_softcapping = 30.0  # as Gemma 2 sets it; Qwen2's forward ignores it
    assert _decoder_and_head(model) is None
    ours, _ = masked_next_token_logprobs(model, input_ids, attention_mask, target_mask)
    reference, _ = full_forward(model, input_ids, attention_mask, target_mask, 1.0)
    torch.testing.assert_close(ours, reference)


def test_target_mask_of_the_wrong_shape_is_a_clear_error() -> None:
    model, tokenizer, _ = tiny_policy()
    input_ids, attention_mask, _ = batch(len(tokenizer))
    with pytest.raises(ValueError, match="target_mask must have shape"):
        masked_next_token_logprobs(model, input_ids, attention_mask, torch.ones(3, 20))
