"""One env per session, one index (or web backend) for all of them.

Loading a wiki-18 index takes minutes and gigabytes, so the server builds it once and
hands every session's env the same retriever, wrapped in a ``CoalescingRetriever``:
the sessions' concurrent searches meet in batched calls made from one worker thread,
so the index is never searched from two threads at once. The web env shares one
``WebBackend`` (its cache, snapshot, rate limit and budgets), which is built for
concurrent envs. Any other registered env id gets a fresh env per session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deepresearch.registration import WEB_ENV_ID, WIKI_ENV_ID

# Keys that choose what the Wiki env loads; every other key is an episode rule.
WIKI_LOADING_KEYS = ("corpus", "retriever", "retriever_kwargs", "dataset", "split", "limit")


class SharedEnvFactory:
    """``factory()`` makes a session's env; ``close()`` releases what the sessions shared."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any]) -> None:
        import deepresearch  # noqa: F401 - registers the env ids

        self.env_id = env_id
        self._closers: list[Callable[[], None]] = []
        if env_id == WIKI_ENV_ID:
            self._session_kwargs = self._share_wiki_index(env_kwargs)
        elif env_id == WEB_ENV_ID:
            self._session_kwargs = self._share_web_backend(env_kwargs)
        else:
            self._session_kwargs = dict(env_kwargs)

    def __call__(self) -> Any:
        import gymnasium as gym

        return gym.make(self.env_id, **self._session_kwargs)

    def close(self) -> None:
        for close in reversed(self._closers):
            close()
        self._closers.clear()

    def _share_wiki_index(self, env_kwargs: dict[str, Any]) -> dict[str, Any]:
        from deepresearch.envs.retrieval.coalescing import CoalescingRetriever
        from deepresearch.envs.wiki import make_wiki_env

        loaded = make_wiki_env(**env_kwargs)  # loads the index and the questions once, checks the rules
        retriever = CoalescingRetriever(loaded.backend.retriever)
        self._closers.append(retriever.close)
        rules = {key: value for key, value in env_kwargs.items() if key not in WIKI_LOADING_KEYS}
        return {**rules, "retriever": retriever, "dataset": loaded.questions}

    def _share_web_backend(self, env_kwargs: dict[str, Any]) -> dict[str, Any]:
        from deepresearch.envs.web import make_web_backend
        from deepresearch.envs.web_env import ENV_FIELDS

        web_settings = {k: v for k, v in env_kwargs.items() if k not in ENV_FIELDS and k not in ("dataset", "split", "limit")}
        backend = make_web_backend(**web_settings)
        self._closers.append(backend.close)
        return {**{k: v for k, v in env_kwargs.items() if k not in web_settings}, "backend": backend}
