"""Opening an index written by ``index_build``: passages stay in the corpus file (read
by byte offset), embeddings stay on disk (memory-mapped) or in a faiss index file.

Directory layout (manifest ``format_version`` 2)::

    manifest.json      kind (flat | hnsw | ivfpq | bm25), count, corpus path + sha256,
                       encoder (model, prefixes), dimension, params, library versions
    offsets.npy        int64 byte offset of every passage line in the corpus
    embeddings.f16|f32 raw (count, dimension) matrix (dense kinds)
    faiss.index        HNSW or IVF-PQ index (those kinds)
    bm25s/             the bm25s index (bm25)
"""

from __future__ import annotations

import threading
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import numpy as np

from deepresearch.envs.documents import Document
from deepresearch.envs.retrieval.base import Hit, search_batch, vector_hits
from deepresearch.envs.retrieval.compute_thread import compute_thread
from deepresearch.envs.retrieval.dense import DenseConfig, load_encoder, model_dimension, query_encoder
from deepresearch.envs.retrieval.flat_search import FlatSearcher, faiss_search, rerank_exact
from deepresearch.envs.retrieval.index_format import (
    BUILT_FORMAT_VERSION,
    IndexDirError,
    manifest_section,
    read_index_file,
    read_manifest,
    required_file,
)
from deepresearch.envs.retrieval.passage_store import PassageStore, quick_fingerprint

BUILT_KINDS = ("flat", "hnsw", "ivfpq", "bm25")
DENSE_KINDS = ("flat", "hnsw", "ivfpq")
OFFSETS_NAME = "offsets.npy"
FAISS_NAME = "faiss.index"
BM25_DIR = "bm25s"
# (queries, k) -> hits per query; (vectors, k) -> (scores, indices).
Ranker = Callable[[list[str], int], list[list[Hit]]]
VectorSearch = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
# Load-time settings: how this process runs, not what the index means.
LOAD_SETTINGS = ("corpus", "model", "device", "batch_size", "show_progress", "nprobe", "ef_search", "refine")


def embeddings_name(fp16: bool) -> str:
    return "embeddings.f16" if fp16 else "embeddings.f32"


class BuiltIndexRetriever:
    """A built index behind the ``Retriever`` contract; ``search`` is thread-safe."""

    def __init__(self, store: PassageStore, rank: Ranker, manifest: dict[str, Any]) -> None:
        self.store = store
        self.manifest = manifest
        self.kind: str = manifest["kind"]
        self._rank = rank
        # One search at a time: HF tokenizers and PyStemmer are not thread-safe, and a
        # whole batch per call is the efficient shape (``CoalescingRetriever`` makes one).
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.store)

    def search(self, queries: list[str], k: int) -> list[list[Document]]:
        """Up to ``k`` passages per query, best first; a blank query gets an empty list."""
        return search_batch(queries, k, len(self), self._locked_rank, self.store.get)

    def _locked_rank(self, queries: list[str], k: int) -> list[list[Hit]]:
        with self._lock:
            return self._rank(queries, k)


