"""Build an index of a wiki-scale corpus without holding it in memory, resumably.

One pass records the byte offset of every passage (the corpus is then read by position);
embeddings are computed chunk by chunk into a memory-mapped matrix on disk, and after
each chunk ``build-state.json`` is replaced atomically with the number of finished
chunks, so a killed build continues from the last complete chunk. HNSW / IVF-PQ indexes
are then filled from the memory map; ``manifest.json`` is written last, so a directory
with a manifest is always complete. See ``built_index`` for the layout and loading.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from deepresearch.envs.retrieval.bm25 import BM25Config, index_text_chunks
from deepresearch.envs.retrieval.compute_thread import compute_thread
from deepresearch.envs.retrieval.dense import DenseConfig, encode_texts, load_encoder, model_dimension
from deepresearch.envs.retrieval.disk_index import (
    BM25_DIR,
    BUILT_KINDS,
    DENSE_KINDS,
    FAISS_NAME,
    OFFSETS_NAME,
    embeddings_name,
    open_embeddings,
)
from deepresearch.envs.retrieval.index_format import BUILT_FORMAT_VERSION, MANIFEST_NAME, IndexDirError
from deepresearch.envs.retrieval.passage_store import PassageStore, quick_fingerprint, scan_corpus

STATE_NAME = "build-state.json"


@dataclass(frozen=True)
class IndexBuildConfig:
    """What to build. ``chunk_size`` passages are encoded per step (the resume unit)."""

    corpus: Path
    out: Path
    kind: str = "flat"
    model: str | None = None  # sentence-transformers name or folder; required for dense kinds
    query_prefix: str | None = None  # None: E5's "query: " for e5 models, "" otherwise
    passage_prefix: str | None = None
    fp16: bool = False  # store embeddings as float16: half the disk and page cache
    chunk_size: int = 4096
    batch_size: int = 64
    device: str = "cpu"
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    ivf_lists: int | None = None  # None: 4 * sqrt(count), at least 39 training points each
    pq_m: int | None = None  # None: dimension / 8 (8 dimensions per sub-quantizer)
    pq_bits: int = 8
    nprobe: int = 32
    refine: int = 4  # IVF-PQ: re-score refine * k candidates exactly with the stored vectors
    train_size: int = 100_000  # vectors sampled to train IVF-PQ
    bm25: BM25Config = field(default_factory=BM25Config)
    show_progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "corpus", Path(self.corpus).expanduser().resolve())
        object.__setattr__(self, "out", Path(self.out).expanduser())
        if self.kind not in BUILT_KINDS:
            raise ValueError(f"unknown index kind {self.kind!r}; choose one of {BUILT_KINDS}")
        if self.kind in DENSE_KINDS and not self.model:
            raise ValueError(f"a {self.kind!r} index needs an encoder model (--model)")
        if self.chunk_size <= 0 or self.batch_size <= 0:
            raise ValueError("chunk_size and batch_size must be positive")

    def encoder(self) -> DenseConfig:
        return DenseConfig(
            model_name_or_path=self.model or "",
            query_prefix=self.query_prefix,
            passage_prefix=self.passage_prefix,
            batch_size=self.batch_size,
            device=self.device,
            fp16=self.fp16,
            show_progress=False,
        )

    def identity(self) -> dict[str, Any]:
        """Everything that changes the index's content: a resumed build must agree on it."""
        identity: dict[str, Any] = {"kind": self.kind, "corpus": str(self.corpus), "chunk_size": self.chunk_size}
        if self.kind == "bm25":
            return {**identity, "params": asdict(self.bm25)}
        encoder = self.encoder()
        return {
            **identity,
            "encoder": _encoder_record(encoder),
            "fp16": self.fp16,
            "params": self.kind_params(),
        }

    def kind_params(self) -> dict[str, Any]:
        if self.kind == "hnsw":
            return {"m": self.hnsw_m, "ef_construction": self.ef_construction, "ef_search": self.ef_search}
        if self.kind == "ivfpq":
            return {
                "lists": self.ivf_lists,
                "pq_m": self.pq_m,
                "pq_bits": self.pq_bits,
                "nprobe": self.nprobe,
                "refine": self.refine,
                "train_size": self.train_size,
            }
        if self.kind == "bm25":
            return asdict(self.bm25)
        return {}


