"""Turning the env's text into token ids without ever re-tokenising the policy's output.

Two modes. ``text`` (base models): the prompt and every observation are tokenised
as plain text and appended. ``chat`` (instruct models): the prompt is the chat
template applied to ``info["messages"]``; an observation that continues the
assistant turn (ReSearch, Search-R1) is tokenised as plain text, while one that
opens a new turn (tool calling) is rendered through the template — only the new
part, found by rendering a conversation with and without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from deepresearch.agents.rollout.end_of_turn import chat_turn_end_id

SENTINEL = "\u2063DEEPRESEARCH_SENTINEL\u2063"


@dataclass
class TurnEncoder:
    tokenizer: Any
    mode: Literal["text", "chat"] = "text"

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, mode: str = "auto") -> "TurnEncoder":
        """``auto`` uses the chat template when the tokenizer has one."""
        if mode == "auto":
            mode = "chat" if getattr(tokenizer, "chat_template", None) else "text"
        if mode not in ("text", "chat"):
            raise ValueError(f"mode must be 'auto', 'text' or 'chat', not {mode!r}")
        return cls(tokenizer, mode)  # type: ignore[arg-type]

    def encode_prompt(self, prompt_text: str, messages: list[dict[str, str]] | None) -> list[int]:
        if self.mode == "chat":
            if not messages:
                raise ValueError("chat mode needs the env's info['messages'] at reset")
            return list(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))
        return self.encode_text(prompt_text)

    def turn_end_id(self) -> int | None:
        """The id that closes a finished policy turn: the chat template's end-of-turn token in
        chat mode, the tokenizer's EOS in text mode (a base model ends its text with it)."""
        if self.mode == "chat":
            template_end = chat_turn_end_id(self.tokenizer)
            if template_end is not None:
                return template_end
        return self.tokenizer.eos_token_id

    def encode_text(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_observation(self, observation: str, new_messages: list[dict[str, str]], policy_ids: Sequence[int] = ()) -> list[int]:
        """Ids for what the env appended; in chat mode a new turn closes the assistant's turn first.

        ``policy_ids``: the turn's sampled ids. A chat model often ends its turn itself with the
        template's end-of-turn token (kept, as sampled); the new turn then starts right after
        it instead of closing the turn a second time (``<|im_end|><|im_end|>``).
        """
        if self.mode == "text" or not new_messages:
            return self.encode_text(observation)
        ids = self.encode_text(self.new_turn_suffix(new_messages))
        turn_end = self.turn_end_id()
        if policy_ids and policy_ids[-1] == turn_end and ids[:1] == [turn_end]:
            return ids[1:]
        return ids

    def new_turn_suffix(self, new_messages: list[dict[str, str]]) -> str:
        """Template text after an (open) assistant turn that adds ``new_messages`` and reopens the assistant."""
        base = [{"role": "user", "content": "q"}, {"role": "assistant", "content": SENTINEL}]
        rendered = self.tokenizer.apply_chat_template(base + new_messages, add_generation_prompt=True, tokenize=False)
        position = rendered.find(SENTINEL)
        if position < 0:
            raise ValueError("the chat template dropped the assistant message; cannot render tool turns")
        return rendered[position + len(SENTINEL) :]
