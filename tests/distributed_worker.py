"""One process for tests/test_distributed.py: ``python`` alone, or one rank under ``torchrun``.

    python tests/distributed_worker.py CONFIG_JSON            # train
    python tests/distributed_worker.py CONFIG_JSON sync-check # the engine after a weight sync

Training: the engine answers half of each group right (``HalfRightEngine``, logprobs from an
unsharded copy of the initial model), so runs at any world size see exactly the same
episodes. Each process writes its pid to ``OUTPUT/pid-rank<r>`` so a test can kill one rank.

``sync-check``: the trainer with its own engine (``config.engine``); the sharded policy's
weights are changed, streamed into the engine, and the engine's greedy logprobs are compared
with the sharded policy's own; rank 0 writes ``OUTPUT/sync_check.json``.
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


def sync_check(config: GRPOConfig) -> None:
    from deepresearch.agents.grpo.masked_forward import masked_next_token_logprobs
    from deepresearch.agents.rollout.engines import SamplingConfig

    trainer = GRPOTrainer(config, log=lambda line: None, progress=False)
    prompt = trainer.tokenizer("Where was Velmora Quistad born?", add_special_tokens=False)["input_ids"]
    greedy = SamplingConfig(max_new_tokens=8, temperature=0.0)

    def engine_and_policy_logprobs() -> tuple[list[float], list[float]]:
        generated = trainer.engine.generate([prompt], greedy)[0]
        ids = torch.tensor([prompt + generated.token_ids])
        mask = torch.zeros((1, ids.shape[1] - 1), dtype=torch.long)
        mask[0, len(prompt) - 1 :] = 1
        with torch.no_grad():  # a forward of the sharded policy: every rank runs it
            policy = masked_next_token_logprobs(trainer.model, ids, torch.ones_like(ids), mask)[0]
        return generated.logprobs, policy[0, len(prompt) - 1 :].tolist()

    before_engine, before_policy = engine_and_policy_logprobs()
    with torch.no_grad():
        for parameter in trainer.model.parameters():  # each rank scales its own shards
            parameter.mul_(1.5)
    stale_engine, changed_policy = engine_and_policy_logprobs()
    trainer.sync_engine(trainer.step)
    synced_engine, synced_policy = engine_and_policy_logprobs()
    if trainer.parallel.is_main:
        result = {"before": [before_engine, before_policy], "stale": [stale_engine, changed_policy], "synced": [synced_engine, synced_policy]}
        (Path(config.output_dir) / "sync_check.json").write_text(json.dumps(result))
    trainer.close()


def main() -> None:
    config = GRPOConfig.from_dict(json.loads(sys.argv[1]))
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if sys.argv[2:] == ["sync-check"]:
        sync_check(config)
        return
    (output_dir / f"pid-rank{os.environ.get('RANK', '0')}").write_text(str(os.getpid()))
    model, tokenizer = load_policy(str(default_tiny_model()), torch.device("cpu"))
    golds = {item.question: item.golden_answers[0] for item in load_qa("demo", split="train")}
    engine = HalfRightEngine(model, tokenizer, golds, get_protocol(config.env_kwargs.get("protocol", "research")))
    trainer = GRPOTrainer(config, log=lambda line: print(line, flush=True), engine=engine, progress=False)
    trainer.train()
    trainer.close()


if __name__ == "__main__":
    main()
