"""Who is calling the backend: one env's seen URLs, budget and counters (``WebClient``), and the
``ToolBackend`` an env holds over a backend that several envs may share (``WebEpisode``)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from deepresearch.envs.documents import Document
from deepresearch.envs.tools import PageResult, ToolBackend
from deepresearch.envs.web.accounting.budget import Ledger
from deepresearch.envs.web.accounting.metrics import WebStats
from deepresearch.envs.web.config import WebConfig

if TYPE_CHECKING:
    from deepresearch.envs.web.backend.web_backend import WebBackend


class SeenUrls:
    """The URLs one episode's searches returned, for ``browse_only_seen_urls``; safe across threads."""

    def __init__(self) -> None:
        self._urls: set[str] = set()
        self._lock = threading.Lock()

    def add(self, results: list[list[Document]]) -> None:
        with self._lock:
            self._urls.update(doc.id for docs in results for doc in docs if doc.id)

    def __contains__(self, url: object) -> bool:
        with self._lock:
            return url in self._urls

    def clear(self) -> None:
        with self._lock:
            self._urls.clear()


class WebClient:
    """One env as the backend sees it: its seen URLs, its budget, its counters, its turn at the workers."""

    def __init__(self, config: WebConfig) -> None:
        self.seen = SeenUrls()
        self.ledger = Ledger(config.env_limits(), "this env")
        self.env_stats = WebStats()  # the env's lifetime
        self.episode_stats = WebStats()  # since the last reset

    def new_episode(self) -> None:
        self.seen.clear()
        self.episode_stats.reset()


class WebEpisode(ToolBackend):
    """One env's ``ToolBackend`` over a ``WebBackend`` that several envs may share.

    Seen URLs, the env's budget and its counters live here, not in the shared
    backend, so one env's ``reset()`` or searches never change another's.
    ``stats`` counts this episode, ``env_stats`` the env's lifetime, and
    ``backend.stats`` the whole run.
    """

    supports_browse = True

    def __init__(self, backend: WebBackend, owns_backend: bool = False) -> None:
        self.backend = backend
        self.owns_backend = owns_backend
        self.client = WebClient(backend.config)

    @property
    def stats(self) -> WebStats:
        return self.client.episode_stats

    @property
    def env_stats(self) -> WebStats:
        return self.client.env_stats

    def reset(self) -> None:
        """A new episode: forget the URLs this env's searches returned and start the episode's counters."""
        self.client.new_episode()

    def search(self, queries: list[str], k: int) -> list[list[Document]]:
        return self.backend.search(queries, k, self.client)

    def browse(self, urls: list[str], question: str, query: str | None) -> list[PageResult]:
        return self.backend.browse(urls, question, query, self.client)

    def close(self) -> None:
        """Close the backend only if this env built it: closing one env must not break the others."""
        if self.owns_backend:
            self.backend.close()
