"""Web search providers behind one small protocol: Serper, SearxNG, Brave, Tavily.

Each provider only knows its request and response shape; timeouts, retries,
rate limiting and key redaction are shared in ``HttpSearchProvider``. Keys come
from environment variables only, so they never sit in configs, checkpoints or
transcripts.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from deepresearch.envs.documents import Document
from deepresearch.envs.web.jsonhttp import HttpStatusError, request_json
from deepresearch.envs.web.ratelimit import TokenBucket, shared_bucket
from deepresearch.envs.web.retry import RetriesExhausted, RetryPolicy
from deepresearch.envs.web.safety import redact

logger = logging.getLogger(__name__)


class ProviderError(Exception):
    """A search request failed; the message (``search failed: <provider> <reason>``) is safe to show the model."""


def failure_reason(error: Exception) -> str:
    """Why a provider call failed, in words the model can read: no URLs, keys or library internals."""
    import requests

    suffix = ""
    if isinstance(error, RetriesExhausted):
        suffix = f" after {error.attempts} attempts" if error.attempts > 1 else ""
        error = error.last
    if isinstance(error, HttpStatusError) and error.status in (401, 403):
        return f"rejected the API key (HTTP {error.status})"
    if isinstance(error, HttpStatusError):
        return f"answered HTTP {error.status}{suffix}"
    if isinstance(error, requests.Timeout):
        return f"timed out{suffix}"
    if isinstance(error, ValueError):  # requests' JSONDecodeError is one
        return "returned malformed JSON"
    if isinstance(error, requests.ConnectionError):
        return f"could not be reached{suffix}"
    return f"failed ({type(error).__name__})"


@runtime_checkable
class SearchProvider(Protocol):
    name: str

    def search_one(self, query: str, k: int) -> list[Document]:
        """Top-``k`` results for one query; raises ``ProviderError`` on failure."""
        ...


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, Any] | None = None
    json: dict[str, Any] | None = None


def web_document(url: str, title: str, snippet: str, rank: int) -> Document:
    """A search hit as a ``Document``: the URL is the id so the model can browse it."""
    title = " ".join(str(title or "").split())
    snippet = " ".join(str(snippet or "").split())
    return Document(id=url, title=title, text=snippet, contents=f'"{title}"\n{snippet}', score=-float(rank))


@dataclass
class HttpSearchProvider:
    """Shared HTTP machinery; subclasses define ``name``, ``build_request`` and ``parse``."""

    base_url: str
    api_key: str = field(default="", repr=False)
    timeout_s: tuple[float, float] = (5.0, 15.0)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limiter: TokenBucket | None = None
    max_k: int = 20
    name = "http"

    def build_request(self, query: str, k: int) -> HttpRequest:
        raise NotImplementedError

    def parse(self, payload: Any) -> list[tuple[str, str, str]]:
        """``(url, title, snippet)`` triples from the provider's JSON."""
        raise NotImplementedError

    def search_one(self, query: str, k: int) -> list[Document]:
        k = max(1, min(int(k), self.max_k))
        request = self.build_request(query, k)
        try:
            if self.limiter is not None and not self.limiter.acquire(timeout_s=sum(self.timeout_s)):
                raise ProviderError(f"search failed: {self.name} was not called (local rate limit saturated)")
            payload = request_json(
                request.method,
                request.url,
                headers=request.headers,
                timeout_s=self.timeout_s,
                retry=self.retry,
                params=request.params,
                body=request.json,
            )
            if not isinstance(payload, dict):
                raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
            hits = self.parse(payload)
        except ProviderError:
            raise
        except Exception as error:  # noqa: BLE001 - every failure becomes a redacted ProviderError
            secrets = (self.api_key,)
            logger.warning(redact(f"{self.name} search failed: {type(error).__name__}: {error}", secrets))
            raise ProviderError(redact(f"search failed: {self.name} {failure_reason(error)}", secrets)) from None
        seen: set[str] = set()
        documents = []
        for url, title, snippet in hits:
            if url and url not in seen:
                seen.add(url)
                documents.append(web_document(url, title, snippet, len(documents)))
        return documents[:k]


def _items(payload: Any, *path: str) -> list[dict[str, Any]]:
    """``payload[path...]`` as a list of dicts; anything malformed is an empty list."""
    for key in path:
        payload = payload.get(key) if isinstance(payload, dict) else None
    return [item for item in payload if isinstance(item, dict)] if isinstance(payload, list) else []


class SerperProvider(HttpSearchProvider):
    """Google results through serper.dev: ``POST /search {"q","num"}`` -> ``organic[{title,link,snippet}]``."""

    name = "serper"

    def build_request(self, query: str, k: int) -> HttpRequest:
        headers = {"X-API-KEY": self.api_key, "Content-Type": "application/json"}
        return HttpRequest("POST", f"{self.base_url}/search", headers, json={"q": query, "num": k})

    def parse(self, payload: Any) -> list[tuple[str, str, str]]:
        return [(i.get("link", ""), i.get("title", ""), i.get("snippet", "")) for i in _items(payload, "organic")]


class SearxngProvider(HttpSearchProvider):
    """A self-hosted SearxNG: ``GET /search?q=&format=json`` -> ``results[{title,url,content}]``."""

    name = "searxng"

    def build_request(self, query: str, k: int) -> HttpRequest:
        return HttpRequest("GET", f"{self.base_url}/search", {}, params={"q": query, "format": "json"})

    def parse(self, payload: Any) -> list[tuple[str, str, str]]:
        return [(i.get("url", ""), i.get("title", ""), i.get("content", "")) for i in _items(payload, "results")]


class BraveProvider(HttpSearchProvider):
    """Brave Search API: ``GET /res/v1/web/search?q=&count=`` -> ``web.results[{title,url,description}]``."""

    name = "brave"

    def build_request(self, query: str, k: int) -> HttpRequest:
        headers = {"X-Subscription-Token": self.api_key, "Accept": "application/json"}
        return HttpRequest("GET", f"{self.base_url}/res/v1/web/search", headers, params={"q": query, "count": k})

    def parse(self, payload: Any) -> list[tuple[str, str, str]]:
        items = _items(payload, "web", "results")
        return [(i.get("url", ""), i.get("title", ""), i.get("description", "")) for i in items]


class TavilyProvider(HttpSearchProvider):
    """Tavily: ``POST /search {"query","max_results"}`` with a Bearer key -> ``results[{title,url,content}]``."""

    name = "tavily"

    def build_request(self, query: str, k: int) -> HttpRequest:
        headers = {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"}
        return HttpRequest("POST", f"{self.base_url}/search", headers, json={"query": query, "max_results": k})

    def parse(self, payload: Any) -> list[tuple[str, str, str]]:
        return [(i.get("url", ""), i.get("title", ""), i.get("content", "")) for i in _items(payload, "results")]


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
    name = (name or os.environ.get(PROVIDER_ENV) or "").strip().lower()
    if not name:
        raise ValueError(f"no search provider chosen: pass provider=... or set {PROVIDER_ENV} ({', '.join(PROVIDERS)})")
    spec = PROVIDERS.get(name)
    if spec is None:
        raise ValueError(f"unknown search provider {name!r}; choose one of {', '.join(PROVIDERS)}")
    api_key = ""
    if spec.key_env is not None:
        api_key = os.environ.get(spec.key_env, "")
        if not api_key:
            raise ValueError(f"search provider {name!r} needs an API key in the environment variable {spec.key_env}")
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
