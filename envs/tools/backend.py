"""What an env can do for the model: search, and (on the web) browse pages.

The env core talks to one ``ToolBackend``; the Wiki env wraps a local retriever,
the Web env wraps a search provider and a page browser. Failures are returned as
values (``PageResult.error``), never raised, because a fetch that times out is an
observation for the model, not a reason to stop training.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from deepresearch.envs.documents import Document
from deepresearch.envs.retrieval.base import Retriever


@dataclass(frozen=True, slots=True)
class PageResult:
    """The part of a page worth showing the model, or why it could not be read."""

    url: str
    text: str = ""
    error: str | None = None


class ToolBackend(ABC):
    """What the env core calls. ``reset`` (a new episode) and ``close`` are no-ops unless
    a backend keeps per-episode state (the web backend's seen URLs) or owns resources."""

    supports_browse: ClassVar[bool] = False

    @abstractmethod
    def search(self, queries: list[str], k: int) -> list[list[Document]]:
        """Top-``k`` results per query; never raises for a bad query."""

    def browse(self, urls: list[str], question: str, query: str | None) -> list[PageResult]:
        """One result per URL, in order, with ``error`` set when it could not be read."""
        return [PageResult(url=url, error="browsing is not available in this environment") for url in urls]

    def reset(self) -> None:
        """Forget per-episode state at the start of an episode."""

    def close(self) -> None:
        """Release what the backend owns."""


class RetrieverBackend(ToolBackend):
    """A local retriever as a backend: search only, browsing is not available."""

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever

    def search(self, queries: list[str], k: int) -> list[list[Document]]:
        return self.retriever.search(queries, k)
