"""What the core install (gymnasium, numpy, bm25s, PyStemmer, tqdm) can do without the
extras: each check runs a fresh interpreter in which the extras' modules cannot be
imported (``sys.modules[name] = None`` makes ``import name`` raise ImportError), so a
stray top-level import anywhere on the path fails the test."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from test_retrieval_cases import ranked_ids, write_corpus

from deepresearch.envs.retrieval import RemoteConfig, RemoteRetriever

GPU_STACK = ("torch", "transformers", "vllm", "sentence_transformers", "faiss")
EXTRAS = ("requests", "urllib3", *GPU_STACK)


def python_without(blocked: tuple[str, ...], code: str) -> list[str]:
    """argv of a Python that runs ``code`` with the ``blocked`` modules unimportable."""
    prelude = f"import sys\nfor name in {list(blocked)!r}:\n    sys.modules[name] = None\n"
    return [sys.executable, "-c", prelude + textwrap.dedent(code)]


def run_without(blocked: tuple[str, ...], code: str) -> str:
    done = subprocess.run(python_without(blocked, code), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_blocker_really_blocks() -> None:
    """The helper itself: a blocked module that the code needs makes it fail."""
    done = subprocess.run(python_without(("json",), "import json"), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr


def test_core_install_imports_and_runs_a_bm25_wiki_episode() -> None:
    out = run_without(
        EXTRAS,
        """
        import gymnasium as gym
        import deepresearch
        from deepresearch.envs.retrieval import RemoteRetriever

        env = gym.make("DeepResearch-Wiki-v0", retriever="bm25")
        env.reset(seed=0)
        observation = env.step("<search> Jerved Gruvar born </search>")[0]
        assert observation.startswith(" <result>\\n") and "Jerved Gruvar" in observation, observation
        try:
            RemoteRetriever("http://127.0.0.1:9")
        except ImportError as error:
            print(error)
        """,
    )
    assert "pip install 'deepresearch-gym[server]'" in out


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["index", "build", "--help"], ["serve-retriever", "--help"]])
def test_cli_help_and_version_need_no_gpu_stack(argv: list[str]) -> None:
    out = run_without(GPU_STACK, f"from deepresearch.cli import main\nsys.exit(main({argv!r}))")
    assert ("0.1.0" if argv == ["--version"] else "usage: deepresearch") in out


def test_cli_builds_and_serves_a_bm25_index_without_the_gpu_stack(tmp_path: Path) -> None:
    from test_retrieval_server import _free_port, _wait_until_healthy

    corpus, out = write_corpus(tmp_path / "corpus.jsonl"), tmp_path / "index"
    cli = "from deepresearch.cli import main\nsys.exit(main(sys.argv[1:]))"
    subprocess.run([*python_without(GPU_STACK, cli), "index", "build", "--kind", "bm25", "--corpus", str(corpus), "--out", str(out), "--quiet"], check=True, timeout=300)
    assert json.loads((out / "manifest.json").read_text())["kind"] == "bm25"
    port = _free_port()
    server = subprocess.Popen([*python_without(GPU_STACK, cli), "serve-retriever", "--index", str(out), "--port", str(port)], stderr=subprocess.PIPE)
    try:
        remote = RemoteRetriever(f"http://127.0.0.1:{port}", RemoteConfig(retries=0))
        _wait_until_healthy(remote, server, limit_s=120)
        assert ranked_ids(remote.search(["Which river flows to the Black Sea?"], 1)) == [["danube"]]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_replayed_eval_and_the_viewer_need_no_gpu_stack(tmp_path: Path) -> None:
    """``deepresearch eval --replay`` then ``deepresearch view`` on its results, torch unimportable."""
    from deepresearch.envs import make_wiki_env

    env = make_wiki_env(protocol="search_r1", max_turns=3)
    _, info = env.reset(options={"index": 0})
    env.step(env.protocol.search_action(info["metadata"]["oracle_queries"][0]))
    info = env.step(env.protocol.answer_action(info["golden_answers"][0]))[4]
    record = {"id": info["question_id"], "question": info["question"], "golden_answers": info["golden_answers"],
              "transcript": info["transcript"], "segments": info["segments"]}
    replay = tmp_path / "recorded.jsonl"
    replay.write_text(json.dumps(record) + "\n", encoding="utf-8")
    cli = "from deepresearch.cli import main\nsys.exit(main(sys.argv[1:]))"
    evaluated = subprocess.run([*python_without(GPU_STACK, cli), "eval", "--replay", str(replay), "--protocol", "search_r1",
                                "--max-turns", "3", "--out", str(tmp_path / "eval"), "--quiet"], capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "| recorded | 1.000 |" in evaluated.stdout  # the oracle's answer replayed: EM 1
    viewed = subprocess.run([*python_without(GPU_STACK, cli), "view", str(tmp_path / "eval" / "results.jsonl"), "-o", str(tmp_path / "v.html")],
                            capture_output=True, text=True, timeout=300)
    assert viewed.returncode == 0, viewed.stderr[-3000:]
    assert info["golden_answers"][0] in (tmp_path / "v.html").read_text(encoding="utf-8")


def test_every_agents_export_is_its_object_even_after_all_submodules_are_imported() -> None:
    """A lazy export named like its submodule would be shadowed once the submodule is imported."""
    import importlib
    import pkgutil
    import types

    import deepresearch.agents as agents

    imported = []
    for module in pkgutil.walk_packages(agents.__path__, prefix="deepresearch.agents."):
        # These import verl / verifiers themselves, which live in their own venvs (make verl-env / verifiers-env).
        if not module.name.endswith(("verl_agent_loop", "adapters.verifiers")):
            importlib.import_module(module.name)
            imported.append(module.name)
    assert "deepresearch.agents.rollout.engines.hf" in imported and "deepresearch.agents.train.trainer" in imported
    shadowed = [name for name in agents.__all__ if isinstance(getattr(agents, name), types.ModuleType)]
    assert shadowed == [] and len(agents.__all__) > 30


def test_the_library_pins_no_exact_torch_or_transformers() -> None:
    """Extras install into the user's stack; the exact CPU torch pin lives in the Makefile only."""
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    pinned = [r for r in requirements if r.split("==")[0].strip() in ("torch", "transformers") and "==" in r]
    assert pinned == [], pinned
    assert "torch==2.13.0" in (REPO_ROOT / "Makefile").read_text()


def test_every_package_folder_is_in_the_wheel() -> None:
    """``packages`` is an explicit list (package-dir maps three folders into one namespace): a
    folder left out of it works in an editable install and is missing from the wheel."""
    import tomllib

    setuptools = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set()
    for name, folder in setuptools["package-dir"].items():
        for init in (REPO_ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO_ROOT / folder)
            found.add(".".join((name, *relative.parts)))
    assert sorted(found - set(setuptools["packages"])) == []
