"""A minimal client for any OpenAI-compatible ``/chat/completions`` endpoint.

Shared by the text-level evaluation policy and the LLM judge. Every call has a
timeout and a bounded number of retries (429/5xx and connection errors only),
so a dead server ends an evaluation with a clear error instead of hanging it.
The API key is read from an environment variable and never logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from deepresearch.envs.deadline import Deadline
from deepresearch.envs.web.net.jsonhttp import request_json
from deepresearch.envs.web.net.retry import RetryPolicy


@dataclass
class ChatEndpointConfig:
    """Where and how to call; ``base_url`` ends before ``/chat/completions`` (e.g. ``http://host:8000/v1``)."""

    base_url: str
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"
    # (connect, read) seconds per attempt.
    timeout_s: tuple[float, float] = (10.0, 120.0)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, not {self.base_url!r}")
        if not self.model:
            raise ValueError("model must name the served model")

    def call_deadline(self) -> Deadline:
        """Room for every attempt's full (connect, read) timeouts and the waits between them: without it
        ``request_json`` ends the call at its default 30 s, silently shorter than a 120 s read timeout."""
        waits = (self.retry.max_attempts - 1) * max(self.retry.max_delay_s, self.retry.retry_after_cap_s)
        return Deadline(self.retry.max_attempts * sum(self.timeout_s) + waits)


@dataclass(frozen=True)
class ChatReply:
    """The first choice; ``stop_reason`` is the stop string that ended it when the server says (vLLM does)."""

    text: str
    finish_reason: str
    stop_reason: str | None = None


class ChatEndpointError(RuntimeError):
    """The endpoint answered with something that is not a chat completion."""


class ChatClient:
    def __init__(self, config: ChatEndpointConfig) -> None:
        self.config = config
        self._api_key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""

    @property
    def url(self) -> str:
        return f"{self.config.base_url.rstrip('/')}/chat/completions"

    def complete(self, messages: list[dict[str, Any]], **params: Any) -> ChatReply:
        """One completion of ``messages``; ``params`` are request fields (max_tokens, stop, temperature...)."""
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        body = {"model": self.config.model, "messages": messages, **params}
        reply = request_json(
            "POST",
            self.url,
            headers=headers,
            timeout_s=self.config.timeout_s,
            retry=self.config.retry,
            body=body,
            deadline=self.config.call_deadline(),
        )
        try:
            choice = reply["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ChatEndpointError(f"not a chat completion: {str(reply)[:200]}") from None
        stop_reason = choice.get("stop_reason")
        return ChatReply(
            text=str(text),
            finish_reason=str(choice.get("finish_reason") or ""),
            stop_reason=stop_reason if isinstance(stop_reason, str) else None,
        )
