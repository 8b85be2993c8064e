"""Real HTTP servers on 127.0.0.1 for the web backend tests and benchmark.

``LoopbackServer`` runs a ``ThreadingHTTPServer`` bound to 127.0.0.1 only and
dispatches by path to small route functions. Three route sets model what the
backend meets: search providers speaking their documented JSON, a small site of
realistic pages, and a hostile server (slow drip, huge body, redirect loops,
wrong types, garbage bytes, 429/500 storms, connection resets). A fake reader
LLM speaks the OpenAI chat-completions JSON. ``RedisServer`` runs a real
``redis-server`` on a free loopback port for the shared-cache tests.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

LOOPBACK = "127.0.0.1"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


Route = Callable[["RouteHandler", Request], None]


class RouteHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet test output
        pass

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), self.rfile.read(length)
        )
        self.server.requests.append(request)
        if self.server.latency_s:
            time.sleep(self.server.latency_s)
        route = self.server.routes.get(parts.path)
        if route is None:
            prefix = next((p for p in self.server.routes if p.endswith("*") and parts.path.startswith(p[:-1])), None)
            route = self.server.routes.get(prefix) if prefix else None
        if route is None:
            self.send_body(404, "text/plain", b"not found")
        else:
            route(self, request)

    do_GET = do_POST = _dispatch

    def send_body(self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, payload, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.send_body(status, "application/json", json.dumps(payload).encode(), headers)

    def redirect(self, location: str, status: int = 302) -> None:
        self.send_body(status, "text/plain", b"moved", {"Location": location})

    def reset_connection(self) -> None:
        """Close with RST (SO_LINGER 0): the client sees 'connection reset by peer'."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops SYNs when 32 clients connect at once

    def __init__(self, routes: dict[str, Route], latency_s: float) -> None:
        super().__init__((LOOPBACK, 0), RouteHandler)
        self.routes = routes
        self.latency_s = latency_s
        self.requests: list[Request] = []

    def handle_error(self, request, client_address) -> None:  # hostile routes break connections on purpose
        pass


@dataclass
class LoopbackServer:
    """``with LoopbackServer(routes) as server: server.url + "/path"``; bound to 127.0.0.1 only."""

    routes: dict[str, Route]
    latency_s: float = 0.0
    tls: tuple[str, str] | None = None  # (certificate PEM, key PEM) to serve HTTPS
    _server: _Server | None = field(default=None, init=False)

    def __enter__(self) -> "LoopbackServer":
        self._server = _Server(self.routes, self.latency_s)
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    @property
    def requests(self) -> list[Request]:
        return self._server.requests


# --- a small site of realistic pages --------------------------------------------------------------

_NAV = """<header><nav><ul><li><a href="/">Home</a></li><li><a href="/science">Science</a></li>
<li><a href="/history">History</a></li><li><a href="/login">Sign in</a></li></ul></nav></header>
<div class="cookie-banner">We use cookies to improve your experience. <button>Accept all</button></div>"""
_FOOTER = """<footer><p>Copyright 2024 Example Encyclopedia. All rights reserved.</p>
<ul><li><a href="/privacy">Privacy policy</a></li><li><a href="/terms">Terms of use</a></li></ul></footer>"""


def article_html(title: str, paragraphs: list[str], charset: str = "utf-8") -> str:
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="{charset}"><title>{title}</title>'
        f"<script>window.analytics = {{track: function() {{}}}};</script></head><body>{_NAV}"
        f'<main><article><h1>{title}</h1>{body}</article></main>'
        f'<aside><h3>Related</h3><a href="/a">Ten facts about volcanoes</a></aside>{_FOOTER}</body></html>'
    )


