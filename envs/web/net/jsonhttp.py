"""One JSON-over-HTTP call with timeouts and retry classification, shared by providers and the LLM reader."""

from __future__ import annotations

from typing import Any

from deepresearch.envs.deadline import Deadline
from deepresearch.envs.web.net.ratelimit import TokenBucket
from deepresearch.envs.web.net.retry import RETRYABLE_STATUS, RetryPolicy, call_with_retries, parse_retry_after
from deepresearch.envs.web.net.sessions import Watchdog, watched_session


class HttpStatusError(Exception):
    """A non-200 answer; ``retry_after`` is the server's ``Retry-After`` in seconds, if any."""

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class RateLimitedUntilDeadline(Exception):
    """The local rate limiter had no token for this attempt before the deadline: nothing was sent."""

    def __init__(self, attempt: int) -> None:
        super().__init__(f"no rate-limit token before the deadline (attempt {attempt})")
        self.attempt = attempt


def is_transient(error: Exception) -> tuple[bool, float | None]:
    """429/5xx and connection problems are worth retrying; everything else is final."""
    import requests

    if isinstance(error, HttpStatusError):
        return error.status in RETRYABLE_STATUS, error.retry_after
    return isinstance(error, (requests.ConnectionError, requests.Timeout)), None


def request_json(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    timeout_s: tuple[float, float],
    retry: RetryPolicy,
    params: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
    deadline: Deadline | None = None,
    limiter: TokenBucket | None = None,
) -> Any:
    """The decoded JSON of a 200 answer, retried per ``retry``; raises the last error otherwise.

    Every attempt, the first and each retry, takes a token from ``limiter``, so
    retries are paced like first tries. Each attempt ends by ``sum(timeout_s)``
    seconds even if the server keeps trickling bytes, and the whole call, backoff
    included, ends by ``deadline`` (default: a fresh 30 s one).
    """
    import requests

    deadline = deadline or Deadline()
    attempts = 0

    def attempt() -> Any:
        nonlocal attempts
        attempts += 1
        if limiter is not None and not limiter.acquire(timeout_s=deadline.remaining()):
            raise RateLimitedUntilDeadline(attempts)
        left = deadline.remaining()
        if left <= 0:
            raise requests.Timeout("the deadline passed before the request was sent")
        timeout = (min(timeout_s[0], left), min(timeout_s[1], left))
        with Watchdog(min(sum(timeout_s), left)) as watchdog, watched_session(watchdog) as session:
            try:
                response = session.request(
                    method, url, headers=headers, params=params, json=body, timeout=timeout, allow_redirects=False
                )
            except requests.RequestException:
                if watchdog.expired:
                    raise requests.Timeout("no complete answer in time") from None
                raise
            with response:
                if response.status_code != 200:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    raise HttpStatusError(response.status_code, retry_after)
                return response.json()

    return call_with_retries(attempt, retry, is_transient, deadline=deadline)
