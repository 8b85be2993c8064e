"""Dense retrieval: a sentence-transformers encoder and exact inner-product search.

torch, sentence-transformers and faiss are imported only when a dense index is built or
loaded, so ``import deepresearch.envs`` stays light for BM25-only users. Vectors are
normalised, so inner product is cosine similarity (what E5 and MiniLM are trained for).
Search runs on ``FlatSearcher`` (faiss' scan for a few queries, one matrix product for
batches), not a default ``faiss.IndexFlatIP``, which scans per query for batches like
256 x 384 (~8x slower). Loading, encoding and searching run on the process' compute
thread (``compute_thread``), so torch and faiss keep one thread team each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from deepresearch.envs.documents import Document
from deepresearch.envs.retrieval.base import Hit, as_passages, vector_hits
from deepresearch.envs.retrieval.compute_thread import compute_thread
from deepresearch.envs.retrieval.flat_search import FlatSearcher
from deepresearch.envs.retrieval.in_memory import InMemoryRetriever
from deepresearch.envs.retrieval.index_format import IndexDirError, config_from_manifest, manifest_section, read_index_file
from deepresearch.envs.retrieval.query_encoder import QueryEncoder

_EMBEDDINGS_NAME = "embeddings.npy"
_E5_QUERY_PREFIX = "query: "
_E5_PASSAGE_PREFIX = "passage: "
# Settings that only change how this process runs the model, not what the index means.
RUNTIME_SETTINGS = ("batch_size", "device", "show_progress")


@dataclass(frozen=True)
class DenseConfig:
    """Encoder settings. Prefixes left as ``None`` become E5's ``"query: "``/``"passage: "``
    when the model name contains ``e5`` (E5 was trained with them) and ``""`` otherwise."""

    model_name_or_path: str = "intfloat/e5-base-v2"
    query_prefix: str | None = None
    passage_prefix: str | None = None
    batch_size: int = 64
    device: str = "cpu"
    normalize: bool = True
    fp16: bool = False  # store vectors as float16 on disk (half the size); search runs in float32
    show_progress: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        uses_e5_prefixes = "e5" in self.model_name_or_path.lower()
        if self.query_prefix is None:
            object.__setattr__(self, "query_prefix", _E5_QUERY_PREFIX if uses_e5_prefixes else "")
        if self.passage_prefix is None:
            object.__setattr__(self, "passage_prefix", _E5_PASSAGE_PREFIX if uses_e5_prefixes else "")
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")


class DenseRetriever(InMemoryRetriever):
    """Exact nearest neighbours over passage embeddings; ``search`` is thread-safe."""

    kind = "dense"

    def __init__(self, passages: list[Document], embeddings: np.ndarray, config: DenseConfig, model: Any) -> None:
        super().__init__(passages)
        if embeddings.shape[0] != len(self):
            raise ValueError(f"{embeddings.shape[0]} embeddings for {len(self)} passages")
        self.config = config
        self._model = model
        self._embeddings = embeddings
        self.searcher = FlatSearcher(embeddings)
        self.encoder = query_encoder(model, config)

    @property
    def dimension(self) -> int:
        return int(self._embeddings.shape[1])

    @classmethod
    def from_documents(
        cls, documents: Iterable[Document], config: DenseConfig | None = None, model: Any = None
    ) -> "DenseRetriever":
        """Encode every passage; pass an already loaded ``model`` to skip loading it again."""
        config = config or DenseConfig()
        passages = as_passages(documents)
        model = model if model is not None else load_encoder(config)
        embeddings = encode_texts(
            model, [config.passage_prefix + passage.contents for passage in passages], config, config.show_progress
        )
        return cls(passages, embeddings, config, model)

    def _top_k(self, queries: list[str], k: int) -> list[list[Hit]]:
        return compute_thread().run(self._rank, [self.config.query_prefix + query for query in queries], k)

    def _rank(self, texts: list[str], k: int) -> list[list[Hit]]:
        return vector_hits(*self.searcher.search(self.encoder.encode(texts), k))

    def _save_index(self, directory: Path) -> None:
        stored = self._embeddings.astype(np.float16 if self.config.fp16 else np.float32)
        np.save(directory / _EMBEDDINGS_NAME, stored, allow_pickle=False)

    def _manifest_fields(self) -> dict[str, Any]:
        import faiss
        import sentence_transformers

        return {
            "config": {key: value for key, value in asdict(self.config).items() if key not in RUNTIME_SETTINGS},
            "dimension": self.dimension,
            "library": {"sentence_transformers": sentence_transformers.__version__, "faiss": faiss.__version__},
        }

    @classmethod
    def _from_saved(
        cls, directory: Path, manifest: dict[str, Any], passages: list[Document], **overrides: Any
    ) -> "DenseRetriever":
        unknown = sorted(set(overrides) - set(RUNTIME_SETTINGS) - {"model"})
        if unknown:
            raise TypeError(f"a saved dense index takes only {RUNTIME_SETTINGS} (and model), got {unknown}")
        model = overrides.pop("model", None)
        config = config_from_manifest(directory, manifest, DenseConfig, **overrides)
        stored = read_index_file(directory, _EMBEDDINGS_NAME, lambda path: np.load(path, allow_pickle=False))
        embeddings = stored.astype(np.float32)
        dimension = manifest_section(manifest, "dimension")
        if embeddings.shape != (len(passages), dimension):
            raise IndexDirError(
                f"{directory}: {_EMBEDDINGS_NAME} has shape {embeddings.shape}, "
                f"the manifest says {(len(passages), dimension)}"
            )
        model = model if model is not None else load_encoder(config)
        if model_dimension(model) != dimension:
            raise IndexDirError(
                f"{directory}: model {config.model_name_or_path!r} makes {model_dimension(model)}-d vectors, "
                f"the index holds {dimension}-d vectors"
            )
        return cls(passages, embeddings, config, model)


def load_encoder(config: DenseConfig) -> Any:
    """The sentence-transformers model named by ``config``, on ``config.device``, loaded on
    the compute thread (loading runs torch ops, which would give the caller a thread team)."""
    return compute_thread().run(_load_encoder, config)


def _load_encoder(config: DenseConfig) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise ImportError(
            "dense retrieval needs sentence-transformers and faiss: pip install 'deepresearch-gym[dense]'"
        ) from error
    try:
        return SentenceTransformer(config.model_name_or_path, device=config.device)
    except (OSError, ValueError) as error:
        raise OSError(
            f"could not load the encoder {config.model_name_or_path!r} on {config.device!r}: {error}"
        ) from error


def query_encoder(model: Any, config: DenseConfig) -> QueryEncoder:
    """The fastest exact query encoder for ``model`` (checked on the compute thread)."""
    return compute_thread().run(QueryEncoder, model, config.batch_size, config.normalize)


def encode_texts(model: Any, texts: list[str], config: DenseConfig, show_progress: bool) -> np.ndarray:
    """Passages (or anything) through the wrapper's ``encode``, on the compute thread."""
    return compute_thread().run(_encode_texts, model, texts, config, show_progress)


def _encode_texts(model: Any, texts: list[str], config: DenseConfig, show_progress: bool) -> np.ndarray:
    vectors = model.encode(
        texts,
        batch_size=config.batch_size,
        show_progress_bar=show_progress,
        convert_to_numpy=True,
        normalize_embeddings=config.normalize,
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def model_dimension(model: Any) -> int | None:
    # sentence-transformers 6 renamed get_sentence_embedding_dimension to get_embedding_dimension.
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return getter()
