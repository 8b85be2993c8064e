"""``WebConfig``: every setting of the web backend that is not a secret (keys come from env vars)."""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from typing import Any, Mapping

from deepresearch.deprecations import warn_once
from deepresearch.envs.deadline import DEFAULT_DEADLINE_S
from deepresearch.envs.web.accounting.budget import BudgetLimits, price_table
from deepresearch.envs.web.net.retry import RetryPolicy
from deepresearch.envs.web.pages.fetch import FetchConfig
from deepresearch.envs.web.pages.llm_reader import LLMReaderConfig
from deepresearch.envs.web.pages.reading import ReadingConfig
from deepresearch.envs.web.snapshots.snapshot import DEFAULT_SNAPSHOT_MAX_BYTES, WEB_MODES
from deepresearch.envs.web.storage.cache import DEFAULT_CACHE_MAX_BYTES

# Nested settings that may arrive as plain dicts (``--env-kwargs`` JSON) and are built here.
_NESTED = {"retry": RetryPolicy, "fetch": FetchConfig, "reading": ReadingConfig, "reader": LLMReaderConfig}


@dataclass(frozen=True)
class WebConfig:
    provider: str | None = None  # serper | searxng | brave | tavily; default $DEEPRESEARCH_SEARCH_PROVIDER
    provider_base_url: str | None = None  # override, e.g. a local test server or a proxy
    # A cap on results per query for every env of this backend; None: as many as the env's top_k asks (up to
    # the provider's own ``max_k``, 20). An env whose top_k is above either cap is an error at gym.make.
    max_results: int | None = None
    search_timeout_s: tuple[float, float] = (5.0, 15.0)  # one attempt's (connect, read) timeouts
    # One total deadline per search / browse call, counted from the env step's start: queueing, rate
    # limiting, retries, backoff, redirects and extraction all come out of it.
    search_deadline_s: float = DEFAULT_DEADLINE_S
    browse_deadline_s: float = DEFAULT_DEADLINE_S
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rate_per_s: float | None = 5.0  # provider requests per second (retries included), per process; None = unlimited
    burst: int = 5
    fetch: FetchConfig = field(default_factory=FetchConfig)
    reading: ReadingConfig = field(default_factory=ReadingConfig)
    reader: LLMReaderConfig | None = None  # None: BM25 passage selection (no LLM calls)
    extract_processes: int = 0  # 0: extract page text in the fetching thread; N: in a pool of N processes
    # Budgets: None = no cap. The run's caps hold for this backend (all envs sharing it), the env's per env.
    max_search_calls: int | None = None
    max_cost_usd: float | None = None
    env_max_search_calls: int | None = None
    env_max_cost_usd: float | None = None
    prices_usd: Mapping[str, float] | None = None  # USD per call, overriding budget.DEFAULT_PRICES_USD
    use_cache: bool = True
    cache_path: str | None = None  # a SQLite file or redis://host:port/db; default $DEEPRESEARCH_CACHE/web.sqlite
    cache_ttl_s: float = 7 * 86400
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    # Each call to a Redis cache or snapshot gives up after this long (a store that accepts the
    # connection and goes silent must not eat the step's deadline); a failed cache rests a minute.
    store_timeout_s: float = 1.0
    web_mode: str = "live"  # live | record (also write a snapshot) | replay (answer from the snapshot only)
    snapshot_path: str | None = None  # a SQLite file or redis://host:port/db#name; needed to record or replay
    snapshot_max_bytes: int = DEFAULT_SNAPSHOT_MAX_BYTES
    replay_fallback_live: bool = False  # replay: a miss goes to the live web instead of "not in this snapshot"
    allow_private: bool = False
    allowlist: tuple[str, ...] = ()  # hosts or IP networks that may be browsed although not public
    browse_only_seen_urls: bool = False  # refuse URLs no earlier search (this episode) returned
    max_workers: int = 128  # threads shared by every env of this backend (they wait on the network, not the CPU)
    # Deprecated name of max_results (it read like the env's top_k, which it silently capped).
    top_k: InitVar[int | None] = None

    def __post_init__(self, top_k: int | None) -> None:
        if top_k is not None:
            warn_once("WebConfig(top_k=...)", "WebConfig(max_results=...) (the env's own top_k sets how many results it shows)", stacklevel=4)
            object.__setattr__(self, "max_results", top_k)
        for name, cls in _NESTED.items():
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, cls(**value))
        if isinstance(self.search_timeout_s, list):
            object.__setattr__(self, "search_timeout_s", tuple(self.search_timeout_s))
        if isinstance(self.allowlist, str):
            raise ValueError("allowlist must be a tuple of hosts/networks, not a string")
        object.__setattr__(self, "allowlist", tuple(self.allowlist))
        if self.max_results is not None and self.max_results < 1:
            raise ValueError(f"max_results must be >= 1 (or None), got {self.max_results}")
        if self.max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {self.max_workers}")
        if len(self.search_timeout_s) != 2 or any(t <= 0 for t in self.search_timeout_s):
            raise ValueError(f"search_timeout_s must be two positive numbers, got {self.search_timeout_s}")
        if not (self.search_deadline_s > 0 and self.browse_deadline_s > 0):
            raise ValueError("search_deadline_s and browse_deadline_s must be > 0")
        if self.web_mode not in WEB_MODES:
            raise ValueError(f"web_mode must be one of {', '.join(WEB_MODES)}, got {self.web_mode!r}")
        if self.web_mode != "live" and not self.snapshot_path:
            raise ValueError(f"web_mode={self.web_mode!r} needs snapshot_path (a file or a redis:// URL)")
        if not 0 < self.store_timeout_s < min(self.search_deadline_s, self.browse_deadline_s):
            raise ValueError(f"store_timeout_s must be > 0 and shorter than the step deadlines, got {self.store_timeout_s}")
        if self.extract_processes < 0:
            raise ValueError(f"extract_processes must be >= 0, got {self.extract_processes}")
        self.run_limits()
        self.env_limits()
        self.prices()

    def run_limits(self) -> BudgetLimits:
        return BudgetLimits(self.max_search_calls, self.max_cost_usd)

    def env_limits(self) -> BudgetLimits:
        return BudgetLimits(self.env_max_search_calls, self.env_max_cost_usd)

    def prices(self) -> dict[str, float]:
        return price_table(self.prices_usd)

    def public_settings(self) -> dict[str, Any]:
        """What a snapshot records about how a result was obtained (no URLs that could carry a secret)."""
        return {"max_results": self.max_results, "max_bytes": self.fetch.max_bytes, "user_agent": self.fetch.user_agent}
