"""Fetching a model-chosen URL without letting it hang, flood or redirect us anywhere.

Every hop is checked by the ``UrlPolicy`` and the TCP connection goes to the
address that was checked (see ``sessions.watched_session``). Redirects are
followed by hand so each hop is checked. Reading is streamed with a byte cap,
and a watchdog shuts the socket at the deadline the caller passes (the env
step's), so redirects and slow reads all come out of one budget.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urljoin

from deepresearch.envs.deadline import Deadline
from deepresearch.envs.web.net.sessions import Watchdog, watched_session
from deepresearch.envs.web.pages.safety import UnsafeUrlError, UrlPolicy, redact, shown_url

TEXT_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain"})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})


class FetchError(Exception):
    """Why a page could not be fetched: ``could not fetch <url>: <reason>``; ``reason`` alone omits the URL,
    for callers that show the URL already (one long URL must not be repeated into an observation)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"could not fetch {shown_url(url)}: {reason}")
        self.url = url
        self.reason = reason


def refusal(error: UnsafeUrlError, url: str) -> FetchError:
    """A policy refusal as a ``FetchError`` for ``url``; a refused redirect hop is named, the page itself is not."""
    if error.url == url:
        return FetchError(url, f"refused: {error.reason}")
    return FetchError(url, f"redirected to {shown_url(error.url)!r}, which is refused: {error.reason}")


@dataclass(frozen=True)
class FetchConfig:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    max_bytes: int = 2_000_000
    max_redirects: int = 5
    user_agent: str = "deepresearch-gym/0.1 (research agent)"
    ca_bundle: str | None = None  # PEM file of trusted CAs; default: requests' (certifi) bundle

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "read_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_bytes < 1024:
            raise ValueError(f"max_bytes must be >= 1024, got {self.max_bytes}")
        if self.max_redirects < 0:
            raise ValueError(f"max_redirects must be >= 0, got {self.max_redirects}")


@dataclass(frozen=True)
class FetchedPage:
    url: str
    final_url: str
    media_type: str
    charset: str | None
    body: bytes
    truncated: bool
    redirects: tuple[str, ...] = ()  # every URL redirected to, in order; the last one is ``final_url``


def parse_content_type(header: str | None) -> tuple[str, str | None]:
    """``"text/html; charset=ISO-8859-1"`` -> ``("text/html", "iso-8859-1")``."""
    if not header:
        return "", None
    media_type, *params = header.split(";")
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'").lower() or None
    return media_type.strip().lower(), charset


def _refuse_media_type(media_type: str) -> str | None:
    """The reason a content type is refused, or ``None`` when it is readable text (or unknown)."""
    if not media_type or media_type in TEXT_TYPES:
        return None
    if media_type == "application/pdf":
        return "PDF documents are not supported, only HTML and plain-text pages"
    return f"unsupported content type {media_type} (only HTML and plain-text pages can be read)"


class PageFetcher:
    """``fetch(url, deadline)`` -> ``FetchedPage`` or ``FetchError``; bounded in time, bytes and hops."""

    def __init__(self, policy: UrlPolicy | None = None, config: FetchConfig | None = None) -> None:
        self.policy = policy or UrlPolicy()
        self.config = config or FetchConfig()

    def check(self, url: str, origin: str | None = None) -> None:
        """The policy's verdict on ``url`` (a hop on the way to ``origin``) without connecting.

        Lets a caller vet a URL, and the redirects recorded with a cached page,
        before serving anything from a cache another policy may have filled.
        """
        try:
            self.policy.check(url)
        except UnsafeUrlError as error:
            raise refusal(error, origin or url) from None

    def fetch(self, url: str, deadline: Deadline | None = None) -> FetchedPage:
        """The page at ``url``, read by ``deadline`` (default: a fresh 30 s one) or not at all."""
        import requests

        deadline = deadline or Deadline()
        current = url
        visited: list[str] = []
        with Watchdog(deadline.remaining()) as watchdog:
            try:
                for _ in range(self.config.max_redirects + 1):
                    visited.append(current)
                    page_or_next = self._hop(url, current, watchdog, deadline)
                    if isinstance(page_or_next, FetchedPage):
                        return replace(page_or_next, redirects=tuple(visited[1:]))
                    if page_or_next in visited:
                        raise FetchError(url, "redirect loop")
                    current = page_or_next
                raise FetchError(url, f"more than {self.config.max_redirects} redirects")
            except UnsafeUrlError as error:
                raise refusal(error, url) from None
            except (requests.RequestException, OSError) as error:
                if watchdog.expired:
                    raise FetchError(url, "timed out") from None
                raise FetchError(url, _describe(error)) from None

    def _hop(self, url: str, current: str, watchdog: Watchdog, deadline: Deadline) -> FetchedPage | str:
        """Fetch one hop: the page, or the absolute URL it redirects to."""
        target = self.policy.check(current)
        remaining = deadline.remaining()
        if remaining <= 0:
            raise FetchError(url, "timed out")
        timeout = (min(self.config.connect_timeout_s, remaining), min(self.config.read_timeout_s, remaining))
        headers = {"User-Agent": self.config.user_agent, "Accept": "text/html,application/xhtml+xml,text/plain"}
        with watched_session(watchdog, target.address, self.config.ca_bundle) as session:
            response = session.get(current, headers=headers, stream=True, allow_redirects=False, timeout=timeout)
            with response:
                if response.status_code in REDIRECT_STATUS:
                    location = response.headers.get("Location")
                    if not location:
                        raise FetchError(url, "redirect without a Location")
                    return urljoin(current, location)
                if response.status_code != 200:
                    raise FetchError(url, f"HTTP {response.status_code}")
                media_type, charset = parse_content_type(response.headers.get("Content-Type"))
                refused = _refuse_media_type(media_type)
                if refused:
                    raise FetchError(url, refused)
                body, truncated = self._read_capped(response, watchdog)
        if watchdog.expired:
            raise FetchError(url, "timed out")
        return FetchedPage(url, current, media_type, charset, body, truncated)

    def _read_capped(self, response, watchdog: Watchdog) -> tuple[bytes, bool]:
        """At most ``max_bytes`` (decoded) bytes; the rest is never read."""
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(chunk_size=65536):
            if watchdog.expired:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size >= self.config.max_bytes:
                return b"".join(chunks)[: self.config.max_bytes], True
        return b"".join(chunks), False


def _describe(error: BaseException) -> str:
    """A short, secret-free reason for a network error."""
    import requests

    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(error, requests.ConnectionError):
        return "connection failed"
    return redact(type(error).__name__)
