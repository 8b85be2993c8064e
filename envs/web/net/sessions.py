"""Deadlines that hold even against a server dripping one byte a second.

``requests`` timeouts bound each socket read, not the whole call: a server that
sends a byte every second never trips them. A ``Watchdog`` tracks the sockets
of one call and shuts them at the deadline, so blocked reads return at once; a
single shared thread fires all watchdogs. ``watched_session`` builds a requests
session whose connections are tracked, and optionally pinned to one checked IP
(the host name still goes into the Host header, SNI and certificate checks).
"""

from __future__ import annotations

import heapq
import socket
import threading
import time


class Watchdog:
    """Shuts every socket of one fetch at its deadline so blocked reads return at once."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.expired = False
        self.finished = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "Watchdog":
        _WATCHER.watch(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.finished = True

    def track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shutdown(sock)
        return sock

    def fire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)


class _DeadlineWatcher:
    """One daemon thread fires every fetch's watchdog; cheaper than a timer thread per fetch."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watchdog]] = []
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, watchdog: Watchdog) -> None:
        with self._condition:
            heapq.heappush(self._heap, (watchdog.deadline, id(watchdog), watchdog))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fetch-deadlines", daemon=True)
                self._thread.start()
            self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._heap and self._heap[0][2].finished:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._condition.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                watchdog = heapq.heappop(self._heap)[2]
            watchdog.fire()


_WATCHER = _DeadlineWatcher()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def watched_session(watchdog: Watchdog, address: str | None = None, ca_bundle: str | None = None):
    """A requests session whose sockets the watchdog can shut; pinned to ``address`` when given.

    Pinned sessions ignore proxy settings from the environment (a proxy would
    connect elsewhere than the checked address); unpinned ones honour them, and
    connections through such a proxy are not tracked by the watchdog.
    """
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
    from urllib3.util.connection import create_connection

    def new_conn(self) -> socket.socket:
        try:
            sock = create_connection(
                (address or self._dns_host, self.port),
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except socket.timeout as error:
            raise ConnectTimeoutError(self, f"connection to {self.host} timed out") from error
        except OSError as error:
            raise NewConnectionError(self, f"could not connect to {self.host}: {error}") from error
        return watchdog.track(sock)

    http_conn = type("WatchedHTTPConnection", (HTTPConnection,), {"_new_conn": new_conn})
    https_conn = type("WatchedHTTPSConnection", (HTTPSConnection,), {"_new_conn": new_conn})
    adapter = HTTPAdapter(max_retries=0, pool_connections=1, pool_maxsize=1)
    adapter.poolmanager.pool_classes_by_scheme = {
        "http": type("WatchedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("WatchedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }
    session = requests.Session()
    session.trust_env = address is None
    if ca_bundle:
        session.verify = ca_bundle
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