def build_index(config: IndexBuildConfig, model: Any = None, overwrite: bool = False) -> Path:
    """Build (or resume, or find already built) the index ``config`` describes.

    ``model``: an already loaded sentence-transformers encoder, to skip loading it.
    ``overwrite``: discard an existing index or unfinished build of other settings.
    """
    out = config.out
    state = _prepare_out_dir(out, config, overwrite)
    if state.get("done"):
        return out
    store = _scanned_store(out, config, state)
    manifest: dict[str, Any] = {
        "format_version": BUILT_FORMAT_VERSION,
        "kind": config.kind,
        "count": len(store),
        "corpus": state["corpus"],
        "params": config.kind_params(),
    }
    if config.kind == "bm25":
        _build_bm25(out, store, config)
        manifest["library"] = _library_versions("bm25s")
    else:
        encoder_config = config.encoder()
        model = model if model is not None else load_encoder(encoder_config)
        dimension = model_dimension(model)
        manifest.update(
            encoder=_encoder_record(encoder_config),
            dimension=dimension,
            embeddings={"file": embeddings_name(config.fp16), "dtype": "float16" if config.fp16 else "float32"},
            library=_library_versions("sentence_transformers", "faiss"),
        )
        _encode_chunks(out, store, config, model, manifest, state)
        if config.kind != "flat":
            manifest["params"] = compute_thread().run(_build_faiss, out, config, manifest)
    manifest["build"] = config.identity()
    _write_json_atomically(out / MANIFEST_NAME, manifest)
    (out / STATE_NAME).unlink(missing_ok=True)
    return out


