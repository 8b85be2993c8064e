"""A ``Retriever`` over HTTP: any server speaking Search-R1's ``POST /retrieve``
(``deepresearch serve-retriever``, or Search-R1's own ``retrieval_server.py``).

Pooled keep-alive connections (many env threads share one client), a connect and a
read timeout on every request, bounded retries with exponential backoff on connection
errors and 5xx; a 4xx is the caller's mistake and is reported at once. A failure raises
``RemoteRetrieverError``, which the env turns into text for the model, not a crash.

``requests`` is imported when a client is made, not with this module: the core install
(BM25 only) imports the env, and the env imports this module, without the extras.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from deepresearch.envs.documents import Document
from deepresearch.envs.retrieval.base import check_search_arguments

_RETRIED_STATUS = {500, 502, 503, 504}


class RemoteRetrieverError(RuntimeError):
    """The server could not be reached, kept failing, or refused the request (``status``)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RemoteConfig:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0  # a large batch on a loaded server takes a while
    retries: int = 3  # attempts after the first
    backoff_s: float = 0.2  # doubled after every failed attempt
    pool_size: int = 64  # keep-alive connections, about the number of env threads
    max_queries_per_request: int = 256  # larger batches are split (servers cap them)


class RemoteRetriever:
    """``search`` posts the batch to ``{url}/retrieve``; thread-safe."""

    def __init__(self, url: str, config: RemoteConfig | None = None) -> None:
        if not is_url(url):
            raise ValueError(f"a remote retriever needs an http(s) URL, got {url!r}")
        self.url = url.rstrip("/").removesuffix("/retrieve")
        self.config = config or RemoteConfig()
        requests = import_requests()
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=self.config.pool_size, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"RemoteRetriever({self.url!r})"

    def search(self, queries: list[str], k: int) -> list[list[Document]]:
        """Up to ``k`` documents per query; blank queries are answered locally with none."""
        check_search_arguments(queries, k)
        results: list[list[Document]] = [[] for _ in queries]
        live = [position for position, query in enumerate(queries) if query.strip()]
        step = self.config.max_queries_per_request
        for start in range(0, len(live), step):
            positions = live[start : start + step]
            rows = self._retrieve([queries[position] for position in positions], k)
            for position, row in zip(positions, rows, strict=True):
                results[position] = row
        return results

    def health(self) -> dict[str, Any]:
        """The server's ``/health`` answer (raises ``RemoteRetrieverError`` when down)."""
        return self._request("GET", "/health", None)

    def close(self) -> None:
        self._session.close()

    def _retrieve(self, queries: list[str], k: int) -> list[list[Document]]:
        try:
            payload = self._request("POST", "/retrieve", {"queries": queries, "topk": k, "return_scores": True})
        except RemoteRetrieverError as error:
            if error.status != 413 or len(queries) == 1:
                raise
            # The server caps queries per request at less than we sent: halve and resend.
            half = len(queries) // 2
            return self._retrieve(queries[:half], k) + self._retrieve(queries[half:], k)
        rows = payload.get("result") if isinstance(payload, dict) else None
        if not isinstance(rows, list) or len(rows) != len(queries):
            raise RemoteRetrieverError(f"{self.url}/retrieve answered {len(queries)} queries with a malformed result")
        try:
            return [[_document(entry) for entry in row][:k] for row in rows]
        except (TypeError, ValueError, KeyError) as error:
            raise RemoteRetrieverError(f"{self.url}/retrieve returned an unreadable document ({error})") from None

    def _request(self, method: str, path: str, payload: dict[str, Any] | None) -> Any:
        delay = self.config.backoff_s
        timeout = (self.config.connect_timeout_s, self.config.read_timeout_s)
        problem = ""
        requests = import_requests()
        for attempt in range(self.config.retries + 1):
            if attempt:
                time.sleep(delay)
                delay *= 2
            try:
                response = self._session.request(method, self.url + path, json=payload, timeout=timeout)
            except (requests.ConnectionError, requests.Timeout) as error:
                problem = f"{type(error).__name__}: {error}"
                continue
            if response.status_code in _RETRIED_STATUS:
                problem = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                raise RemoteRetrieverError(
                    f"{self.url}{path} refused the request: HTTP {response.status_code} {response.text[:300]}",
                    status=response.status_code,
                )
            try:
                return response.json()
            except ValueError:
                raise RemoteRetrieverError(f"{self.url}{path} answered with something that is not JSON") from None
        raise RemoteRetrieverError(f"{self.url}{path} failed after {self.config.retries + 1} attempts ({problem})")


def import_requests() -> ModuleType:
    """``requests``, or an ImportError that names the extra providing it."""
    try:
        import requests
        import requests.adapters
    except ImportError as error:
        raise ImportError(
            "RemoteRetriever needs requests: pip install 'deepresearch-gym[server]' (or the 'web' extra)"
        ) from error
    return requests


def is_url(value: str) -> bool:
    """Whether a retriever/corpus argument names a server rather than a local path."""
    return value.startswith(("http://", "https://"))


def _document(entry: dict[str, Any]) -> Document:
    """Search-R1 answers ``{"document": {...}, "score": s}`` or a bare document dict."""
    if "document" in entry:
        return Document.from_record(entry["document"], score=float(entry.get("score", 0.0)))
    return Document.from_record(entry)
