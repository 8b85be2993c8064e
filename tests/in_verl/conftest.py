"""Fixtures for running our code inside verl 0.9.1 (built by `make verl-env`, run by `make test-verl`)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model() -> str:
    from deepresearch.agents import default_tiny_model

    return str(default_tiny_model())
