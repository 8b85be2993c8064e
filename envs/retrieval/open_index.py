"""One entry point from "a corpus file or a saved index" to a ready retriever.

Indexes are cached per process: 64 ``gym.make`` calls over the same corpus must share
one index, not build 64 (a dense wiki-18 index takes hours to encode).
"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path
from typing import Any

from deepresearch.envs.retrieval.bm25 import BM25Retriever
from deepresearch.envs.retrieval.dense import DenseRetriever
from deepresearch.envs.retrieval.disk_index import BUILT_KINDS, DENSE_KINDS, BuiltIndexRetriever, open_built_index
from deepresearch.envs.retrieval.in_memory import InMemoryRetriever
from deepresearch.envs.retrieval.index_format import BUILT_FORMAT_VERSION, MANIFEST_NAME, read_manifest

RETRIEVER_KINDS: dict[str, type[InMemoryRetriever]] = {"bm25": BM25Retriever, "dense": DenseRetriever}

AnyInMemoryRetriever = InMemoryRetriever | BuiltIndexRetriever
_cache: dict[tuple[str, int, str, str], AnyInMemoryRetriever] = {}
_key_locks: dict[tuple[str, int, str, str], threading.Lock] = {}
_cache_guard = threading.Lock()


def load_retriever(source: str | Path, kind: str | None = None, *, cache: bool = True, **kwargs: Any) -> AnyInMemoryRetriever:
    """A retriever over ``source``: a corpus ``.jsonl`` (indexed as ``kind``, default
    ``"bm25"``), a directory written by ``save`` or by ``deepresearch index build``
    (its kind comes from the manifest; a ``kind`` given too must agree, where
    ``"dense"`` agrees with every dense kind: flat, hnsw, ivfpq). ``kwargs`` go
    to ``from_jsonl``, ``load`` or ``open_built_index`` (e.g. ``config=DenseConfig(...)``,
    ``device="cuda"``, ``nprobe=64``).

    With ``cache=True`` the same source, modification time, kind and kwargs return the
    same object, built once even when many threads ask at the same moment.
    """
    path = Path(source).expanduser()
    if kind is not None and kind not in RETRIEVER_KINDS and kind not in BUILT_KINDS:
        raise ValueError(f"unknown retriever kind {kind!r}; choose one of {sorted(RETRIEVER_KINDS)}")
    if path.is_dir():
        manifest = read_manifest(path)
        saved_kind = manifest["kind"]
        if not kind_fits(kind, saved_kind):
            raise ValueError(
                f"{path} holds a {saved_kind!r} index, but kind={kind!r} was asked for "
                "(leave the kind unset to use the index's own)"
            )
        if manifest["format_version"] == BUILT_FORMAT_VERSION:
            build = partial(open_built_index, path, **kwargs)
        elif saved_kind in RETRIEVER_KINDS:
            build = partial(RETRIEVER_KINDS[saved_kind].load, path, **kwargs)
        else:
            raise ValueError(f"{path} holds an index of unknown kind {saved_kind!r}")
        kind, stamp_path = saved_kind, path / MANIFEST_NAME
    elif path.is_file():
        kind, stamp_path = kind or "bm25", path
        if kind not in RETRIEVER_KINDS:
            raise ValueError(f"a {kind!r} index is built with 'deepresearch index build', then loaded from its directory")
        build = partial(RETRIEVER_KINDS[kind].from_jsonl, path, **kwargs)
    else:
        raise ValueError(f"retriever source not found: {path} (expected a corpus .jsonl or a saved index directory)")
    if not cache:
        return build()
    key = (str(path.resolve()), stamp_path.stat().st_mtime_ns, kind, repr(sorted(kwargs.items())))
    with _cache_guard:
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        if key not in _cache:
            _cache[key] = build()
        return _cache[key]


def kind_fits(asked: str | None, saved: str) -> bool:
    """Whether an index of kind ``saved`` serves a request for ``asked`` (None: any);
    "dense" names the family, so a README's ``retriever="dense"`` opens a built flat index."""
    return asked is None or asked == saved or (asked == "dense" and saved in DENSE_KINDS)


def clear_retriever_cache() -> None:
    """Forget cached indexes (their memory is freed once no env holds them)."""
    with _cache_guard:
        _cache.clear()
        _key_locks.clear()
