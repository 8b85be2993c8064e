"""The ``deepresearch`` command; each subcommand lives with the room that owns it."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

# name -> (help, module path of a ``configure(parser) -> handler`` function)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("evaluate a policy on QA datasets (results JSONL + table)", "deepresearch.agents.eval.cli:configure"),
    "data": ("prepare QA data: drop questions a model answers without search", "deepresearch.agents.contamination_filter:configure"),
    "view": ("write a static HTML viewer of trajectories", "deepresearch.agents.viewer.cli:configure"),
    "train": ("GRPO from a YAML config / recipe with key=value overrides (torchrun: data-parallel)", "deepresearch.agents.train.cli:configure"),
    "index": ("build a local retrieval index (flat/hnsw/ivfpq/bm25)", "deepresearch.envs.retrieval.cli:configure_index"),
    "serve-retriever": ("serve an index over HTTP (Search-R1 /retrieve)", "deepresearch.envs.retrieval.cli:configure_serve"),
    "serve-env": ("serve an env over OpenEnv (WebSocket sessions, step/reset/state)", "deepresearch.envs.serving.server:configure"),
    "web": ("live-web tools: record/replay snapshots (export, import, stats, prune)", "deepresearch.envs.web.snapshots.snapshot_cli:configure"),
    "check-template": ("check a tokenizer's chat template for exact multi-turn rollouts", "deepresearch.agents.template_check.cli:configure"),
}


def build_parser(command: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    """The parser, with only ``command``'s module imported and configured: the others may
    import torch (``eval``, ``view``), which ``--version`` or a BM25 index must not need."""
    import importlib

    parser = argparse.ArgumentParser(prog="deepresearch", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {}
    for name, (help_text, target) in SUBCOMMANDS.items():
        subparser = sub.add_parser(name, help=help_text)
        if name == command:
            module_name, _, function_name = target.partition(":")
            handlers[name] = getattr(importlib.import_module(module_name), function_name)(subparser)
    return parser, handlers


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The top level has only flags, so the first other word names the subcommand.
    command = next((word for word in argv if not word.startswith("-")), None)
    parser, handlers = build_parser(command)
    args = parser.parse_args(argv)
    if args.version:
        from deepresearch import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
