"""vLLM vs transformers engine on multi-turn episodes: generated tokens/s, side by side.

32 episodes of DeepResearch-Wiki-v0 (demo world, research protocol) with the tiny
model, sampled at temperature 1 with the same seeds, run through ``run_rollouts``
(all active episodes generate together each turn; env steps in threads). Prints JSON.
Goal (issue #3): vLLM ≥ 3× transformers.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import gymnasium as gym
import torch

import deepresearch  # noqa: F401
from deepresearch.agents import RolloutConfig, TurnEncoder, default_tiny_model, load_policy, make_engine, run_rollouts


def measure(engine, tokenizer, episodes: int, rounds: int) -> dict[str, float]:
    envs = [gym.make("DeepResearch-Wiki-v0", max_turns=4) for _ in range(episodes)]
    encoder = TurnEncoder(tokenizer, "text")
    config = RolloutConfig(max_new_tokens_per_turn=64, max_response_tokens=768, seed=0)
    rates = []
    for round_index in range(rounds + 1):  # round 0 warms up
        resets = [{"seed": i, "options": {"index": i}} for i in range(episodes)]
        start = time.perf_counter()
        _, stats = run_rollouts(engine, envs, resets, list(range(episodes)), config, encoder)
        elapsed = time.perf_counter() - start
        if round_index:
            rates.append(stats.generated_tokens / elapsed)
    rates.sort()
    return {"tokens_per_s_median": rates[len(rates) // 2], "tokens_per_s_all": [round(r, 1) for r in rates]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default=None, help="model directory (default: the demo's tiny model)")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
    path = args.model or str(default_tiny_model())
    model, tokenizer = load_policy(path, torch.device("cpu"))
    hf = measure(make_engine("hf", model, tokenizer=tokenizer), tokenizer, args.episodes, args.rounds)
    vllm_engine = make_engine("vllm", path, tokenizer=tokenizer, max_model_len=2048, enforce_eager=True)
    vllm = measure(vllm_engine, tokenizer, args.episodes, args.rounds)
    print(json.dumps({
        "benchmark": "rollout_engines_multi_turn",
        "episodes": args.episodes,
        "model": path,
        "parameters": sum(p.numel() for p in model.parameters()),
        "load_average_1m": os.getloadavg()[0],
        "hf": hf,
        "vllm": vllm,
        "vllm_over_hf": round(vllm["tokens_per_s_median"] / hf["tokens_per_s_median"], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
