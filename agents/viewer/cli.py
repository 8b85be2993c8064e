"""``deepresearch view SOURCE [-o page.html]``."""

from __future__ import annotations

import argparse
from typing import Callable

from deepresearch.agents.viewer.page import write_viewer


def configure(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("source", help="evaluation results.jsonl, a trajectory JSONL, or a run folder")
    parser.add_argument("-o", "--output", help="HTML file (default: <source>.html or <folder>/viewer.html)")
    return lambda args: _run(args.source, args.output)


def _run(source: str, output: str | None) -> int:
    print(write_viewer(source, output))
    return 0
