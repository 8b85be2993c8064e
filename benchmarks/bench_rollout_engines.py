"""vLLM vs transformers engine on multi-turn episodes: generated tokens/s, side by side.

``--episodes`` episodes (32 by default) of DeepResearch-Wiki-v0 (demo world, research
protocol unless ``--env-kwargs`` says otherwise), sampled at temperature 1 with the same
seeds, run through ``run_rollouts`` (all active episodes generate together each turn; env
steps in threads). ``--model`` takes a model folder or a ``.gguf`` file (converted once,
cached); default: the demo's tiny model. Each engine gets one short warm-up call, then
``--rounds`` timed rounds. Reports generated tokens/s and the share of rollout time spent
in env steps. Prints JSON. Goal (issues #3, #12): vLLM ≥ 3× transformers.

    .venv/bin/python benchmarks/bench_rollout_engines.py --model SmolLM2-135M-Instruct.Q4_1.gguf \
        --episodes 64 --prompt-mode chat --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import time

import gymnasium as gym
import torch

import deepresearch  # noqa: F401
from deepresearch.agents import RolloutConfig, SamplingConfig, TurnEncoder, default_tiny_model, load_policy, make_engine, run_rollouts
from deepresearch.agents.models.gguf import resolve_model_source
from deepresearch.agents.rollout.request import RolloutRequest


def measure(engine, encoder: TurnEncoder, episodes: int, rounds: int, env_kwargs: dict) -> dict[str, float]:
    envs = [gym.make("DeepResearch-Wiki-v0", **{"max_turns": 4, **env_kwargs}) for _ in range(episodes)]
    config = RolloutConfig(max_new_tokens_per_turn=64, max_response_tokens=768, seed=0)
    prompt, info = envs[0].reset(options={"index": 0})
    engine.generate([encoder.encode_prompt(prompt, info.get("messages"))] * 2, SamplingConfig(max_new_tokens=8, seed=1))  # warm-up
    rates, env_shares, tokens = [], [], []
    for _ in range(rounds):
        resets = [{"seed": i, "options": {"index": i}} for i in range(episodes)]
        start = time.perf_counter()
        _, stats = run_rollouts(RolloutRequest(engine, envs, resets, list(range(episodes)), config, encoder))
        elapsed = time.perf_counter() - start
        rates.append(stats.generated_tokens / elapsed)
        env_shares.append(stats.env_seconds / elapsed)
        tokens.append(stats.generated_tokens)
    order = sorted(range(rounds), key=lambda i: rates[i])
    middle = order[rounds // 2]
    return {
        "tokens_per_s_median": round(rates[middle], 1),
        "tokens_per_s_all": [round(r, 1) for r in rates],
        "env_share_of_rollout_time": round(env_shares[middle], 4),
        "generated_tokens_all": tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default=None, help="model directory or .gguf file (default: the demo's tiny model)")
    parser.add_argument("--prompt-mode", choices=["text", "chat"], default="text", help="chat: the model's chat template (instruct models)")
    parser.add_argument("--env-kwargs", default="{}", help="DeepResearch-Wiki-v0 kwargs as JSON (default: the demo world)")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
    path = resolve_model_source(args.model) if args.model else str(default_tiny_model())
    env_kwargs = json.loads(args.env_kwargs)
    model, tokenizer = load_policy(path, torch.device("cpu"))
    encoder = TurnEncoder.for_tokenizer(tokenizer, args.prompt_mode)
    hf = measure(make_engine("hf", model, tokenizer=tokenizer), encoder, args.episodes, args.rounds, env_kwargs)
    vllm_engine = make_engine("vllm", path, tokenizer=tokenizer, max_model_len=2048, enforce_eager=True)
    vllm = measure(vllm_engine, encoder, args.episodes, args.rounds, env_kwargs)
    print(json.dumps({
        "benchmark": "rollout_engines_multi_turn",
        "episodes": args.episodes,
        "model": path,
        "prompt_mode": args.prompt_mode,
        "env_kwargs": env_kwargs,
        "parameters": sum(p.numel() for p in model.parameters()),
        "load_average_1m": os.getloadavg()[0],
        "hf": hf,
        "vllm": vllm,
        "vllm_over_hf": round(vllm["tokens_per_s_median"] / hf["tokens_per_s_median"], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
