"""One training process for tests/test_distributed.py: ``python`` alone, or one rank under ``torchrun``.

    python tests/distributed_worker.py CONFIG_JSON

The engine answers half of each group right (``HalfRightEngine``, logprobs from an unsharded
copy of the initial model), so runs at any world size see exactly the same episodes. Each
process writes its pid to ``OUTPUT/pid-rank<r>`` so a test can kill one rank.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from agents_helpers import HalfRightEngine

from deepresearch.agents import GRPOConfig, GRPOTrainer, default_tiny_model, load_policy
from deepresearch.envs import get_protocol, load_qa


def main() -> None:
    config = GRPOConfig.from_dict(json.loads(sys.argv[1]))
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / f"pid-rank{os.environ.get('RANK', '0')}").write_text(str(os.getpid()))
    model, tokenizer = load_policy(str(default_tiny_model()), torch.device("cpu"))
    golds = {item.question: item.golden_answers[0] for item in load_qa("demo", split="train")}
    engine = HalfRightEngine(model, tokenizer, golds, get_protocol(config.env_kwargs.get("protocol", "research")))
    trainer = GRPOTrainer(config, log=lambda line: print(line, flush=True), engine=engine, progress=False)
    trainer.train()
    trainer.close()


if __name__ == "__main__":
    main()
