"""``DeepResearch-Web-v0``: questions answered by searching and reading the live web.

Search goes through a provider (Serper, SearxNG, Brave, Tavily; keys from
environment variables), pages are fetched safely (no private addresses, one
deadline per step, bounded size) and reduced to the passages relevant to the
question. Provider calls are counted and priced against optional budgets;
results are cached (SQLite or Redis) and can be recorded to, or replayed from,
a snapshot. Registered ``nondeterministic=True``: the live web changes (a
replay does not).
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, Sequence

from deepresearch.envs.core import EnvConfig, SearchEnv
from deepresearch.envs.datasets import DatasetSpec, QAItem, resolve_questions
from deepresearch.envs.tools import ToolBackend
from deepresearch.rewards import RewardResult

if TYPE_CHECKING:
    from deepresearch.envs.web import WebStats

ENV_FIELDS = {f.name for f in fields(EnvConfig)}


class WebSearchEnv(SearchEnv):
    """A ``SearchEnv`` that reports the web's counters: ``info["web"]`` after every step (this
    episode's calls, cache hit rate, cost so far) and ``web_*`` terms in ``reward_components``
    at the end, which evaluation tables and training logs pick up."""

    def __init__(
        self,
        backend: ToolBackend,
        questions: Sequence[QAItem],
        config: EnvConfig | None = None,
        render_mode: str | None = None,
        web_stats: WebStats | None = None,
    ) -> None:
        super().__init__(backend, questions, config, render_mode=render_mode)
        self.web_stats = web_stats  # a WebStats for the current episode, or None for a backend without one

    def _info(self) -> dict[str, Any]:
        info = super()._info()
        if self.web_stats is not None:
            info["web"] = self.web_stats.as_dict()
        return info

    def _components(self, result: RewardResult) -> dict[str, Any]:
        components = super()._components(result)
        if self.web_stats is not None:
            web = self.web_stats.as_dict()
            components.update(
                web_cost_usd=web["cost_usd"], web_search_calls=web["provider_calls"], web_cache_hit_rate=web["cache_hit_rate"]
            )
        return components


def split_kwargs(kwargs: dict[str, Any], env_fields: set[str], web_fields: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``kwargs`` as (EnvConfig's, WebConfig's); a name both configs have would be split silently, so it is an error."""
    shared = sorted(env_fields & web_fields & set(kwargs))
    if shared:
        raise TypeError(f"{shared}: a setting of both EnvConfig and WebConfig, so it cannot be told apart (the two must not share names)")
    env_kwargs = {key: value for key, value in kwargs.items() if key in env_fields}
    return env_kwargs, {key: value for key, value in kwargs.items() if key not in env_fields}


def make_web_env(
    dataset: DatasetSpec = None,
    split: str | None = None,
    limit: int | None = None,
    backend: ToolBackend | None = None,
    render_mode: str | None = None,
    **kwargs: Any,
) -> WebSearchEnv:
    """Build the env.

    Args:
        dataset: a QA file (FlashRAG jsonl, HotpotQA, MuSiQue), a list of files, or ``QAItem``s;
            None = pass each question with ``reset(options={"question": ..., "golden_answers": ...})``.
        backend: a ready ``ToolBackend``; a ``WebBackend`` may be shared by several envs (each
            gets its own ``WebEpisode``: its own seen URLs, budget and counters, and closing the env
            leaves the shared backend open). Default: one built, and owned, from the ``WebConfig``
            fields among ``kwargs`` (provider, cache_path, web_mode, snapshot_path, max_cost_usd, ...).
        **kwargs: ``EnvConfig`` fields (protocol — default ``tool_call`` —, reward, top_k,
            max_turns, ...) and ``WebConfig`` fields, told apart by name (no name is both).
    """
    from deepresearch.envs.web import WebBackend, WebConfig, WebEpisode, make_web_backend

    env_kwargs, web_kwargs = split_kwargs(kwargs, ENV_FIELDS, {f.name for f in fields(WebConfig)})
    if backend is None:
        backend = make_web_backend(**web_kwargs).episode(owns_backend=True)
    elif web_kwargs:
        raise TypeError(f"pass either a backend or web settings, not both: {sorted(web_kwargs)}")
    elif isinstance(backend, WebBackend):
        backend = backend.episode()
    config = EnvConfig(**{"protocol": "tool_call", **env_kwargs})
    if isinstance(backend, WebEpisode):
        cap = backend.backend.results_cap()
        if cap is not None and config.top_k > cap[0]:
            raise ValueError(f"top_k={config.top_k} asks for more results per query than this web backend returns ({cap[1]})")
    stats = backend.stats if isinstance(backend, WebEpisode) else None
    return WebSearchEnv(backend, resolve_questions(dataset, split, limit), config, render_mode=render_mode, web_stats=stats)