def _prepare_out_dir(out: Path, config: IndexBuildConfig, overwrite: bool) -> dict[str, Any]:
    """The saved build state to resume from ({} for a fresh build; ``done`` when the
    same index is already complete). Never deletes a user's unrelated files."""
    identity = config.identity()
    manifest_path, state_path = out / MANIFEST_NAME, out / STATE_NAME
    recorded: dict[str, Any] | None = None
    if manifest_path.is_file():
        recorded = json.loads(manifest_path.read_text(encoding="utf-8")).get("build")
        if recorded == identity and not overwrite:
            return {"done": True}
    elif state_path.is_file():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if state.get("identity") == identity and not overwrite:
            return state
        recorded = state.get("identity")
    elif out.exists() and any(out.iterdir()):
        raise IndexDirError(f"refusing to build into {out}: it is not empty and holds no index")
    if recorded is not None:
        if not overwrite:
            raise IndexDirError(
                f"{out} holds an index (or unfinished build) with other settings; "
                "pass overwrite=True (--overwrite) or another directory"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {"identity": identity, "chunks_done": 0}
    _write_json_atomically(state_path, state)
    return state


def _scanned_store(out: Path, config: IndexBuildConfig, state: dict[str, Any]) -> PassageStore:
    """The offset table, computed once per build (a resumed build checks the corpus)."""
    offsets_path = out / OFFSETS_NAME
    if "corpus" in state and offsets_path.is_file():
        if quick_fingerprint(config.corpus) != state["corpus"]["fingerprint"]:
            raise IndexDirError(f"{config.corpus} changed since this build started; pass overwrite=True to start again")
        return PassageStore(config.corpus, np.load(offsets_path, mmap_mode="r"))
    scan = scan_corpus(config.corpus)
    partial = offsets_path.with_suffix(".partial.npy")
    np.save(partial, scan.offsets, allow_pickle=False)
    os.replace(partial, offsets_path)
    state["corpus"] = {
        "path": str(config.corpus),
        "sha256": scan.sha256,
        "size": scan.size,
        "fingerprint": quick_fingerprint(config.corpus),
    }
    _write_json_atomically(out / STATE_NAME, state)
    return PassageStore(config.corpus, np.load(offsets_path, mmap_mode="r"))


def _encode_chunks(
    out: Path, store: PassageStore, config: IndexBuildConfig, model: Any, manifest: dict[str, Any], state: dict[str, Any]
) -> None:
    """Encode the passages not yet encoded, one chunk at a time, into the memory map."""
    embeddings_path = out / manifest["embeddings"]["file"]
    if not embeddings_path.exists():
        shape = (len(store), manifest["dimension"])
        np.memmap(embeddings_path, dtype=manifest["embeddings"]["dtype"], mode="w+", shape=shape).flush()
    matrix = open_embeddings(out, manifest, mode="r+")
    encoder_config = config.encoder()
    first = state["chunks_done"] * config.chunk_size
    with _progress(config, total=len(store), initial=min(first, len(store)), description="encoding") as bar:
        for start, passages in store.iter_chunks(config.chunk_size, start=first):
            texts = [encoder_config.passage_prefix + passage.contents for passage in passages]
            matrix[start : start + len(texts)] = encode_texts(model, texts, encoder_config, False)
            matrix.flush()
            state["chunks_done"] += 1
            _write_json_atomically(out / STATE_NAME, state)
            bar.update(len(texts))
    del matrix


def _build_faiss(out: Path, config: IndexBuildConfig, manifest: dict[str, Any]) -> dict[str, Any]:
    """Fill an HNSW or IVF-PQ index from the memory map; returns the params used."""
    import faiss

    matrix = open_embeddings(out, manifest, mode="r")
    count, dimension = matrix.shape
    params = config.kind_params()
    if config.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.ef_construction
    else:
        params.update(lists=config.ivf_lists or _default_lists(count), pq_m=config.pq_m or _default_pq_m(dimension))
        if dimension % params["pq_m"]:
            raise ValueError(f"pq_m={params['pq_m']} must divide the dimension {dimension}")
        if count < 2**config.pq_bits:
            raise ValueError(f"IVF-PQ with {config.pq_bits}-bit codes needs {2**config.pq_bits}+ passages, got {count}")
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFPQ(
            quantizer, dimension, params["lists"], params["pq_m"], config.pq_bits, faiss.METRIC_INNER_PRODUCT
        )
        rows = np.random.default_rng(0).choice(count, size=min(count, config.train_size), replace=False)
        index.train(np.ascontiguousarray(matrix[np.sort(rows)], dtype=np.float32))
    with _progress(config, total=count, initial=0, description=f"adding to {config.kind}") as bar:
        for block in _blocks(matrix, config.chunk_size):
            index.add(block)
            bar.update(len(block))
    partial = out / (FAISS_NAME + ".partial")
    faiss.write_index(index, str(partial))
    os.replace(partial, out / FAISS_NAME)
    return params


def _build_bm25(out: Path, store: PassageStore, config: IndexBuildConfig) -> None:
    chunks = ([passage.contents for passage in passages] for _, passages in store.iter_chunks(config.chunk_size))
    index = index_text_chunks(chunks, config.bm25, config.show_progress)
    partial = out / (BM25_DIR + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    index.save(partial, show_progress=False)
    shutil.rmtree(out / BM25_DIR, ignore_errors=True)
    os.replace(partial, out / BM25_DIR)


def _blocks(matrix: np.ndarray, rows: int) -> Iterator[np.ndarray]:
    for start in range(0, len(matrix), rows):
        yield np.ascontiguousarray(matrix[start : start + rows], dtype=np.float32)


def _default_lists(count: int) -> int:
    """~4 sqrt(n) lists (faiss' guideline), with at least 39 training points per list."""
    return max(1, min(int(4 * math.sqrt(count)), count // 39))


def _default_pq_m(dimension: int) -> int:
    return max(1, dimension // 8)


def _encoder_record(encoder: DenseConfig) -> dict[str, Any]:
    return {
        "model_name_or_path": encoder.model_name_or_path,
        "query_prefix": encoder.query_prefix,
        "passage_prefix": encoder.passage_prefix,
        "normalize": encoder.normalize,
    }


def _library_versions(*names: str) -> dict[str, str]:
    import importlib

    return {name: getattr(importlib.import_module(name), "__version__", "unknown") for name in names}


def _progress(config: IndexBuildConfig, total: int, initial: int, description: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, desc=description, unit="passage", disable=not config.show_progress, smoothing=0.1
    )


def _write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
