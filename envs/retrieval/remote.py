"""A ``Retriever`` over HTTP: one or several servers speaking Search-R1's ``POST /retrieve``
(``deepresearch serve-retriever``, or Search-R1's own ``retrieval_server.py``).

Replicas: give several URLs (a list, or one comma-separated string) and each batch goes
to the replica with the fewest requests in flight; a batch larger than
``split_min_queries`` per replica is split over the replicas and sent in parallel. A
replica that fails (connection refused or reset, timeout, 5xx) is marked down and the
request is resent at once to another; a down replica rests ``down_cooldown_s``, then
is used again only after its ``GET /health`` answers. Retries are bounded
(``retries`` attempts after the first, over all replicas), with exponential backoff
only when no replica is up; a 4xx is the caller's mistake and is reported at once.
``/retrieve`` only reads, so resending a request whose server died mid-answer is safe:
a replica killed mid-run loses no query.

The client is urllib3 with pooled keep-alive connections (many env threads share one
client), a connect and a read timeout on every request; ``requests`` costs ~0.35 ms more
CPU per call, which at hundreds of calls per second on the cores that also encode was a
visible share of the server's throughput. A failure raises ``RemoteRetrieverError``,
which the env turns into text for the model, not a crash.

urllib3 is imported when a client is made, not with this module: the core install
(BM25 only) imports the env, and the env imports this module, without the extras.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Sequence
from urllib.parse import urlsplit

from deepresearch.envs.documents import Document
from deepresearch.envs.retrieval.base import check_search_arguments

_RETRIED_STATUS = {500, 502, 503, 504}


class RemoteRetrieverError(RuntimeError):
    """The servers could not be reached, kept failing, or refused the request (``status``)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _ReplicaFailed(Exception):
    """This replica failed the request in a way another replica may not (resend there)."""


@dataclass(frozen=True)
class RemoteConfig:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0  # a large batch on a loaded server takes a while
    retries: int = 3  # attempts after the first, over all replicas
    backoff_s: float = 0.2  # wait before a new attempt when no replica is up; doubled each time
    pool_size: int = 64  # keep-alive connections per replica, about the number of env threads
    max_queries_per_request: int = 256  # larger batches are split (servers cap them)
    split_min_queries: int = 16  # split a batch over replicas only into parts at least this big
    down_cooldown_s: float = 2.0  # a failed replica rests this long before a health probe
    health_timeout_s: float = 2.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.max_queries_per_request <= 0 or self.split_min_queries <= 0 or self.pool_size <= 0:
            raise ValueError("need retries >= 0 and positive pool_size, max_queries_per_request, split_min_queries")


@dataclass
class _Replica:
    url: str
    path: str  # the URL's path prefix (a server behind a proxy path)
    pool: Any  # urllib3 connection pool, keep-alive
    in_flight: int = 0
    answered: int = 0  # requests it answered
    down_until: float | None = None  # None: up
    failures: int = 0  # consecutive, for the growing rest
    probing: bool = False
    last_problem: str = ""


