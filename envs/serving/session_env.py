"""One client's env behind OpenEnv's ``Environment`` interface.

OpenEnv's server gives every WebSocket session its own ``Environment`` (from a
factory), runs its calls on that session's own thread and turns an exception into an
error reply to that client only. So everything a bad client can do ends here as an
exception with a message that says what to do: a step before ``reset`` or after the
episode ended, an unknown reset option, a session the server closed for idling.
"""

from __future__ import annotations

from typing import Any

from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import EnvironmentMetadata

from deepresearch.envs.serving.wire import Segment, SessionState, TextAction, TextObservation

# Reset options a client may send, as our envs' ``reset(options=...)`` reads them.
RESET_OPTIONS = frozenset({"question", "golden_answers", "id", "index", "metadata"})


class SessionEnv(Environment[TextAction, TextObservation, SessionState]):
    """Adapts one Gymnasium text env (``reset``/``step`` with ``info["segments"]``) to OpenEnv."""

    # Each session owns its env; shared indexes and web backends are safe for concurrent use.
    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, env: Any, max_transcript_chars: int, name: str = "DeepResearch") -> None:
        super().__init__()
        self._env = env
        self._max_transcript_chars = max_transcript_chars
        self._name = name
        self._state = SessionState(max_transcript_chars=max_transcript_chars)
        self._closed = False

    def reset(self, seed: int | None = None, episode_id: str | None = None, **options: Any) -> TextObservation:
        self._check_open()
        unknown = sorted(set(options) - RESET_OPTIONS)
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; known: {sorted(RESET_OPTIONS)} (and seed, episode_id)")
        if "golden_answers" in options and "question" not in options:
            raise ValueError("golden_answers needs a question")
        prompt, info = self._env.reset(seed=seed, options=options)
        self._state = SessionState(
            episode_id=episode_id, question_id=str(info.get("question_id", "")), done=False,
            transcript_chars=len(info["transcript"]), max_transcript_chars=self._max_transcript_chars,
        )
        return TextObservation(
            text=prompt,
            transcript=info["transcript"],
            segments=[Segment(**segment) for segment in info["segments"]],
            messages=info.get("messages", []),
            stop=list(info.get("stop", [])),
            observation_role=str(info.get("observation_role", "")),
            question_id=self._state.question_id or "",
        )

    def step(self, action: TextAction, timeout_s: float | None = None, **_: Any) -> TextObservation:
        self._check_open()
        if self._state.done:
            raise RuntimeError("no episode is running: reset first (after an episode ends, reset starts the next)")
        unknown = sorted(action.model_extra or {})
        if action.text is None or unknown:
            raise ValueError(f"an action is {{'text': <the policy's turn>}}; got fields {sorted(action.model_dump(exclude_unset=True))}")
        observation, reward, terminated, truncated, info = self._env.step(action.text)
        state = self._state
        state.step_count += 1
        state.turn = int(info.get("turn", state.step_count))
        state.done = bool(terminated or truncated)
        state.transcript_chars = len(info["transcript"])
        return TextObservation(
            text=observation,
            reward=float(reward),
            done=state.done,
            transcript=info["transcript"],
            segments=[Segment(**segment) for segment in info["segments"]],
            new_messages=list(info.get("new_messages") or []),
            action=info.get("action"),
            truncated=bool(truncated),
            reward_components=info.get("reward_components"),
            question_id=state.question_id or "",
            turn=state.turn,
        )

    @property
    def state(self) -> SessionState:
        return self._state

    def get_metadata(self) -> EnvironmentMetadata:
        return EnvironmentMetadata(name=self._name, description="deepresearch-gym text env: actions are the model's turns", version="0.1.0")

    def close(self) -> None:
        """Called by the server when the client leaves or the session idled past the timeout."""
        if not self._closed:
            self._closed = True
            self._env.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this session was closed by the server (idle past its timeout); open a new connection")