def open_built_index(directory: str | Path, **settings: Any) -> BuiltIndexRetriever:
    """Open ``directory``; ``settings`` are ``LOAD_SETTINGS`` (e.g. ``corpus=`` when the
    corpus file moved, ``device="cuda"``, ``nprobe=64``)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest["format_version"] != BUILT_FORMAT_VERSION or manifest["kind"] not in BUILT_KINDS:
        raise IndexDirError(f"{directory} is not an index built by 'deepresearch index build'")
    unknown = sorted(set(settings) - set(LOAD_SETTINGS))
    if unknown:
        raise TypeError(f"a built index takes only the load settings {LOAD_SETTINGS}, got {unknown}")
    store = _open_store(directory, manifest, settings.pop("corpus", None))
    if manifest["kind"] == "bm25":
        rank = _bm25_ranker(directory, manifest)
    else:
        rank = _dense_ranker(directory, manifest, settings)
    return BuiltIndexRetriever(store, rank, manifest)


def _open_store(directory: Path, manifest: dict[str, Any], corpus: str | Path | None) -> PassageStore:
    recorded = manifest_section(manifest, "corpus")
    corpus_path = Path(corpus if corpus is not None else recorded["path"])
    if not corpus_path.is_file():
        raise IndexDirError(f"{directory}: the corpus {corpus_path} is missing (pass corpus=... if it moved)")
    if quick_fingerprint(corpus_path) != recorded["fingerprint"]:
        raise IndexDirError(f"{directory}: {corpus_path} is not the corpus this index was built from")
    offsets = read_index_file(directory, OFFSETS_NAME, lambda path: np.load(path, mmap_mode="r", allow_pickle=False))
    if len(offsets) != manifest["count"] + 1:
        raise IndexDirError(
            f"{directory}: {OFFSETS_NAME} covers {len(offsets) - 1} passages, the manifest says {manifest['count']}"
        )
    return PassageStore(corpus_path, offsets)


def _dense_ranker(directory: Path, manifest: dict[str, Any], settings: dict[str, Any]) -> Ranker:
    params = manifest["params"]
    config = _encoder_config(manifest, settings)
    model = settings.get("model") or load_encoder(config)
    dimension = manifest_section(manifest, "dimension")
    if model_dimension(model) != dimension:
        raise IndexDirError(
            f"{directory}: model {config.model_name_or_path!r} makes {model_dimension(model)}-d vectors, "
            f"the index holds {dimension}-d vectors"
        )
    if manifest["kind"] == "flat":
        searcher = FlatSearcher(open_embeddings(directory, manifest, mode="r"))
        search = searcher.search
    else:
        index = read_index_file(directory, FAISS_NAME, lambda path: _read_faiss(path))
        if index.ntotal != manifest["count"]:
            raise IndexDirError(
                f"{directory}: {FAISS_NAME} holds {index.ntotal} vectors, the manifest says {manifest['count']}"
            )
        search_params = {**params, **{key: settings[key] for key in ("nprobe", "ef_search", "refine") if key in settings}}
        _apply_search_params(index, manifest["kind"], search_params)
        search = _approximate_search(index, directory, manifest, int(search_params.get("refine", 1)))

    encoder = query_encoder(model, config)

    def rank_here(texts: list[str], k: int) -> list[list[Hit]]:
        return vector_hits(*search(encoder.encode(texts), k))

    def rank(queries: list[str], k: int) -> list[list[Hit]]:
        return compute_thread().run(rank_here, [config.query_prefix + query for query in queries], k)

    return rank


def _bm25_ranker(directory: Path, manifest: dict[str, Any]) -> Ranker:
    import bm25s

    from deepresearch.envs.retrieval.bm25 import BM25Config, bm25_hits, stemmer_for

    config = BM25Config(**manifest["params"])
    index = read_index_file(directory, BM25_DIR, lambda path: bm25s.BM25.load(path, show_progress=False))
    if index.scores["num_docs"] != manifest["count"]:
        raise IndexDirError(
            f"{directory}: the BM25 index covers {index.scores['num_docs']} passages, "
            f"the manifest says {manifest['count']}"
        )
    stemmer = stemmer_for(config)
    return lambda queries, k: bm25_hits(index, queries, k, config, stemmer)


def _encoder_config(manifest: dict[str, Any], settings: dict[str, Any]) -> DenseConfig:
    """The ``DenseConfig`` recorded at build time plus this process' runtime settings."""
    encoder = dict(manifest_section(manifest, "encoder"))
    allowed = {field.name for field in fields(DenseConfig)}
    runtime = {key: settings[key] for key in ("device", "batch_size", "show_progress") if key in settings}
    try:
        return DenseConfig(**{key: value for key, value in encoder.items() if key in allowed}, **runtime)
    except (TypeError, ValueError) as error:
        raise IndexDirError(f"unreadable encoder settings in the manifest ({error})") from None


def open_embeddings(directory: Path, manifest: dict[str, Any], mode: str) -> np.memmap:
    """The on-disk embedding matrix as a memory map (``mode`` "r" to search, "r+" to fill)."""
    embeddings = manifest_section(manifest, "embeddings")
    path = required_file(directory, embeddings["file"]) if mode == "r" else directory / embeddings["file"]
    shape = (manifest["count"], manifest["dimension"])
    expected_bytes = shape[0] * shape[1] * np.dtype(embeddings["dtype"]).itemsize
    if mode == "r" and path.stat().st_size != expected_bytes:
        raise IndexDirError(
            f"{path} has {path.stat().st_size} bytes, a {shape} {embeddings['dtype']} matrix needs {expected_bytes}"
        )
    return np.memmap(path, dtype=embeddings["dtype"], mode=mode, shape=shape)


def _approximate_search(index: Any, directory: Path, manifest: dict[str, Any], refine: int) -> VectorSearch:
    """faiss search; with ``refine`` > 1, ``refine * k`` candidates re-scored exactly
    against the embeddings kept on disk (IVF-PQ's codes alone rank near-duplicates poorly)."""
    if refine <= 1:
        return lambda vectors, k: faiss_search(index, vectors, k)
    matrix = open_embeddings(directory, manifest, mode="r")

    def search(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _, candidates = faiss_search(index, vectors, min(refine * k, len(matrix)))
        return rerank_exact(matrix, vectors, candidates, k)

    return search


def _read_faiss(path: Path) -> Any:
    import faiss

    try:
        return faiss.read_index(str(path))
    except RuntimeError as error:  # faiss reports a damaged file as a RuntimeError
        raise ValueError(str(error).splitlines()[0]) from None


def _apply_search_params(index: Any, kind: str, params: dict[str, Any]) -> None:
    import faiss

    if kind == "hnsw":
        index.hnsw.efSearch = int(params["ef_search"])
    else:
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])
