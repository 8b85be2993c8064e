"""Query vectors without the sentence-transformers wrapper's per-call overhead.

``SentenceTransformer.encode`` costs ~1 ms per call beyond the model itself (argument
handling, length sorting, feature dicts, module hooks, device moves), which is a tenth of
a single MiniLM query on a CPU core. For the common pipeline — a Hugging Face transformer,
mean pooling, optional normalisation — ``QueryEncoder`` runs tokenizer, forward pass and
pooling directly. It takes that path only after checking, on probe texts at load time,
that it gives the wrapper's vectors (within ``tolerance``); any other pipeline (CLS
pooling, dense layers, prompts, a backend it does not know) goes through the wrapper.

Batches are cut by token length, not by count: a batch is padded to its longest text,
and NQ questions run 10 to 22 tokens, so one batch of 16 spends ~45% of its work on
padding. The texts are tokenized once, sorted by length and split into runs that
minimise padded tokens plus ``forward_overhead_tokens`` per forward pass (the fixed cost
of one pass: ~6 ms for MiniLM on these 2 cores, as much as ~45 tokens of work).
Padding changes the vectors only in the last float bits (masked positions get no
attention weight), well inside the tolerance.

On a CPU the direct path runs a copy of the transformer whose linear layers use oneDNN
(``torch.utils.mkldnn``) instead of torch's default BLAS (MKL): on the AMD EPYC cores
here MKL's sgemm reached ~35 GFLOP/s where OpenBLAS and oneDNN reach ~100, and a MiniLM
batch of 16 took 2.5 ms a query instead of 4.4. The copy is checked like the rest (its
vectors differ from the wrapper's by ~2e-7) and dropped for the plain model if it fails.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np

# Texts of different lengths, so padding and the attention mask take part in the check.
PROBE_TEXTS = (
    "who wrote the declaration of independence",
    "what is the boiling point of water at the top of mount everest in degrees celsius",
    "Uranus",
)
DIRECT_PIPELINE = ("Transformer", "Pooling")


class QueryEncoder:
    """Unit (or raw) vectors for a list of texts, via the direct path when it is exact."""

    def __init__(
        self, model: Any, batch_size: int, normalize: bool, tolerance: float = 1e-6, forward_overhead_tokens: int = 48
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.normalize = normalize
        self.forward_overhead_tokens = forward_overhead_tokens
        self.kernel = "wrapper"  # or "onednn" / "default": the direct path's linear layers
        self._transformer: Any = None
        if _is_mean_pooling_pipeline(model):
            for kernel, transformer in _direct_candidates(model[0].auto_model):
                self._transformer = transformer
                if self._direct_matches_wrapper(tolerance):
                    self.kernel = kernel
                    break
                self._transformer = None

    @property
    def direct(self) -> bool:
        """Whether ``encode`` takes the direct path."""
        return self._transformer is not None

    def encode(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dimension)`` float32, C-contiguous."""
        vectors = self.encode_direct(texts) if self.direct else self.encode_with_wrapper(texts)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_with_wrapper(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(
            list(texts), batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True, normalize_embeddings=self.normalize
        )

    def encode_direct(self, texts: list[str]) -> np.ndarray:
        """Tokenized once, run in length-sorted runs (``length_runs``), returned in the
        caller's order."""
        tokenizer = self.model[0].tokenizer
        encoded = tokenizer(list(texts), truncation="longest_first", max_length=self.model.max_seq_length)
        lengths = [len(ids) for ids in encoded["input_ids"]]
        order = np.argsort(lengths, kind="stable")
        vectors = np.empty((len(texts), self._dimension()), dtype=np.float32)
        sorted_lengths = [lengths[position] for position in order]
        for start, end in length_runs(sorted_lengths, self.batch_size, self.forward_overhead_tokens):
            rows = order[start:end]
            features = {name: [values[row] for row in rows] for name, values in encoded.items()}
            vectors[rows] = self._forward(tokenizer.pad(features, return_tensors="pt"))
        return vectors

    def _forward(self, features: Any) -> np.ndarray:
        import torch

        device = self.model[0].auto_model.device
        features = {name: tensor.to(device) for name, tensor in features.items()}
        with torch.inference_mode():
            hidden = self._transformer(**features, return_dict=True).last_hidden_state
            mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            if self.normalize or len(self.model) == len(DIRECT_PIPELINE) + 1:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            return pooled.float().cpu().numpy()

    def _dimension(self) -> int:
        return int(self.model[0].auto_model.config.hidden_size)

    def _direct_matches_wrapper(self, tolerance: float) -> bool:
        texts = list(PROBE_TEXTS)
        try:
            direct = self.encode_direct(texts)
        except (TypeError, ValueError, KeyError, AttributeError, RuntimeError):
            return False  # a tokenizer or model this path does not know how to call
        return direct.shape == (len(texts), self._dimension()) and bool(np.abs(direct - self.encode_with_wrapper(texts)).max() <= tolerance)


def _direct_candidates(auto_model: Any) -> list[tuple[str, Any]]:
    """The transformers to try for the direct path, fastest first: on a CPU with oneDNN, a
    copy whose linear layers run on it; then the model itself."""
    import torch

    candidates = [("default", auto_model)]
    if auto_model.device.type == "cpu" and torch.backends.mkldnn.is_available():
        try:
            with warnings.catch_warnings():  # its modules are TorchScript, whose decorators warn
                warnings.simplefilter("ignore", DeprecationWarning)
                import torch.utils.mkldnn

                candidates.insert(0, ("onednn", torch.utils.mkldnn.to_mkldnn(copy.deepcopy(auto_model))))
        except (ImportError, RuntimeError, TypeError) as error:  # gone from this torch, or a layer it cannot take
            warnings.warn(f"no oneDNN copy of the encoder ({error}); its linear layers use torch's default", stacklevel=2)
    return candidates


def length_runs(sorted_lengths: list[int], max_rows: int, overhead_tokens: int) -> list[tuple[int, int]]:
    """Split ascending lengths into consecutive ``(start, end)`` runs of at most
    ``max_rows`` that minimise the padded tokens (rows x longest) plus ``overhead_tokens``
    per run: an exact dynamic programme, O(n x max_rows)."""
    count = len(sorted_lengths)
    cost = [0] + [float("inf")] * count
    cut = [0] * (count + 1)
    for end in range(1, count + 1):
        longest = sorted_lengths[end - 1]
        for start in range(max(0, end - max_rows), end):
            candidate = cost[start] + overhead_tokens + (end - start) * longest
            if candidate < cost[end]:
                cost[end], cut[end] = candidate, start
    runs, end = [], count
    while end > 0:
        runs.append((cut[end], end))
        end = cut[end]
    return runs[::-1]


def _is_mean_pooling_pipeline(model: Any) -> bool:
    """Transformer -> mean Pooling (-> Normalize): the modules' class names and the
    pooling config; the probe check decides the rest."""
    try:
        names = tuple(type(module).__name__ for module in model)
    except TypeError:  # not a sentence-transformers module list
        return False
    if names not in (DIRECT_PIPELINE, (*DIRECT_PIPELINE, "Normalize")):
        return False
    pooling = model[1].get_config_dict()
    legacy_modes = {key: value for key, value in pooling.items() if key.startswith("pooling_mode_")}
    mean_only = pooling.get("pooling_mode") == "mean" or legacy_modes == {
        **dict.fromkeys(legacy_modes, False),
        "pooling_mode_mean_tokens": True,
    }
    return mean_only and pooling.get("include_prompt", True)
