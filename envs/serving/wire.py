"""What goes over OpenEnv's wire: the action, observation and state of a text env.

OpenEnv serialises an ``Observation`` subclass's *declared* fields only: its
``serialize_observation`` drops ``Observation.metadata`` (and sends ``reward`` and
``done`` beside the observation), so nothing put in ``metadata`` ever reaches a client.
Everything a trainer needs from our ``info`` — the masking spans above all — is
therefore a typed field here: ``segments`` (who wrote each character of
``transcript``), the chat messages, the parsed action and the reward components.
Golden answers are not sent: the server scores, the client reads ``reward``.
"""

from __future__ import annotations

from typing import Any, Literal

from openenv.core.env_server.types import Action, Observation, State
from pydantic import BaseModel, ConfigDict, Field


class Segment(BaseModel):
    """A span of ``transcript``: ``[start, end)`` written by ``source``; only ``policy`` is trainable."""

    model_config = ConfigDict(extra="forbid")
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    source: Literal["prompt", "policy", "env"]


class TextAction(Action):
    """One policy turn: the model's text up to a stop string, exactly as generated.

    Missing or unknown fields pass validation and are refused by the session with a
    message naming them: OpenEnv's client shows only "Invalid message" for a schema error.
    """

    model_config = ConfigDict(extra="allow")
    text: str | None = Field(default=None, description="the policy's turn, e.g. '<think>...</think> <search> query </search>'")


class TextObservation(Observation):
    """After ``reset``: the prompt. After ``step``: exactly the text the env appended ('' at the end)."""

    text: str = Field(default="", description="the prompt (reset) or the env's appended text (step)")
    transcript: str = Field(default="", description="prompt + every turn so far, as one text")
    segments: list[Segment] = Field(default_factory=list, description="who wrote each span of transcript")
    messages: list[dict[str, Any]] = Field(default_factory=list, description="reset: the prompt as chat messages")
    new_messages: list[dict[str, Any]] = Field(default_factory=list, description="step: chat messages the env added (tool turns)")
    stop: list[str] = Field(default_factory=list, description="reset: the protocol's stop strings")
    observation_role: str = Field(default="", description="reset: 'assistant' (env text continues the turn) or 'tool'")
    action: dict[str, Any] | None = Field(default=None, description="step: the parsed action (kind, queries, answer, error)")
    truncated: bool = Field(default=False, description="the episode ended at the turn limit without an answer")
    reward_components: dict[str, Any] | None = Field(default=None, description="at the end: answer EM/F1, format, searches")
    question_id: str = ""
    turn: int = 0


class SessionState(State):
    """The session's episode, as ``/ws`` ``state`` reports it."""

    question_id: str | None = None
    turn: int = 0
    done: bool = True
    transcript_chars: int = 0
    max_transcript_chars: int = 0