class RemoteRetriever:
    """``search`` posts batches to ``{url}/retrieve`` on one or several replicas; thread-safe."""

    def __init__(self, urls: str | Sequence[str], config: RemoteConfig | None = None) -> None:
        self.config = config or RemoteConfig()
        urllib3 = import_urllib3()
        self.urls = parse_urls(urls)
        timeout = urllib3.Timeout(connect=self.config.connect_timeout_s, read=self.config.read_timeout_s)
        self._replicas = [
            _Replica(url, urlsplit(url).path, urllib3.connection_from_url(url, maxsize=self.config.pool_size, timeout=timeout, retries=False))
            for url in self.urls
        ]
        self._lock = threading.Lock()
        self._turn = itertools.count()  # breaks ties between equally busy replicas
        self._splitter: ThreadPoolExecutor | None = None

    @property
    def url(self) -> str:
        """The first replica's base URL (the only one for a single server)."""
        return self.urls[0]

    def __repr__(self) -> str:
        return f"RemoteRetriever({self.urls[0]!r})" if len(self.urls) == 1 else f"RemoteRetriever({self.urls!r})"

    def search(self, queries: list[str], k: int) -> list[list[Document]]:
        """Up to ``k`` documents per query; blank queries are answered locally with none."""
        check_search_arguments(queries, k)
        results: list[list[Document]] = [[] for _ in queries]
        live = [position for position, query in enumerate(queries) if query.strip()]
        parts = self._parts(live)
        if len(parts) == 1:
            answers = [self._send([queries[position] for position in parts[0]], k)]
        else:
            answers = list(self._splitter_pool().map(lambda part: self._send([queries[position] for position in part], k), parts))
        for part, rows in zip(parts, answers, strict=True):
            for position, row in zip(part, rows, strict=True):
                results[position] = row
        return results

    def health(self) -> dict[str, Any]:
        """``/health`` of the first replica that answers (raises ``RemoteRetrieverError`` when none does)."""
        problems = []
        for replica in self._replicas:
            try:
                return self._get_health(replica)
            except _ReplicaFailed as failure:
                problems.append(f"{replica.url}: {failure}")
        raise RemoteRetrieverError(f"no replica answered /health ({'; '.join(problems)})")

    def replicas(self) -> list[dict[str, Any]]:
        """Each replica's state: url, up, requests in flight and answered, last problem."""
        with self._lock:
            return [
                {
                    "url": replica.url,
                    "up": replica.down_until is None,
                    "in_flight": replica.in_flight,
                    "answered": replica.answered,
                    "last_problem": replica.last_problem,
                }
                for replica in self._replicas
            ]

    def close(self) -> None:
        if self._splitter is not None:
            self._splitter.shutdown(wait=True)
        for replica in self._replicas:
            replica.pool.close()

    def _parts(self, live: list[int]) -> list[list[int]]:
        """``live`` in request-sized parts: at most ``max_queries_per_request`` each and,
        with several replicas up, one part per replica when each gets enough queries."""
        with self._lock:
            up = sum(replica.down_until is None for replica in self._replicas)
        count = max(1, min(up, len(live) // self.config.split_min_queries))
        count = max(count, -(-len(live) // self.config.max_queries_per_request))
        size = -(-len(live) // count) if live else 1
        return [live[start : start + size] for start in range(0, len(live), size)] or [[]]

    def _splitter_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._splitter is None:
                self._splitter = ThreadPoolExecutor(max_workers=max(2, len(self._replicas)), thread_name_prefix="remote-retriever")
            return self._splitter

    def _send(self, queries: list[str], k: int) -> list[list[Document]]:
        """One request, resent to another replica when one fails; bounded attempts. When no
        replica is up, the backoff stands in for the cooldown: wait, then probe them all."""
        if not queries:
            return []
        problems: list[str] = []
        delay = self.config.backoff_s
        for _ in range(self.config.retries + 1):
            replica = self._choose(ignore_cooldown=False)
            if replica is None:
                time.sleep(delay)
                delay *= 2
                replica = self._choose(ignore_cooldown=True)
            if replica is None:
                problems.append("no replica answered a health probe")
                continue
            try:
                rows = self._retrieve(replica, queries, k)
                with self._lock:
                    replica.answered += 1
                return rows
            except _ReplicaFailed as failure:
                problems.append(f"{replica.url}: {failure}")
                self._mark_down(replica, str(failure))
            finally:
                with self._lock:
                    replica.in_flight -= 1
        where = self.urls[0] if len(self.urls) == 1 else f"{len(self.urls)} replicas"
        raise RemoteRetrieverError(f"{where}/retrieve failed after {self.config.retries + 1} attempts ({'; '.join(problems[-4:])})")

    def _choose(self, ignore_cooldown: bool) -> _Replica | None:
        """Down replicas whose rest is over (or all, with ``ignore_cooldown``) are probed
        first and re-admitted when they answer; then the least busy replica that is up
        (ties taken in turn), counted in flight; None when none is up."""
        now = time.monotonic()
        with self._lock:
            due = [
                replica
                for replica in self._replicas
                if replica.down_until is not None and not replica.probing and (ignore_cooldown or replica.down_until <= now)
            ]
            for replica in due:
                replica.probing = True
        for replica in due:
            alive = self._answers_probe(replica)
            with self._lock:
                replica.probing = False
                if alive:
                    replica.down_until, replica.failures = None, 0
        with self._lock:
            turn = next(self._turn) % len(self._replicas)
            up = [replica for replica in self._replicas[turn:] + self._replicas[:turn] if replica.down_until is None]
            if not up:
                return None
            chosen = min(up, key=lambda replica: replica.in_flight)
            chosen.in_flight += 1
            return chosen

    def _answers_probe(self, replica: _Replica) -> bool:
        """Whether the server answers HTTP at all: ``/health`` on ours; any status below
        500 counts, since Search-R1's server has no ``/health`` and answers 404."""
        try:
            self._request(replica, "GET", "/health", None, self.config.health_timeout_s)
        except _ReplicaFailed as failure:
            self._mark_down(replica, f"health probe: {failure}")
            return False
        return True

    def _mark_down(self, replica: _Replica, problem: str) -> None:
        """Rest the replica ``down_cooldown_s``, doubled per consecutive failure (up to 64x),
        so a dead one costs a probe now and then, not a request each time."""
        with self._lock:
            replica.failures += 1
            replica.down_until = time.monotonic() + self.config.down_cooldown_s * 2 ** min(replica.failures - 1, 6)
            replica.last_problem = problem

    def _retrieve(self, replica: _Replica, queries: list[str], k: int) -> list[list[Document]]:
        body = json.dumps({"queries": queries, "topk": k, "return_scores": True}).encode()
        status, payload = self._request(replica, "POST", "/retrieve", body, None)
        if status == 413 and len(queries) > 1:
            # The server caps queries per request at less than we sent: halve and resend.
            half = len(queries) // 2
            return self._retrieve(replica, queries[:half], k) + self._retrieve(replica, queries[half:], k)
        if status >= 400:
            raise RemoteRetrieverError(f"{replica.url}/retrieve refused the request: HTTP {status} {payload[:300]!r}", status=status)
        try:
            rows = json.loads(payload)["result"]
            if not isinstance(rows, list) or len(rows) != len(queries):
                raise ValueError(f"{len(rows) if isinstance(rows, list) else 'no'} rows for {len(queries)} queries")
            return [[_document(entry) for entry in row][:k] for row in rows]
        except (TypeError, ValueError, KeyError) as error:
            raise RemoteRetrieverError(f"{replica.url}/retrieve answered with a malformed result ({error})") from None

    def _get_health(self, replica: _Replica) -> dict[str, Any]:
        status, payload = self._request(replica, "GET", "/health", None, self.config.health_timeout_s)
        if status != 200:
            raise _ReplicaFailed(f"/health answered HTTP {status}")
        try:
            return json.loads(payload)
        except ValueError:
            raise _ReplicaFailed("/health answered something that is not JSON") from None

    def _request(self, replica: _Replica, method: str, path: str, body: bytes | None, timeout_s: float | None) -> tuple[int, bytes]:
        """``(status, body)``; connection errors, timeouts and 5xx raise ``_ReplicaFailed``."""
        urllib3 = import_urllib3()
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            response = replica.pool.urlopen(
                method, replica.path + path, body=body, headers=headers, timeout=timeout_s or replica.pool.timeout, retries=False
            )
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise _ReplicaFailed(f"{type(error).__name__}: {error}") from None
        if response.status in _RETRIED_STATUS:
            raise _ReplicaFailed(f"HTTP {response.status}")
        return response.status, response.data


def parse_urls(urls: str | Sequence[str]) -> list[str]:
    """Base URLs (``/retrieve`` and trailing slashes dropped) from a URL, a comma-separated
    string of URLs or a list; refuses anything that is not http(s)."""
    listed = urls.split(",") if isinstance(urls, str) else list(urls)
    cleaned = [url.strip().rstrip("/").removesuffix("/retrieve") for url in listed if url.strip()]
    bad = [url for url in cleaned if not is_url(url)]
    if not cleaned or bad:
        raise ValueError(f"a remote retriever needs http(s) URLs, got {urls!r}")
    return cleaned


def import_urllib3() -> ModuleType:
    """``urllib3``, or an ImportError that names the extra providing it."""
    try:
        import urllib3
    except ImportError as error:
        raise ImportError("RemoteRetriever needs urllib3: pip install 'deepresearch-gym[server]' (or the 'web' extra)") from error
    return urllib3


def is_url(value: str) -> bool:
    """Whether a retriever/corpus argument names a server rather than a local path."""
    return value.startswith(("http://", "https://"))


def _document(entry: dict[str, Any]) -> Document:
    """Search-R1 answers ``{"document": {...}, "score": s}`` or a bare document dict."""
    if "document" in entry:
        return Document.from_record(entry["document"], score=float(entry.get("score", 0.0)))
    return Document.from_record(entry)
