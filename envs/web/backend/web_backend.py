"""``WebBackend``: the live web as a ``ToolBackend`` (search with a provider, browse pages).

Every search and browse call has one deadline, made when the env step calls
in; the step waits for its work until then and not a moment longer, so a
hanging provider or a page dripping a byte a second costs at most the
deadline. Work runs on threads shared fairly by every env of the backend
(``FairScheduler``), identical requests in flight are made once
(``SingleFlight``), provider calls are paid for from the run's and the env's
budgets, results are cached (failures never), and with ``web_mode`` a snapshot
is recorded or replayed.

Everything that can go wrong on the network comes back as a value: a single
"search failed: ..." (or "search not run: ...") hit, so the model can tell an
outage from "No results found.", and ``PageResult(error=...)`` for a page that
could not be read. Only bad configuration raises, and it does so at construction.
The work itself is in ``searching.py`` and ``browsing.py``; what they share, in ``shared.py``.
"""

from __future__ import annotations

from deepresearch.envs.documents import Document
from deepresearch.envs.tools import PageResult
from deepresearch.envs.web.accounting.budget import Ledger
from deepresearch.envs.web.accounting.metrics import WebStats
from deepresearch.envs.web.backend.browsing import WebBrowse
from deepresearch.envs.web.backend.clients import WebClient, WebEpisode
from deepresearch.envs.web.backend.searching import WebSearch
from deepresearch.envs.web.backend.shared import SharedRun
from deepresearch.envs.web.config import WebConfig
from deepresearch.envs.web.pages.fetch import PageFetcher
from deepresearch.envs.web.providers.search_apis import SearchProvider
from deepresearch.envs.web.snapshots.snapshot import Snapshot
from deepresearch.envs.web.storage.cache import WebCache


class WebBackend:
    """Search through a ``SearchProvider``, browse through a ``PageFetcher``, cache, budget, record, replay.

    Used directly it is one env's backend (``reset()`` starts a new episode);
    envs that share it each take an ``episode()`` so their seen URLs, budgets
    and counters stay apart. ``provider`` may be ``None`` only when replaying
    without a live fallback; ``provider_name`` then says which provider's
    results to replay.
    """

    supports_browse = True

    def __init__(
        self,
        provider: SearchProvider | None,
        browser: PageFetcher,
        cache: WebCache | None,
        config: WebConfig,
        snapshot: Snapshot | None = None,
        provider_name: str | None = None,
    ) -> None:
        if provider is None and (config.web_mode != "replay" or config.replay_fallback_live):
            raise ValueError("a search provider is needed unless replaying without a live fallback")
        if config.web_mode != "live" and snapshot is None:
            raise ValueError(f"web_mode={config.web_mode!r} needs a snapshot")
        self.provider = provider
        self.provider_name = provider.name if provider is not None else str(provider_name)
        self.browser = browser
        self._run = SharedRun(config, cache, snapshot)
        self._search = WebSearch(self._run, provider, self.provider_name)
        self._browse = WebBrowse(self._run, browser)
        self._own = WebClient(config)

    @property
    def config(self) -> WebConfig:
        return self._run.config

    @property
    def cache(self) -> WebCache | None:
        return self._run.cache

    @property
    def snapshot(self) -> Snapshot | None:
        return self._run.snapshot

    @property
    def budget(self) -> Ledger:
        """The run's budget: every env of this backend pays from it."""
        return self._run.budget

    @property
    def stats(self) -> WebStats:
        """The run's counters: every env of this backend."""
        return self._run.stats

    def results_cap(self) -> tuple[int, str] | None:
        """The most results a query gets here and what sets it (``max_results``, the provider's ``max_k``); None: no cap."""
        caps = []
        if self.config.max_results is not None:
            caps.append((self.config.max_results, f"max_results={self.config.max_results}"))
        if self.provider is not None:
            caps.append((self.provider.max_k, f"the {self.provider_name} provider returns at most {self.provider.max_k}"))
        return min(caps, default=None)

    def episode(self, owns_backend: bool = False) -> WebEpisode:
        """A view for one env: its own seen URLs, budget and counters over this backend's workers and cache."""
        return WebEpisode(self, owns_backend)

    def reset(self) -> None:
        """A new episode for direct use by one env: forget the URLs searches returned."""
        self._own.new_episode()

    def close(self) -> None:
        self._run.close()

    def search(self, queries: list[str], k: int, client: WebClient | None = None) -> list[list[Document]]:
        """Results per query by the search deadline; the URLs returned are added to ``client``'s seen list."""
        return self._search.search(queries, k, client or self._own)

    def browse(self, urls: list[str], question: str, query: str | None, client: WebClient | None = None) -> list[PageResult]:
        """One result per URL by the browse deadline; with ``browse_only_seen_urls`` only URLs ``client``'s searches returned."""
        return self._browse.browse(urls, question, query, client or self._own)
