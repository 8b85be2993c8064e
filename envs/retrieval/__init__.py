"""Retrieval backends behind the ``Retriever`` contract: BM25 (bm25s), dense
(sentence-transformers + FAISS, imported only when used), indexes built for wiki scale
(``build_index``: flat / HNSW / IVF-PQ / BM25, passages read from disk), remote (HTTP,
Search-R1's ``/retrieve``), a coalescing wrapper for many threads, and ``load_retriever``."""

from deepresearch.envs.retrieval.base import NullRetriever, Retriever
from deepresearch.envs.retrieval.bm25 import BM25Config, BM25Retriever
from deepresearch.envs.retrieval.coalescing import CoalescingConfig, CoalescingRetriever
from deepresearch.envs.retrieval.dense import DenseConfig, DenseRetriever
from deepresearch.envs.retrieval.disk_index import BuiltIndexRetriever, open_built_index
from deepresearch.envs.retrieval.in_memory import InMemoryRetriever
from deepresearch.envs.retrieval.index_builder import IndexBuildConfig, build_index
from deepresearch.envs.retrieval.index_format import IndexDirError
from deepresearch.envs.retrieval.open_index import RETRIEVER_KINDS, clear_retriever_cache, load_retriever
from deepresearch.envs.retrieval.remote import RemoteConfig, RemoteRetriever, RemoteRetrieverError

__all__ = [
    "BM25Config",
    "BM25Retriever",
    "BuiltIndexRetriever",
    "CoalescingConfig",
    "CoalescingRetriever",
    "DenseConfig",
    "DenseRetriever",
    "IndexBuildConfig",
    "IndexDirError",
    "InMemoryRetriever",
    "NullRetriever",
    "RETRIEVER_KINDS",
    "RemoteConfig",
    "RemoteRetriever",
    "RemoteRetrieverError",
    "Retriever",
    "build_index",
    "clear_retriever_cache",
    "load_retriever",
    "open_built_index",
]
