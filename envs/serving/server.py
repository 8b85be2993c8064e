"""``deepresearch serve-env``: our registered envs as an OpenEnv server.

Built from OpenEnv's own server (``openenv.core.env_server.create_fastapi_app`` over
``HTTPEnvServer``), so OpenEnv's clients (``GenericEnvClient``, ``EnvClient``
subclasses, TRL's and SkyRL's OpenEnv integrations) connect unchanged:

    deepresearch serve-env --env-kwargs '{"protocol": "search_r1", "corpus": "wiki18_index/"}' --port 8010

    from openenv.core import GenericEnvClient
    with GenericEnvClient(base_url="http://127.0.0.1:8010").sync() as env:
        first = env.reset(question="who wrote Hamlet?", golden_answers=["William Shakespeare"])
        result = env.step({"text": "<search> Hamlet author </search>"})
        result.observation["segments"]      # who wrote each character: mask env text out of the loss

Sessions are OpenEnv's: one per WebSocket connection (``/ws``), each with its own env
on its own thread, at most ``max_sessions`` at once (more get ``CAPACITY_REACHED``),
closed after ``idle_timeout_s`` without a message (OpenEnv's reaper). Memory per
session is bounded: a message is at most ``max_message_bytes`` (larger ones close the
connection with WebSocket code 1009), the env takes at most ``max_turns`` turns and
cuts every observation at ``max_observation_chars``, so a transcript never exceeds
``max_transcript_chars``. HTTP ``/reset`` and ``/step`` are OpenEnv's stateless
one-shot calls (a fresh env each); episodes need the WebSocket session.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

from deepresearch.registration import WIKI_ENV_ID

from deepresearch.envs.retrieval.server import LOOPBACK


@dataclass(frozen=True)
class EnvServerConfig:
    """What is served and the limits every session lives within."""

    env_id: str = WIKI_ENV_ID
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    max_sessions: int = 64
    # Seconds without a message after which OpenEnv's reaper closes a session (None: never).
    idle_timeout_s: float | None = 300.0
    # Largest WebSocket message accepted (an action, a reset); uvicorn closes the connection above it.
    max_message_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        if self.max_sessions < 1 or self.max_message_bytes < 1024:
            raise ValueError("need max_sessions >= 1 and max_message_bytes >= 1024")
        if self.idle_timeout_s is not None and self.idle_timeout_s <= 0:
            raise ValueError("idle_timeout_s must be > 0 (or None for no timeout)")


def max_transcript_chars(env: Any, max_message_bytes: int) -> int:
    """The longest transcript one session can build: the prompt plus, per turn, the largest action a
    message can carry and the longest observation."""
    core = env.unwrapped
    prompt = len(core.protocol.build_prompt("", browse=core.backend.supports_browse).text)
    longest_question = max((len(item.question) for item in core.questions), default=0)
    per_turn = max_message_bytes + core.config.max_observation_chars + 1024  # + the observation framing
    return prompt + max(longest_question, max_message_bytes) + core.config.max_turns * per_turn


def build_app(config: EnvServerConfig) -> tuple[Any, Callable[[], None]]:
    """The FastAPI app (OpenEnv's) and a function that releases the shared index/backend."""
    from openenv.core.env_server import create_fastapi_app
    from openenv.core.env_server.types import ConcurrencyConfig

    from deepresearch.envs.serving.session_env import SessionEnv
    from deepresearch.envs.serving.shared_factory import SharedEnvFactory
    from deepresearch.envs.serving.wire import TextAction, TextObservation

    make_env = SharedEnvFactory(config.env_id, config.env_kwargs)
    probe = make_env()
    bound = max_transcript_chars(probe, config.max_message_bytes)
    probe.close()

    def session() -> SessionEnv:
        return SessionEnv(make_env(), bound, name=config.env_id)

    concurrency = ConcurrencyConfig(max_concurrent_envs=config.max_sessions, session_timeout=config.idle_timeout_s)
    app = create_fastapi_app(session, TextAction, TextObservation, concurrency_config=concurrency)
    return QuietDisconnects(app), make_env.close


class QuietDisconnects:
    """ASGI wrapper: OpenEnv 0.3.0 closes a WebSocket its client already closed, and starlette
    answers with ``WebSocketDisconnect``, which uvicorn logs as a 40-line traceback at every
    client's goodbye. The session is already destroyed by then; nothing else is swallowed."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from starlette.websockets import WebSocketDisconnect

        try:
            await self.app(scope, receive, send)
        except WebSocketDisconnect:
            if scope["type"] != "websocket":
                raise


@contextmanager
def running_env_server(config: EnvServerConfig, port: int = 0) -> Iterator[str]:
    """Serve ``config`` on 127.0.0.1 from a background thread; yields the base URL (tests, notebooks)."""
    from deepresearch.envs.retrieval.server import BackgroundServer

    app, release = build_app(config)
    try:
        with BackgroundServer(app, LOOPBACK, port, ws_max_size=config.max_message_bytes) as server:
            yield server.url
    finally:
        release()


def configure(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--env-id", default=WIKI_ENV_ID, help="a registered env id (DeepResearch-Wiki-v0, DeepResearch-Web-v0, ...)")
    parser.add_argument("--env-kwargs", default="{}", help="gym.make kwargs as JSON (protocol, corpus, retriever, web settings, ...)")
    parser.add_argument("--host", default=LOOPBACK, help="address to bind (default loopback only)")
    parser.add_argument("--port", type=int, default=8010)
    defaults = EnvServerConfig()
    parser.add_argument("--max-sessions", type=int, default=defaults.max_sessions, help="concurrent WebSocket sessions")
    parser.add_argument("--idle-timeout", type=float, default=defaults.idle_timeout_s, help="seconds; 0 keeps idle sessions forever")
    parser.add_argument("--max-message-bytes", type=int, default=defaults.max_message_bytes)
    return run


def run(args: argparse.Namespace) -> int:
    import uvicorn

    config = EnvServerConfig(
        env_id=args.env_id,
        env_kwargs=json.loads(args.env_kwargs),
        max_sessions=args.max_sessions,
        idle_timeout_s=args.idle_timeout or None,
        max_message_bytes=args.max_message_bytes,
    )
    app, release = build_app(config)
    print(f"serving {config.env_id} over OpenEnv on http://{args.host}:{args.port} (WebSocket sessions at /ws)", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, ws_max_size=config.max_message_bytes, log_level="warning")
    finally:
        release()
    return 0
