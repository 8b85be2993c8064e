"""``DeepResearch-Web-v0``: questions answered by searching and reading the live web.

Search goes through a provider (Serper, SearxNG, Brave, Tavily; keys from
environment variables), pages are fetched safely (no private addresses, bounded
time and size) and reduced to the passages relevant to the question. Everything
is cached in SQLite. Registered ``nondeterministic=True``: the web changes.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from deepresearch.envs.core import EnvConfig, SearchEnv
from deepresearch.envs.datasets import DatasetSpec, resolve_questions
from deepresearch.envs.tools import ToolBackend

ENV_FIELDS = {f.name for f in fields(EnvConfig)}


def make_web_env(
    dataset: DatasetSpec = None,
    split: str | None = None,
    limit: int | None = None,
    backend: ToolBackend | None = None,
    render_mode: str | None = None,
    **kwargs: Any,
) -> SearchEnv:
    """Build the env.

    Args:
        dataset: a QA file (FlashRAG jsonl, HotpotQA, MuSiQue), a list of files, or ``QAItem``s;
            None = pass each question with ``reset(options={"question": ..., "golden_answers": ...})``.
        backend: a ready ``ToolBackend``; a ``WebBackend`` may be shared by several envs (each
            gets its own ``WebEpisode``: its own seen-URL list, and closing the env leaves the
            shared backend open). Default: one built, and owned, from the ``WebConfig`` fields
            among ``kwargs`` (provider, provider_base_url, cache_path, allowlist, browse_only_seen_urls, ...).
        **kwargs: ``EnvConfig`` fields (protocol — default ``tool_call`` —, reward, top_k,
            max_turns, ...) and ``WebConfig`` fields, told apart by name.
    """
    env_kwargs = {key: value for key, value in kwargs.items() if key in ENV_FIELDS}
    web_kwargs = {key: value for key, value in kwargs.items() if key not in ENV_FIELDS}
    from deepresearch.envs.web import WebBackend, make_web_backend

    if backend is None:
        backend = make_web_backend(**web_kwargs).episode(owns_backend=True)
    elif web_kwargs:
        raise TypeError(f"pass either a backend or web settings, not both: {sorted(web_kwargs)}")
    elif isinstance(backend, WebBackend):
        backend = backend.episode()
    config = EnvConfig(**{"protocol": "tool_call", **env_kwargs})
    return SearchEnv(backend, resolve_questions(dataset, split, limit), config, render_mode=render_mode)
