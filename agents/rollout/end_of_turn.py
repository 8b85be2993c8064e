"""Which token ids end the policy's turn, decided in one place for a tokenizer.

Engines stop on them, rollouts strip them before handing the turn's text to the env,
and SFT appends one after the final turn, so all three must agree. The set is the
tokenizer's EOS, the generation config's EOS ids (int or list), and the special
token the chat template writes right after an assistant message (``<|im_end|>`` for
ChatML/Qwen, ``<|eot_id|>`` for Llama 3, ``<end_of_turn>`` for Gemma).
"""

from __future__ import annotations

from typing import Any

_PROBE = "\u2063END_OF_TURN_PROBE\u2063"


def end_of_turn_ids(tokenizer: Any, generation_config: Any | None = None) -> frozenset[int]:
    """The ids that end an assistant turn for ``tokenizer`` (and a model's ``generation_config``)."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    configured = None if generation_config is None else generation_config.eos_token_id
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(token) for token in configured)
    template_id = chat_turn_end_id(tokenizer)
    if template_id is not None:
        ids.add(template_id)
    if not ids:
        raise ValueError("no end-of-turn token: set tokenizer.eos_token or generation_config.eos_token_id")
    return frozenset(ids)


def chat_turn_end_id(tokenizer: Any) -> int | None:
    """The special token the chat template puts right after an assistant message, if any
    (what ends a turn in chat mode; a base model's text ends with its EOS instead)."""
    if not tokenizer.chat_template:
        return None
    conversation = [{"role": "user", "content": "q"}, {"role": "assistant", "content": _PROBE}]
    rendered = tokenizer.apply_chat_template(conversation, tokenize=False)
    position = rendered.find(_PROBE)
    if position < 0:
        return None
    after = tokenizer(rendered[position + len(_PROBE) :], add_special_tokens=False)["input_ids"]
    if after and after[0] in set(tokenizer.all_special_ids):
        return int(after[0])
    return None