MARIE_CURIE = [
    "Marie Sklodowska Curie was a Polish and naturalised French physicist and chemist who conducted "
    "pioneering research on radioactivity.",
    "She was the first woman to win a Nobel Prize, the first person to win a Nobel Prize twice, and the only "
    "person to win a Nobel Prize in two scientific fields. She shared the 1903 Nobel Prize in Physics with "
    "Pierre Curie and Henri Becquerel.",
    "In 1911 she received the Nobel Prize in Chemistry for the discovery of the elements polonium and radium, "
    "and for isolating radium and studying the nature of its compounds.",
    "Born in Warsaw in 1867, she studied at a clandestine school known as the Flying University before moving "
    "to Paris in 1891 to continue her studies at the University of Paris.",
    "During the First World War she developed mobile radiography units, known as little Curies, to provide "
    "X-ray services to field hospitals near the front lines.",
    "She died in 1934 at the sanatorium of Sancellemoz in Passy, France, of aplastic anaemia likely caused by "
    "her long exposure to radiation.",
]
MARIANA_TRENCH = [
    "The Mariana Trench is an oceanic trench located in the western Pacific Ocean, about 200 kilometres east of "
    "the Mariana Islands.",
    "It is the deepest oceanic trench on Earth. Its maximum known depth, at the southern end in a small "
    "slot-shaped valley called the Challenger Deep, is about 10,935 metres.",
    "The trench is crescent-shaped and measures about 2,550 kilometres in length and 69 kilometres in width.",
    "At the bottom of the trench the water column above exerts a pressure of about 1,071 times the standard "
    "atmospheric pressure at sea level.",
    "In 1960 Jacques Piccard and Don Walsh reached the bottom of the Challenger Deep in the bathyscaphe Trieste.",
]
PLAIN_TEXT = (
    "Tide tables for the harbour\n\nHigh tide today is at 06:42 and again at 19:05.\n\n"
    "Low tide is at 12:51. The tidal range this week is about 3.1 metres.\n"
)
LATIN1_TEXT = "Le café de la Pâtisserie Gérard est ouvert depuis 1923 à Genève, près du lac Léman."


def site_routes() -> dict[str, Route]:
    """Articles with boilerplate, plain text, a redirect chain, and a Latin-1 page."""
    curie = article_html("Marie Curie", MARIE_CURIE).encode()
    trench = article_html("Mariana Trench", MARIANA_TRENCH).encode()
    latin1 = article_html("Café Gérard", [LATIN1_TEXT] * 3, charset="iso-8859-1").encode("iso-8859-1")
    return {
        "/wiki/Marie_Curie": lambda h, r: h.send_body(200, "text/html; charset=utf-8", curie),
        "/wiki/Mariana_Trench": lambda h, r: h.send_body(200, "text/html", trench),
        "/tides.txt": lambda h, r: h.send_body(200, "text/plain; charset=utf-8", PLAIN_TEXT.encode()),
        "/cafe": lambda h, r: h.send_body(200, "text/html", latin1),
        "/old/curie": lambda h, r: h.redirect("/moved/curie", 301),
        "/moved/curie": lambda h, r: h.redirect(f"http://{LOOPBACK}:{h.server.server_address[1]}/wiki/Marie_Curie"),
    }


# --- a hostile server ------------------------------------------------------------------------------


def drip_route(content_type: str, interval_s: float = 1.0, count: int = 60) -> Route:
    """Headers at once, then one byte every ``interval_s``: per-read timeouts never fire."""

    def drip(handler: RouteHandler, request: Request) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        for _ in range(count):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(interval_s)

    return drip


def _huge(handler: RouteHandler, request: Request) -> None:
    """50 MB of text, streamed; the server counts what it managed to send."""
    size = 50 * 1024 * 1024
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Content-Length", str(size))
    handler.end_headers()
    block = (b"All work and no play makes Jack a dull boy. " * 1500)[:65536]
    sent = 0
    try:
        while sent < size:
            handler.wfile.write(block)
            sent += len(block)
    finally:
        handler.server.huge_bytes_sent = sent


def _storm(status: int, retry_after: str | None) -> Route:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return lambda h, r: h.send_json({"error": "try later"}, status, headers)


