"""``DeepResearch-Wiki-v0``: questions answered by searching a local Wikipedia-style corpus.

With no arguments it runs on the embedded demo world (a synthetic encyclopedia
whose facts no model can know, so it has to search) with a BM25 index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepresearch.envs.core import EnvConfig, SearchEnv, checked_reward_fn
from deepresearch.envs.datasets import DatasetSpec, resolve_questions
from deepresearch.envs.retrieval import Retriever, load_retriever
from deepresearch.envs.retrieval.remote import RemoteRetriever, is_url
from deepresearch.envs.tools import RetrieverBackend


def make_wiki_env(
    corpus: str | Path | None = None,
    retriever: str | Retriever | None = None,
    dataset: DatasetSpec = None,
    split: str | None = None,
    limit: int | None = None,
    retriever_kwargs: dict[str, Any] | None = None,
    render_mode: str | None = None,
    **config: Any,
) -> SearchEnv:
    """Build the env.

    Args:
        corpus: a wiki-18 style ``.jsonl`` corpus, a saved index directory, or the URL of a
            retrieval server; None = the demo world.
        retriever: ``"bm25"`` or ``"dense"`` (built over a ``.jsonl`` corpus), the URL of a
            server speaking Search-R1's ``/retrieve`` (``"http://127.0.0.1:8000"``), or any
            object with ``search(queries, k)`` (e.g. a ``RemoteRetriever``, or a
            ``CoalescingRetriever`` shared by many envs). None: BM25 for a corpus
            file, and whatever kind a saved index directory records in its manifest.
        dataset: ``"demo"``, a QA file (FlashRAG jsonl, HotpotQA, MuSiQue), a list of files, or
            a list of ``QAItem``. Defaults to the demo questions when ``corpus`` is None; with your
            own corpus and no dataset, pass questions through ``reset(options={"question": ...})``.
        split: split of the demo questions (``train``, the default, or ``test``) or of a dataset folder.
        limit: keep only the first ``limit`` questions.
        retriever_kwargs: passed to the retriever builder (e.g. ``model_name_or_path``).
        render_mode: None or ``"ansi"``.
        **config: ``EnvConfig`` fields: protocol (a name or a ``Protocol`` instance), reward, top_k, max_turns, max_observation_chars,
            max_action_chars, max_queries_per_call, on_format_error.
    """
    env_config = EnvConfig(**config)
    checked_reward_fn(env_config.reward, env_config.make_protocol())  # before an index load that may take minutes
    url = next((value for value in (retriever, corpus) if isinstance(value, str) and is_url(value)), None)
    if url is not None:
        retriever = RemoteRetriever(url)
    elif retriever is None or isinstance(retriever, str):
        from deepresearch.data import demo_corpus_path

        source = Path(corpus) if corpus is not None else demo_corpus_path()
        retriever = load_retriever(source, kind=retriever, **(retriever_kwargs or {}))
    elif not hasattr(retriever, "search"):
        raise TypeError(f"retriever must be 'bm25', 'dense', an http(s) URL or an object with search(queries, k), not {retriever!r}")
    if dataset is None and corpus is None:
        dataset = "demo"
    questions = resolve_questions(dataset, split, limit)
    return SearchEnv(RetrieverBackend(retriever), questions, env_config, render_mode=render_mode)
