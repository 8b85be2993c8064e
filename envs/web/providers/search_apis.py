"""Web search providers behind one small protocol: Serper, SearxNG, Brave, Tavily.

Each provider only knows its request and response shape; timeouts, retries
(each paced by the rate limiter), the step's deadline, result checking and key
redaction are shared in ``HttpSearchProvider``. Keys come from environment
variables only, checked once, so they never sit in configs, checkpoints or
transcripts. A failure is logged once per cause a minute, not once per query.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from deepresearch.envs.deadline import Deadline
from deepresearch.envs.documents import Document
from deepresearch.envs.web.net.jsonhttp import HttpStatusError, RateLimitedUntilDeadline, request_json
from deepresearch.envs.web.net.keys import clean_api_key, read_api_key
from deepresearch.envs.web.net.logs import RateLimitedLog
from deepresearch.envs.web.net.ratelimit import TokenBucket, shared_bucket
from deepresearch.envs.web.net.retry import RetriesExhausted, RetryPolicy
from deepresearch.envs.web.pages.safety import redact
from deepresearch.envs.web.providers.results import InvalidResponse, check_hits, query_problem

logger = logging.getLogger(__name__)


class ProviderError(Exception):
    """A search request failed; the message (``search failed: <provider> <reason>``) is safe to show the model."""


def failure_reason(error: Exception) -> tuple[str, str]:
    """``(reason, cause)``: why a provider call failed in words the model can read (no URLs, keys or
    library internals), and a short stable word that groups log messages. Each kind of failure is
    named for what it is: a refused header or an unencodable query is not "malformed JSON"."""
    import requests

    suffix = ""
    if isinstance(error, RetriesExhausted):
        suffix = f" after {error.attempts} attempts" if error.attempts > 1 else ""
        error = error.last
    if isinstance(error, RateLimitedUntilDeadline):
        return "was not called: the local rate limit had no free slot before the step's deadline", "rate_limited"
    if isinstance(error, HttpStatusError) and error.status in (401, 403):
        return f"rejected the API key (HTTP {error.status})", "bad_key"
    if isinstance(error, HttpStatusError):
        return f"answered HTTP {error.status}{suffix}", f"http_{error.status}"
    if isinstance(error, requests.Timeout):
        return f"timed out{suffix}", "timeout"
    if isinstance(error, requests.exceptions.InvalidHeader):
        return "was not called: a request header was refused (check the API key)", "bad_header"
    if isinstance(error, requests.exceptions.JSONDecodeError):
        return "returned malformed JSON", "malformed_json"
    if isinstance(error, InvalidResponse):
        return str(error), "invalid_response"
    if isinstance(error, requests.ConnectionError):
        return f"could not be reached{suffix}", "unreachable"
    if isinstance(error, UnicodeError):
        return "was not called: the query could not be encoded", "invalid_query"
    return f"failed ({type(error).__name__})", "error"


@runtime_checkable
class SearchProvider(Protocol):
    """``name`` prices and keys the provider's results; ``max_k``: the most results one query can get."""

    name: str
    max_k: int

    def search_one(self, query: str, k: int, deadline: Deadline | None = None) -> list[Document]:
        """Top-``k`` results for one query within ``deadline``; raises ``ProviderError`` on failure."""
        ...


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, Any] | None = None
    json: dict[str, Any] | None = None


@dataclass
class HttpSearchProvider:
    """Shared HTTP machinery; subclasses define ``name``, ``list_name``, ``build_request`` and ``parse``."""

    base_url: str
    api_key: str = field(default="", repr=False)
    timeout_s: tuple[float, float] = (5.0, 15.0)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limiter: TokenBucket | None = None
    max_k: int = 20
    log: RateLimitedLog = field(default_factory=lambda: RateLimitedLog(logger), init=False, repr=False, compare=False)
    name = "http"
    list_name = "results"  # the response's result list, for error messages

    def __post_init__(self) -> None:
        self.api_key = clean_api_key(self.api_key, f"the {self.name} provider's settings")

    def build_request(self, query: str, k: int) -> HttpRequest:
        raise NotImplementedError

    def parse(self, payload: dict[str, Any]) -> list[Any] | None:
        """The hits as ``{"url", "title", "snippet"}`` dicts (others are dropped later); ``None`` if the list is missing."""
        raise NotImplementedError

    def search_one(self, query: str, k: int, deadline: Deadline | None = None) -> list[Document]:
        k = max(1, min(int(k), self.max_k))
        problem = query_problem(query)
        if problem:
            raise ProviderError(f"search failed: {problem}")
        request = self.build_request(query, k)
        try:
            payload = request_json(
                request.method,
                request.url,
                headers=request.headers,
                timeout_s=self.timeout_s,
                retry=self.retry,
                params=request.params,
                body=request.json,
                deadline=deadline,
                limiter=self.limiter,
            )
            if not isinstance(payload, dict):
                raise InvalidResponse(f"returned an unexpected response (a JSON {type(payload).__name__}, not an object)")
            hits = check_hits(self.parse(payload), k, self.list_name)
        except Exception as error:  # noqa: BLE001 - every failure becomes a redacted ProviderError
            reason, cause = failure_reason(error)
            secrets = (self.api_key,)
            self.log.warning(cause, redact(f"{self.name} search failed: {reason}", secrets))
            raise ProviderError(redact(f"search failed: {self.name} {reason}", secrets)) from None
        if hits.dropped:
            self.log.warning("dropped", f"{self.name} returned {hits.dropped} hit(s) without a usable URL (dropped)")
        return hits.documents


