"""An HTTP retrieval server speaking Search-R1's ``POST /retrieve``, so an index can live
on another machine and existing Search-R1 clients can use it.

Request ``{"queries": [...], "topk": k, "return_scores": bool}``; response
``{"result": [[{"document": {"id", "contents"}, "score"}, ...], ...]}`` with scores, or
lists of bare ``{"id", "contents"}`` documents without (as Search-R1's server answers).
Search-R1's clients read ``document.contents``; ``title`` and ``text`` repeat it and are
sent only when a request asks, with ``"fields": ["id", "title", "text", "contents"]``.
``GET /health`` describes the index (replicated clients probe it).

Why a bare ASGI app instead of a framework: at a few hundred requests per second on the
cores that also run the encoder, a framework's per-request cost (request models, a
response encoder that walks every value, a thread-pool hop per request) was a large
share of the gap to in-process search. Here a request is parsed and checked by hand,
handed to the ``CoalescingRetriever`` as a future the event loop awaits (no thread per
request; concurrent requests meet in one encoder pass), and answered with one
``json.dumps``. uvicorn keeps connections alive. Limits on the number of queries,
``topk``, query length and body size are answered with 4xx, never a crash.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from deepresearch.envs.documents import Document
from deepresearch.envs.retrieval.base import Retriever
from deepresearch.envs.retrieval.coalescing import CoalescingConfig, CoalescingRetriever

LOOPBACK = "127.0.0.1"
DOCUMENT_FIELDS = ("id", "title", "text", "contents")
DEFAULT_FIELDS = ("id", "contents")
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class ServerConfig:
    """Request limits; ``default_k`` answers a request without ``topk`` (Search-R1's ``--topk``)."""

    default_k: int = 3
    max_k: int = 100
    max_queries: int = 512
    max_query_chars: int = 4096
    coalescing: CoalescingConfig = field(default_factory=CoalescingConfig)

    def __post_init__(self) -> None:
        if not 0 < self.default_k <= self.max_k:
            raise ValueError(f"need 0 < default_k <= max_k, got {self.default_k}, {self.max_k}")

    @property
    def max_body_bytes(self) -> int:
        """The largest request body the limits allow (a query char is at most a 6-byte
        JSON escape), plus room for the other keys."""
        return self.max_queries * (6 * self.max_query_chars + 8) + 4096


class RequestError(ValueError):
    """A request this server refuses: answered with ``status`` and ``{"detail": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RetrieveRequest:
    queries: list[str]
    k: int
    return_scores: bool
    fields: tuple[str, ...]


def parse_retrieve(body: bytes, config: ServerConfig) -> RetrieveRequest:
    """The checked request, or a ``RequestError`` naming what is wrong."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(422, f"the body is not JSON ({error})") from None
    if not isinstance(payload, dict):
        raise RequestError(422, "the body must be a JSON object with a 'queries' list")
    queries = payload.get("queries")
    if not isinstance(queries, list) or not all(isinstance(query, str) for query in queries):
        raise RequestError(422, "'queries' must be a list of strings")
    k = payload.get("topk")
    k = config.default_k if k is None else k
    if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= config.max_k:
        raise RequestError(422, f"topk must be between 1 and {config.max_k}, got {k!r}")
    return_scores = payload.get("return_scores", False)
    if not isinstance(return_scores, bool):
        raise RequestError(422, "'return_scores' must be true or false")
    fields = payload.get("fields", DEFAULT_FIELDS)
    if not isinstance(fields, list | tuple) or not fields or not set(fields) <= set(DOCUMENT_FIELDS):
        raise RequestError(422, f"'fields' must be a non-empty list of {list(DOCUMENT_FIELDS)}")
    if len(queries) > config.max_queries:
        raise RequestError(413, f"{len(queries)} queries in one request; the limit is {config.max_queries}")
    for position, query in enumerate(queries):
        if len(query) > config.max_query_chars:
            raise RequestError(413, f"query {position} has {len(query)} characters; the limit is {config.max_query_chars}")
    return RetrieveRequest(queries, k, return_scores, tuple(fields))


def render_result(rows: list[list[Document]], request: RetrieveRequest) -> bytes:
    """Search-R1's response JSON: ``{"document": {...}, "score"}`` entries or bare documents."""
    if request.fields == DEFAULT_FIELDS:
        records = [[{"id": document.id, "contents": document.contents} for document in row] for row in rows]
    else:
        records = [[{name: getattr(document, name) for name in request.fields} for document in row] for row in rows]
    if request.return_scores:
        records = [
            [{"document": record, "score": document.score} for record, document in zip(record_row, row)]
            for record_row, row in zip(records, rows)
        ]
    return json.dumps({"result": records}, ensure_ascii=False).encode()


class RetrievalApp:
    """The ASGI application: ``GET /health`` and ``POST /retrieve``."""

    def __init__(self, retriever: Retriever, config: ServerConfig, description: dict[str, Any]) -> None:
        self.config = config
        self.coalescer = CoalescingRetriever(retriever, config.coalescing)
        health = {"status": "ok", **description, "limits": {"max_k": config.max_k, "max_queries": config.max_queries}}
        self._health_body = json.dumps(health).encode()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.get_running_loop().run_in_executor(None, self.coalescer.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        route = (scope["method"], scope["path"].rstrip("/") or "/")
        try:
            if route == ("GET", "/health"):
                status, body = 200, self._health_body
            elif route == ("POST", "/retrieve"):
                status, body = 200, await self._retrieve(scope, receive)
            elif scope["path"].rstrip("/") in ("/health", "/retrieve"):
                raise RequestError(405, f"{scope['method']} is not allowed on {scope['path']}")
            else:
                raise RequestError(404, f"no route {scope['path']}; this server answers POST /retrieve and GET /health")
        except RequestError as error:
            status, body = error.status, json.dumps({"detail": str(error)}).encode()
        except Exception as error:  # a failed search answers 500 and the server keeps serving
            status, body = 500, json.dumps({"detail": f"search failed: {type(error).__name__}: {error}"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _retrieve(self, scope: dict[str, Any], receive: Receive) -> bytes:
        request = parse_retrieve(await self._read_body(scope, receive), self.config)
        rows = await asyncio.wrap_future(self.coalescer.submit(request.queries, request.k))
        return render_result(rows, request)

    async def _read_body(self, scope: dict[str, Any], receive: Receive) -> bytes:
        limit = self.config.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > limit:
            raise RequestError(413, f"the body has {int(declared)} bytes; the limit is {limit}")
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"the body exceeds {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def create_app(retriever: Retriever, config: ServerConfig | None = None, description: dict[str, Any] | None = None) -> RetrievalApp:
    """The ASGI app serving ``retriever``; ``description`` is shown by ``/health``."""
    return RetrievalApp(retriever, config or ServerConfig(), description or {})


class BackgroundServer:
    """uvicorn serving an app from a thread on an already bound socket (port 0 picks a
    free port, with no race between finding it and binding it); for tests and benchmarks."""

    def __init__(self, app: Any, host: str = LOOPBACK, port: int = 0, **uvicorn_options: Any) -> None:
        """``uvicorn_options`` go to ``uvicorn.Config`` (e.g. ``ws_max_size``)."""
        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.url = f"http://{host}:{self._socket.getsockname()[1]}"
        options = {"log_level": "warning", "lifespan": "on", "access_log": False, **uvicorn_options}
        self._server = uvicorn.Server(uvicorn.Config(app, **options))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self) -> "BackgroundServer":
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server failed to start")
            threading.Event().wait(0.01)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
