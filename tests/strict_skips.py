"""The strict switch: ``DEEPRESEARCH_STRICT_TESTS=1`` (set by ``.ci/run``) turns every skip into
a failure naming what is missing (a package, a binary, a model, ``../shared/data``), so CI
cannot stay green while a suite silently skips. Local runs keep skipping with the reason.

A pytest plugin: tests/conftest.py imports its hooks; ``-p strict_skips`` loads it alone.
tests/README.md lists the skips a run may still show, and why.
"""

from __future__ import annotations

import os

import pytest

STRICT_SWITCH = "DEEPRESEARCH_STRICT_TESTS"


def strict_tests() -> bool:
    return os.environ.get(STRICT_SWITCH, "") not in ("", "0")


def _fail_instead_of_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    """Under the strict switch, a skipped report becomes a failure carrying the skip's reason."""
    if not (strict_tests() and report.skipped) or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    report.outcome = "failed"
    report.longrepr = f"{STRICT_SWITCH}=1: this would have been skipped, and strict runs skip nothing: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    _fail_instead_of_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> object:
    """Module-level skips (``importorskip`` at import time) happen while collecting."""
    outcome = yield
    _fail_instead_of_skip(outcome.get_result())
