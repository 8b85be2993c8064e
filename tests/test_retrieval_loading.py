"""load_retriever: corpus file or saved directory in, cached retriever out."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_retrieval_cases import ranked_ids, write_corpus

from deepresearch.envs.retrieval import (
    BM25Config,
    BM25Retriever,
    IndexBuildConfig,
    build_index,
    clear_retriever_cache,
    load_retriever,
)
from deepresearch.envs.retrieval.open_index import kind_fits


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    clear_retriever_cache()
    return write_corpus(tmp_path / "corpus.jsonl")


def test_builds_bm25_from_a_corpus_file(corpus: Path) -> None:
    retriever = load_retriever(corpus, show_progress=False)
    assert isinstance(retriever, BM25Retriever)
    assert ranked_ids(retriever.search(["river Vienna"], 1)) == [["danube"]]


def test_loads_a_saved_directory_by_its_manifest(corpus: Path, tmp_path: Path) -> None:
    built = load_retriever(corpus, "bm25", config=BM25Config(k1=1.2), show_progress=False)
    directory = built.save(tmp_path / "index")
    loaded = load_retriever(directory)
    assert isinstance(loaded, BM25Retriever) and loaded.config == BM25Config(k1=1.2)
    assert ranked_ids(loaded.search(["Nobel"], 2)) == ranked_ids(built.search(["Nobel"], 2))
    with pytest.raises(ValueError, match="holds a 'bm25' index, but kind='dense'"):
        load_retriever(directory, "dense")


def test_dense_names_every_dense_kind_and_a_real_mismatch_is_an_error(corpus: Path, tmp_path: Path) -> None:
    assert all(kind_fits("dense", saved) for saved in ("flat", "hnsw", "ivfpq", "dense"))
    assert kind_fits(None, "bm25") and not kind_fits("flat", "hnsw") and not kind_fits("dense", "bm25")
    built = build_index(IndexBuildConfig(corpus, tmp_path / "bm25", kind="bm25", show_progress=False))
    for kind in ("dense", "flat"):
        with pytest.raises(ValueError, match=f"holds a 'bm25' index, but kind='{kind}' was asked for"):
            load_retriever(built, kind)
    assert ranked_ids(load_retriever(built, "bm25").search(["river Vienna"], 1)) == [["danube"]]


@pytest.mark.slow
def test_readme_train_and_eval_paths_open_a_built_flat_index(corpus: Path, tmp_path: Path) -> None:
    """README: ``deepresearch index build --kind flat --out wiki18_index/``, then env kwargs
    ``{"corpus": "wiki18_index/", "retriever": "dense"}`` and ``deepresearch eval --corpus
    wiki18_index/`` (no ``--retriever``)."""
    import gymnasium as gym
    from test_index_build import minilm_path

    from deepresearch.agents.eval.cli import _env_factory
    from deepresearch.agents.eval.suite_run import resolve_settings
    from deepresearch.cli import build_parser, main

    index = f"{tmp_path / 'wiki18_index'}/"
    assert main(["index", "build", "--corpus", str(corpus), "--model", minilm_path(), "--kind", "flat", "--out", index, "--quiet"]) == 0
    question = "Which river flows to the Black Sea?"
    env = gym.make("DeepResearch-Wiki-v0", corpus=index, retriever="dense").unwrapped
    assert env.backend.retriever.kind == "flat"
    env.reset(options={"question": question, "golden_answers": ["Danube"]})
    assert "The Danube flows" in env.step(env.protocol.search_action(question))[0]
    with pytest.raises(ValueError, match="holds a 'flat' index, but kind='bm25' was asked for"):
        gym.make("DeepResearch-Wiki-v0", corpus=index, retriever="bm25")
    parser, _ = build_parser("eval")

    def eval_env_factory(*flags: str):
        args = parser.parse_args(["eval", *flags])
        resolve_settings(args, None)  # what `deepresearch eval` does before it builds envs (no --suite)
        return _env_factory(args, None)

    evaluated = eval_env_factory("--corpus", index)().unwrapped
    assert evaluated.backend.retriever is env.backend.retriever  # the manifest's kind, and the cached index
    with pytest.raises(ValueError, match="kind='bm25'"):
        eval_env_factory("--corpus", index, "--retriever", "bm25")()


def test_unknown_kind_and_missing_source(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown retriever kind 'splade'"):
        load_retriever(corpus, "splade")
    with pytest.raises(ValueError, match="retriever source not found"):
        load_retriever(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="no manifest.json"):
        load_retriever(tmp_path)


def test_cache_builds_one_index_for_many_concurrent_callers(corpus: Path) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        retrievers = list(pool.map(lambda _: load_retriever(corpus, show_progress=False), range(64)))
    assert all(retriever is retrievers[0] for retriever in retrievers)
    assert load_retriever(corpus, show_progress=False, cache=False) is not retrievers[0]
    assert load_retriever(corpus, config=BM25Config(b=0.75), show_progress=False) is not retrievers[0]


def test_cache_rebuilds_when_the_corpus_changes(corpus: Path) -> None:
    before = load_retriever(corpus, show_progress=False)
    write_corpus(corpus, [{"id": "only", "contents": "a single passage about volcanoes"}])
    stat = corpus.stat()
    os.utime(corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = load_retriever(corpus, show_progress=False)
    assert after is not before and len(after) == 1


def test_importing_envs_does_not_import_the_gpu_stack() -> None:
    heavy = ("torch", "transformers", "sentence_transformers", "faiss")
    code = (
        "import sys, deepresearch.envs, deepresearch.envs.retrieval, deepresearch.envs.retrieval.open_index\n"
        f"print([name for name in {heavy!r} if name in sys.modules])"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
