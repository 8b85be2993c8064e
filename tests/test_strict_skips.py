"""The strict switch CI runs under: every kind of skip becomes a failure that names what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from strict_skips import STRICT_SWITCH

SKIPPING_TESTS = '''
import pytest

def test_a_missing_binary():
    pytest.skip("redis-server not found")

@pytest.mark.xfail(reason="an expected failure is not a skip")
def test_expected_failure():
    assert False

def test_that_runs():
    pass
'''
SKIPPING_MODULE = 'import pytest\npytest.importorskip("no_such_package_here", reason="the frobnicator extra")\n'


def run_pytest(folder: Path, strict: bool) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != STRICT_SWITCH}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent)
    if strict:
        env[STRICT_SWITCH] = "1"
    command = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "strict_skips", "-p", "no:cacheprovider", str(folder)]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_local_runs_skip_with_the_reason_and_strict_runs_fail_naming_it(tmp_path: Path) -> None:
    (tmp_path / "test_tests.py").write_text(SKIPPING_TESTS)
    local = run_pytest(tmp_path, strict=False)
    assert local.returncode == 0 and "1 passed, 1 skipped, 1 xfailed" in local.stdout, local.stdout
    strict = run_pytest(tmp_path, strict=True)
    assert strict.returncode == 1 and "1 failed, 1 passed, 1 xfailed" in strict.stdout, strict.stdout
    assert f"{STRICT_SWITCH}=1" in strict.stdout and "redis-server not found" in strict.stdout


def test_a_module_skipped_at_import_fails_the_strict_run(tmp_path: Path) -> None:
    (tmp_path / "test_module.py").write_text(SKIPPING_MODULE)
    assert "1 skipped" in run_pytest(tmp_path, strict=False).stdout
    strict = run_pytest(tmp_path, strict=True)
    assert strict.returncode != 0 and "the frobnicator extra" in strict.stdout and "skipped" not in strict.stdout.splitlines()[-1]