def _items(payload: Any, *path: str) -> list[Any] | None:
    """``payload[path...]`` if it is a list, else ``None`` (the provider's answer has no result list)."""
    for key in path:
        payload = payload.get(key) if isinstance(payload, dict) else None
    return payload if isinstance(payload, list) else None


def _hits(items: list[Any] | None, url: str, title: str, snippet: str) -> list[Any] | None:
    """The provider's field names mapped to ``url``/``title``/``snippet``; non-dict items kept to be dropped."""
    if items is None:
        return None
    return [
        {"url": i.get(url), "title": i.get(title), "snippet": i.get(snippet)} if isinstance(i, dict) else i for i in items
    ]


class SerperProvider(HttpSearchProvider):
    """Google results through serper.dev: ``POST /search {"q","num"}`` -> ``organic[{title,link,snippet}]``."""

    name = "serper"
    list_name = "organic"

    def build_request(self, query: str, k: int) -> HttpRequest:
        headers = {"X-API-KEY": self.api_key, "Content-Type": "application/json"}
        return HttpRequest("POST", f"{self.base_url}/search", headers, json={"q": query, "num": k})

    def parse(self, payload: dict[str, Any]) -> list[Any] | None:
        return _hits(_items(payload, "organic"), "link", "title", "snippet")


class SearxngProvider(HttpSearchProvider):
    """A self-hosted SearxNG: ``GET /search?q=&format=json`` -> ``results[{title,url,content}]``."""

    name = "searxng"

    def build_request(self, query: str, k: int) -> HttpRequest:
        return HttpRequest("GET", f"{self.base_url}/search", {}, params={"q": query, "format": "json"})

    def parse(self, payload: dict[str, Any]) -> list[Any] | None:
        return _hits(_items(payload, "results"), "url", "title", "content")


class BraveProvider(HttpSearchProvider):
    """Brave Search API: ``GET /res/v1/web/search?q=&count=`` -> ``web.results[{title,url,description}]``."""

    name = "brave"
    list_name = "web.results"

    def build_request(self, query: str, k: int) -> HttpRequest:
        headers = {"X-Subscription-Token": self.api_key, "Accept": "application/json"}
        return HttpRequest("GET", f"{self.base_url}/res/v1/web/search", headers, params={"q": query, "count": k})

    def parse(self, payload: dict[str, Any]) -> list[Any] | None:
        return _hits(_items(payload, "web", "results"), "url", "title", "description")


class TavilyProvider(HttpSearchProvider):
    """Tavily: ``POST /search {"query","max_results"}`` with a Bearer key -> ``results[{title,url,content}]``."""

    name = "tavily"

    def build_request(self, query: str, k: int) -> HttpRequest:
        headers = {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"}
        return HttpRequest("POST", f"{self.base_url}/search", headers, json={"query": query, "max_results": k})

    def parse(self, payload: dict[str, Any]) -> list[Any] | None:
        return _hits(_items(payload, "results"), "url", "title", "content")


@dataclass(frozen=True)
class _ProviderSpec:
    cls: type[HttpSearchProvider]
    default_base_url: str | None
    key_env: str | None
    base_url_env: str | None = None


PROVIDERS: dict[str, _ProviderSpec] = {
    "serper": _ProviderSpec(SerperProvider, "https://google.serper.dev", "SERPER_API_KEY"),
    "searxng": _ProviderSpec(SearxngProvider, None, None, "SEARXNG_URL"),
    "brave": _ProviderSpec(BraveProvider, "https://api.search.brave.com", "BRAVE_API_KEY"),
    "tavily": _ProviderSpec(TavilyProvider, "https://api.tavily.com", "TAVILY_API_KEY"),
}
PROVIDER_ENV = "DEEPRESEARCH_SEARCH_PROVIDER"


def provider_name(name: str | None = None) -> str:
    """The provider chosen by ``name`` or ``$DEEPRESEARCH_SEARCH_PROVIDER``, checked against ``PROVIDERS``."""
    name = (name or os.environ.get(PROVIDER_ENV) or "").strip().lower()
    if not name:
        raise ValueError(f"no search provider chosen: pass provider=... or set {PROVIDER_ENV} ({', '.join(PROVIDERS)})")
    if name not in PROVIDERS:
        raise ValueError(f"unknown search provider {name!r}; choose one of {', '.join(PROVIDERS)}")
    return name


def make_provider(
    name: str | None = None,
    base_url: str | None = None,
    timeout_s: tuple[float, float] = (5.0, 15.0),
    retry: RetryPolicy | None = None,
    rate_per_s: float | None = None,
    burst: int = 1,
) -> HttpSearchProvider:
    """Build a provider by name (or ``$DEEPRESEARCH_SEARCH_PROVIDER``) with its key from the environment.

    Providers of the same name and rate in one process share one token bucket.
    """
    name = provider_name(name)
    spec = PROVIDERS[name]
    api_key = ""
    if spec.key_env is not None:
        try:
            api_key = read_api_key(spec.key_env)
        except ValueError as error:
            raise ValueError(f"search provider {name!r}: {error}") from None
    base_url = base_url or (os.environ.get(spec.base_url_env, "") if spec.base_url_env else "") or spec.default_base_url
    if not base_url:
        raise ValueError(f"search provider {name!r} needs a base URL: pass base_url=... or set {spec.base_url_env}")
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"search provider base URL must start with http:// or https://, got {base_url!r}")
    limiter = shared_bucket(name, rate_per_s, burst) if rate_per_s else None
    return spec.cls(
        base_url=base_url.rstrip("/"),
        api_key=api_key,
        timeout_s=timeout_s,
        retry=retry or RetryPolicy(),
        limiter=limiter,
    )
