"""What the verl tests share: the environment of every verl process, the example files they run.

Ray workers import the stand-in modules of this folder (and tests/scripted_policy.py) by
name, so both folders go on their PYTHONPATH. ``ray.init`` with no address starts a private local cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
EXAMPLES = REPO_ROOT / "examples" / "verl"
# What every verl process of these tests gets: our stand-in modules importable, one
# BLAS thread each (two cores are shared by many processes), no .pyc in the checkout.
WORKER_ENV = {
    "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def tiny_model_path() -> str:
    """The tiny offline model (built once per machine, then cached). Not a conftest fixture:
    a second conftest.py here would shadow tests/conftest.py for modules importing from it."""
    from deepresearch.agents import default_tiny_model

    return str(default_tiny_model())


def write_demo_dataset(out: Path, limit: int) -> Path:
    """verl's RL parquet for the demo world's questions, by our converter (examples/verl/make_dataset.py)."""
    command = [sys.executable, str(EXAMPLES / "make_dataset.py"), "--qa", "demo", "--protocol", "search_r1", "--limit", str(limit), "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return out


def example_agent_loop(out: Path, **overrides: Any) -> Path:
    """examples/verl/agent_loop.yaml with ``overrides`` applied to its deepresearch_env entry."""
    from omegaconf import OmegaConf

    entries = OmegaConf.load(EXAMPLES / "agent_loop.yaml")
    entry = next(e for e in entries if e.name == "deepresearch_env")
    for key, value in overrides.items():
        OmegaConf.update(entry, key, value, merge=False)
    OmegaConf.save(entries, out)
    return out
