"""Train a search agent with TRL's GRPOTrainer, our env supplying the rollouts (env text masked).

    pip install 'trl>=1.16'
    python examples/train_trl.py                      # tiny local model on the demo world, CPU
    python examples/train_trl.py --model Qwen/Qwen2.5-3B --protocol search_r1 \
        --env-kwargs '{"corpus": "wiki18_index/", "dataset": "nq_train.jsonl"}' --steps 200

The env's reward (the protocol's preset) is the only reward; the adapter hands TRL
``env_mask`` so retrieved documents never enter the loss. See docs/adapters.md.
"""

from __future__ import annotations

import argparse
import json
import os

import gymnasium as gym

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.agents import RolloutConfig, default_tiny_model
from deepresearch.agents.adapters.trl import TRLRolloutAdapter, env_reward
from deepresearch.envs import PROTOCOLS


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="HF id or path (default: the tiny local model)")
    parser.add_argument("--env-id", default="DeepResearch-Wiki-v0")
    parser.add_argument("--protocol", default="research", choices=sorted(PROTOCOLS))
    parser.add_argument("--env-kwargs", default="{}", help="extra env kwargs as JSON (corpus, dataset, ...)")
    parser.add_argument("--questions", type=int, default=64, help="training questions taken from the env's dataset")
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8, help="episodes per step (a multiple of --group-size)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-new-tokens", type=int, default=128, help="per turn")
    parser.add_argument("--max-response-tokens", type=int, default=512)
    parser.add_argument("--output-dir", default="runs/train_trl")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    env_kwargs = {"protocol": args.protocol, "max_turns": 4, **json.loads(args.env_kwargs)}

    def make_env():
        return gym.make(args.env_id, **env_kwargs)

    questions = make_env().unwrapped.questions[: args.questions]
    rollout = RolloutConfig(max_new_tokens_per_turn=args.max_new_tokens, max_response_tokens=args.max_response_tokens)
    adapter = TRLRolloutAdapter(make_env, questions, rollout)
    model_path = args.model or str(default_tiny_model())
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    config = GRPOConfig(
        output_dir=args.output_dir, per_device_train_batch_size=args.batch_size, num_generations=args.group_size,
        max_steps=args.steps, learning_rate=args.lr, logging_steps=1, report_to=[], save_strategy="no",
        max_completion_length=args.max_response_tokens, use_cpu=not torch.cuda.is_available(),
    )
    trainer = GRPOTrainer(model=model, reward_funcs=env_reward, args=config, train_dataset=adapter.dataset(),
                          processing_class=tokenizer, rollout_func=adapter)
    trainer.train()
    trainer.save_model(args.output_dir)
    for entry in trainer.state.log_history:
        print(json.dumps(entry))


if __name__ == "__main__":
    main()