def hostile_routes() -> dict[str, Route]:
    garbage = bytes((i * 7919 + 13) % 256 for i in range(20000))
    return {
        "/drip": drip_route("text/html"),
        "/huge": _huge,
        "/loop/a": lambda h, r: h.redirect("/loop/b"),
        "/loop/b": lambda h, r: h.redirect("/loop/a"),
        "/chain/*": lambda h, r: h.redirect(f"/chain/{int(r.path.rsplit('/', 1)[1]) + 1}"),
        "/image.png": lambda h, r: h.send_body(200, "image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100),
        "/paper.pdf": lambda h, r: h.send_body(200, "application/pdf", b"%PDF-1.7\n" + b"x" * 100),
        "/garbage": lambda h, r: h.send_body(200, "text/html", garbage),
        "/reset": lambda h, r: h.reset_connection(),
        "/429": _storm(429, "1"),
        "/500": _storm(500, None),
        "/to-metadata": lambda h, r: h.redirect("http://169.254.169.254/latest/meta-data/"),
        "/to-private": lambda h, r: h.redirect("http://10.0.0.1/admin"),
        "/to-localhost": lambda h, r: h.redirect("http://localhost/"),
    }


def fake_dns(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    """A ``UrlPolicy`` resolver: names in ``table`` resolve to its addresses, IP literals to themselves."""

    def resolve(host: str, port: int) -> list[str]:
        return table.get(host, [host])

    return resolve


# --- search providers ------------------------------------------------------------------------------


def fake_hits(query: str, k: int, urls: list[str] | None = None) -> list[tuple[str, str, str]]:
    """Deterministic ``(url, title, snippet)`` hits derived from the query (or pointing at ``urls``)."""
    slug = re.sub(r"\W+", "-", query.lower()).strip("-")
    links = urls or [f"https://example.org/{slug}/{i}" for i in range(k)]
    return [(url, f"{query} - result {i}", f"Snippet {i} about {query}.") for i, url in enumerate(links[:k])]


@dataclass
class ProviderBehaviour:
    """What the provider server does: answer, or fail (status, reset, stall, bad body) for every request."""

    api_key: str
    fail_status: int | None = None
    retry_after: str | None = None
    reset: bool = False
    urls: list[str] | None = None  # result links; default example.org links derived from the query
    delay_s: float = 0.0  # wait before answering (longer than the client's read timeout: a timeout)
    body: bytes | None = None  # answer 200 with these raw bytes instead of the provider's JSON

    def heal(self) -> None:
        """Answer normally from now on."""
        self.fail_status, self.retry_after, self.reset, self.delay_s, self.body = None, None, False, 0.0, None


def _guarded(behaviour: ProviderBehaviour, authorised: Callable[[Request], bool], answer: Route) -> Route:
    def route(handler: RouteHandler, request: Request) -> None:
        if behaviour.delay_s:
            time.sleep(behaviour.delay_s)
        if behaviour.reset:
            handler.reset_connection()
        elif behaviour.body is not None:
            handler.send_body(200, "application/json", behaviour.body)
        elif behaviour.fail_status:
            headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
            handler.send_json({"error": "unavailable"}, behaviour.fail_status, headers)
        elif not authorised(request):
            handler.send_json({"error": "unauthorised"}, 401)
        else:
            answer(handler, request)

    return route


def provider_routes(name: str, behaviour: ProviderBehaviour) -> dict[str, Route]:
    """Routes that speak ``name``'s documented request/response JSON and check the key."""
    key = behaviour.api_key
    if name == "serper":

        def answer(h: RouteHandler, r: Request) -> None:
            body = r.json()
            hits = fake_hits(body["q"], int(body.get("num", 10)), behaviour.urls)
            h.send_json({"organic": [{"title": t, "link": u, "snippet": s, "position": i + 1}
                                     for i, (u, t, s) in enumerate(hits)]})

        auth = lambda r: r.method == "POST" and r.headers.get("X-API-KEY") == key  # noqa: E731
        return {"/search": _guarded(behaviour, auth, answer)}
    if name == "searxng":

        def answer(h: RouteHandler, r: Request) -> None:
            hits = fake_hits(r.query["q"][0], 10, behaviour.urls)
            h.send_json({"query": r.query["q"][0], "results": [{"title": t, "url": u, "content": s, "engine": "x"}
                                                                for u, t, s in hits]})

        auth = lambda r: r.method == "GET" and r.query.get("format") == ["json"]  # noqa: E731
        return {"/search": _guarded(behaviour, auth, answer)}
    if name == "brave":

        def answer(h: RouteHandler, r: Request) -> None:
            hits = fake_hits(r.query["q"][0], int(r.query.get("count", ["20"])[0]), behaviour.urls)
            h.send_json({"type": "search", "web": {"type": "search", "results": [
                {"title": t, "url": u, "description": s} for u, t, s in hits]}})

        auth = lambda r: r.method == "GET" and r.headers.get("X-Subscription-Token") == key  # noqa: E731
        return {"/res/v1/web/search": _guarded(behaviour, auth, answer)}
    if name == "tavily":

        def answer(h: RouteHandler, r: Request) -> None:
            body = r.json()
            hits = fake_hits(body["query"], int(body.get("max_results", 5)), behaviour.urls)
            h.send_json({"query": body["query"], "results": [{"title": t, "url": u, "content": s, "score": 0.9}
                                                             for u, t, s in hits]})

        auth = lambda r: r.method == "POST" and r.headers.get("Authorization") == f"Bearer {key}"  # noqa: E731
        return {"/search": _guarded(behaviour, auth, answer)}
    raise ValueError(f"no fake server for provider {name!r}")


def serve_site_and_hostile_routes():
    """A pytest fixture body: the realistic site and the hostile routes on one loopback server."""
    with LoopbackServer({**site_routes(), **hostile_routes()}) as running:
        yield running


def serve_provider(name: str, behaviour: ProviderBehaviour):
    """A pytest fixture body: ``name``'s fake server, with ``.behaviour`` to change what it does mid-test."""
    with LoopbackServer(provider_routes(name, behaviour)) as running:
        running.behaviour = behaviour
        yield running


# --- a reader LLM speaking OpenAI chat completions -------------------------------------------------


def reader_routes(keyword: str, fail_status: int | None = None) -> dict[str, Route]:
    """A deterministic 'reader': keeps page lines containing ``keyword`` and says enough once it has one."""

    def complete(handler: RouteHandler, request: Request) -> None:
        if fail_status:
            handler.send_json({"error": {"message": "overloaded"}}, fail_status)
            return
        body = request.json()
        user = body["messages"][-1]["content"]
        page = user.split(":\n", 1)[-1] if "Page part" in user else ""
        found = [line for line in page.splitlines() if keyword.lower() in line.lower()]
        reply = json.dumps({"notes": " ".join(found), "enough": bool(found)})
        handler.send_json({
            "id": "chatcmpl-test", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        })

    return {"/v1/chat/completions": complete}


# --- a real Redis ----------------------------------------------------------------------------------


class RedisUnavailable(RuntimeError):
    """No ``redis-server`` binary here (``apt-get install redis-server``), or it would not start."""


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


@dataclass
class RedisServer:
    """``with RedisServer() as redis: redis.url``: a throwaway ``redis-server`` on 127.0.0.1, no persistence."""

    startup_timeout_s: float = 10.0
    _process: subprocess.Popen | None = field(default=None, init=False)
    port: int = field(default=0, init=False)

    def __enter__(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable("redis-server is not installed (Debian: apt-get install redis-server)")
        self.port = free_loopback_port()
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RedisUnavailable(f"redis-server exited with status {self._process.returncode}")
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise RedisUnavailable(f"redis-server did not answer within {self.startup_timeout_s:g} s")

    def __exit__(self, *exc) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def dump(self) -> bytes:
        """Every key and value in the server, as bytes, for tests that grep for secrets."""
        import redis

        client = redis.Redis.from_url(self.url)
        chunks = []
        for key in client.scan_iter(count=1000):
            chunks.append(key)
            kind = client.type(key)
            if kind == b"string":
                chunks.append(client.get(key))
            elif kind == b"hash":
                chunks.extend(b"".join(pair) for pair in client.hgetall(key).items())
            elif kind == b"zset":
                chunks.extend(member for member, _ in client.zrange(key, 0, -1, withscores=True))
        client.close()
        return b"\n".join(chunks)


def redis_server_or_skip():
    """A pytest fixture body: a running ``RedisServer``, or the test skipped with the reason."""
    import pytest

    try:
        with RedisServer() as server:
            yield server
    except RedisUnavailable as error:
        pytest.skip(str(error))
