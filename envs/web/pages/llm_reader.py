"""An optional LLM reading agent: walks a page window by window, keeps what answers the question.

The idea is DeepResearcher's (a reader model pages through a long document and
stops once it has what it needs); prompt and protocol are ours. It talks to any
OpenAI-compatible ``/v1/chat/completions`` endpoint with plain ``requests``.
Replies are asked for as JSON ``{"notes": str, "enough": bool}``; a reply that is
not JSON is kept as notes, so a chatty model still helps instead of failing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from deepresearch.envs.deadline import Deadline
from deepresearch.envs.web.net.jsonhttp import request_json
from deepresearch.envs.web.net.keys import read_api_key
from deepresearch.envs.web.net.retry import RetryPolicy
from deepresearch.envs.web.pages.reading import split_chunks
from deepresearch.envs.web.pages.safety import redact

SYSTEM_PROMPT = (
    "You help a research agent read a web page. You see one part of the page at a time. "
    "Copy or tightly summarise only the facts from this part that help answer the question or the search "
    "query (names, numbers, dates, quotes), and nothing else. Reply with JSON only: "
    '{"notes": "<facts from this part, or empty>", "enough": <true if the notes so far answer the question>}'
)


class LLMReaderError(Exception):
    """The reader endpoint failed; the message is redacted."""


@dataclass(frozen=True)
class LLMReaderConfig:
    """``base_url`` ends in ``/v1``; the key, if the endpoint needs one, comes from ``api_key_env``."""

    base_url: str
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"
    timeout_s: tuple[float, float] = (5.0, 60.0)
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=2))
    window_chars: int = 4000
    max_calls: int = 4
    max_tokens: int = 512

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"reader base_url must start with http:// or https://, got {self.base_url!r}")
        if not self.model:
            raise ValueError("reader model name is empty")
        if self.window_chars < 200 or self.max_calls < 1 or self.max_tokens < 16:
            raise ValueError("reader window_chars >= 200, max_calls >= 1 and max_tokens >= 16 are required")


def parse_reply(content: str) -> tuple[str, bool]:
    """``(notes, enough)`` from the reader's reply; non-JSON replies are notes that are not final."""
    match = re.search(r"\{.*\}", content, re.DOTALL)
    if match:
        try:
            payload = json.loads(match.group(0))
        except json.JSONDecodeError:
            payload = None
        if isinstance(payload, dict):
            return str(payload.get("notes") or "").strip(), bool(payload.get("enough") is True)
    return content.strip(), False


class LLMReader:
    def __init__(self, config: LLMReaderConfig) -> None:
        self.config = config
        self._api_key = read_api_key(config.api_key_env, required=False) if config.api_key_env else ""

    def _windows(self, text: str) -> list[str]:
        return split_chunks(text, self.config.window_chars)

    def _ask(
        self, question: str, query: str | None, notes: list[str], window: str, part: int, parts: int, deadline: Deadline
    ) -> str:
        user = (
            f"Question: {question}\nCurrent search query: {query or '(none)'}\n"
            f"Notes so far: {' '.join(notes) or '(none)'}\n\nPage part {part} of {parts}:\n{window}"
        )
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        body = {
            "model": self.config.model,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
            "max_tokens": self.config.max_tokens,
            "temperature": 0.0,
        }
        reply = request_json(
            "POST",
            f"{self.config.base_url.rstrip('/')}/chat/completions",
            headers=headers,
            timeout_s=self.config.timeout_s,
            retry=self.config.retry,
            body=body,
            deadline=deadline,
        )
        return str(reply["choices"][0]["message"]["content"] or "")

    def read(self, text: str, question: str, query: str | None, char_budget: int, deadline: Deadline | None = None) -> str:
        """Notes on the page within ``char_budget`` by ``deadline``; raises ``LLMReaderError`` if the endpoint fails."""
        deadline = deadline or Deadline()
        windows = self._windows(text)
        notes: list[str] = []
        for part, window in enumerate(windows[: self.config.max_calls], start=1):
            try:
                content = self._ask(question, query, notes, window, part, len(windows), deadline)
            except Exception as error:  # noqa: BLE001 - any failure means "fall back", reported redacted
                raise LLMReaderError(redact(f"reader failed: {type(error).__name__}: {error}", (self._api_key,))) from None
            found, enough = parse_reply(content)
            if found:
                notes.append(found)
            if enough:
                break
        return "\n".join(notes)[:char_budget]
