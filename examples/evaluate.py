"""Evaluate a policy on QA datasets: the same as ``deepresearch eval`` (see ``--help``).

    python examples/evaluate.py --policy replay --protocol search_r1 \
        --replay ../shared/data/searchr1_trajectories/nq_base_archive_v1.json \
        --corpus ../shared/data/wiki18_sample/passages.jsonl --max-turns 32 --out runs/eval_replay
    python examples/evaluate.py --endpoint http://127.0.0.1:8000/v1 --model my-model \
        --dataset nq --dataset bamboogle --data-dir ../shared/data/qa --limit 100
"""

from __future__ import annotations

import argparse
import sys

from deepresearch.agents.eval.cli import configure


def main() -> int:
    parser = argparse.ArgumentParser(prog="evaluate.py")
    handler = configure(parser)
    return handler(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
