"""Data-parallel GRPO: the update on 1 vs N processes (torchrun + FSDP2), and on CUDA its MFU
and an end-to-end step split into generate / update / sync.

Why: issue #14 moves the trainer onto ``torch.distributed``. What has to hold: N processes
take the same optimizer step as one (tests/test_distributed.py checks that number for
number) and the update's throughput scales; on GPUs, a Qwen2.5-0.5B-shaped policy in bf16
should reach >= 35% MFU in the update.

* **cpu** (runs anywhere): the tiny demo model, one synthetic rollout batch (random ids,
  ``--rows`` sequences of ``--length`` tokens, the second half of each trained), timed over
  ``--rounds`` calls of ``grpo_update`` in one process and under ``torchrun
  --nproc-per-node N`` (each rank its block of rows, the agreed ``UpdatePlan``; FSDP2 on
  gloo). Reports tokens/s of the update (every token forwarded, and the trained ones) and
  the speed-up against one process with every core and against one process with one
  thread (what each of the N processes gets: ``cores / N``). On 2 cores there is little to
  gain; the comparison shows what sharding costs.
* **gpu** (only where CUDA is present; not run on a CPU-only machine): the same update on a
  randomly initialised Qwen2.5-0.5B-shaped model (24 layers, hidden 896, vocab 151,936) in
  FSDP2 bf16 over every visible GPU; MFU = model FLOPs / (time x peak bf16 FLOP/s of the
  device x processes), with the model FLOPs of ``update_flops`` (matmuls, causal attention,
  and the head only at the trained positions, which is all the masked forward computes). Then ``GRPOTrainer`` with vLLM on the demo world with the same body (the
  tiny tokenizer's vocabulary, since no Qwen tokenizer can be downloaded here), reading
  ``time/generate``, ``time/update`` and ``time/sync`` from its metrics.

    python benchmarks/bench_distributed.py [--processes 2] [--rounds 5] [--rows 16 --length 256]

Prints one JSON object. Timings on a shared machine are noisy: compare the rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0, "B200": 2250.0}
QWEN25_05B = dict(
    vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
    num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True, rope_theta=1_000_000.0,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2, help="processes of the data-parallel CPU run")
    parser.add_argument("--rounds", type=int, default=5, help="timed updates (after one warm-up)")
    parser.add_argument("--rows", type=int, default=16, help="sequences in the step (all processes together)")
    parser.add_argument("--length", type=int, default=256, help="tokens per sequence (the second half trained)")
    parser.add_argument("--micro-batch-size", type=int, default=4)
    parser.add_argument("--gpu-rows", type=int, default=64)
    parser.add_argument("--gpu-length", type=int, default=2048)
    parser.add_argument("--gpu-micro-batch-size", type=int, default=8)
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak (default: by device name)")
    parser.add_argument("--worker", choices=["update"], help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=["tiny", "qwen2.5-0.5b"], default="tiny", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser.parse_args()


# ------------------------------------------------------------------ the update, in one rank
def build_model(name: str, device: torch.device) -> Any:
    from transformers import AutoModelForCausalLM, Qwen2Config

    from deepresearch.agents import default_tiny_model

    torch.manual_seed(0)
    if name == "tiny":
        return AutoModelForCausalLM.from_pretrained(str(default_tiny_model()), dtype=torch.float32).to(device)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(Qwen2Config(**QWEN25_05B), dtype=torch.float32)


def synthetic_batch(rows: int, length: int, vocab: int) -> Any:
    """Random ids; the second half of every row is 'sampled by the policy' (loss mask 1)."""
    from deepresearch.agents.rollout.batch import RolloutBatch

    generator = torch.Generator().manual_seed(1)
    loss_mask = torch.zeros((rows, length), dtype=torch.long)
    loss_mask[:, length // 2 :] = 1
    return RolloutBatch(
        input_ids=torch.randint(0, vocab, (rows, length), generator=generator),
        attention_mask=torch.ones((rows, length), dtype=torch.long),
        loss_mask=loss_mask,
        rollout_logprobs=torch.zeros((rows, length)),
        rewards=torch.zeros(rows),
        group_ids=[row // 2 for row in range(rows)],
        lengths=torch.full((rows,), length),
    )


def update_flops(model: Any, rows: int, length: int) -> float:
    """Model FLOPs of one update (forward + backward = 3 x forward) over ``rows x length`` tokens."""
    config = model.config
    embedding = config.vocab_size * config.hidden_size
    body = sum(p.numel() for p in model.parameters()) - embedding * (1 if config.tie_word_embeddings else 2)
    tokens, trained = rows * length, rows * (length - length // 2)
    matmuls = 2 * body * tokens
    attention = 2 * 2 * config.num_hidden_layers * config.hidden_size * length * tokens / 2  # QK^T and AV, causal half
    head = 2 * embedding * trained  # the masked forward projects only trained positions
    return 3.0 * (matmuls + attention + head)


def run_update_worker(args: argparse.Namespace) -> None:
    """Time ``grpo_update`` in this process (one rank under torchrun) and write rank 0's numbers."""
    from deepresearch.agents.grpo.update import UpdateConfig, UpdatePlan, grpo_update, row_tokens
    from deepresearch.agents.train.distributed import DistributedConfig, Parallel
    from deepresearch.agents.train.sharding import shard_model

    cuda = args.model != "tiny"
    parallel = Parallel.from_environment("cuda" if cuda else "cpu")
    device = parallel.device("cuda" if cuda else "cpu")
    rows, length, micro = (args.gpu_rows, args.gpu_length, args.gpu_micro_batch_size) if cuda else (args.rows, args.length, args.micro_batch_size)
    model = build_model(args.model, device)
    flops = update_flops(model, rows, length)
    if parallel.is_distributed:  # one process trains as the single-process trainer does (bf16 autocast on CUDA)
        shard_model(model, DistributedConfig(param_dtype="bfloat16" if cuda else "float32"), device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    batch = synthetic_batch(rows, length, model.config.vocab_size)
    config = UpdateConfig(micro_batch_size=micro, log_entropy=False)
    mine = batch.select(list(parallel.block(rows)))
    plan = UpdatePlan.across(parallel.all_gather_objects(row_tokens(mine)), parallel.rank, config)
    advantages = torch.randn(len(mine), generator=torch.Generator().manual_seed(2))
    seconds = []
    for round_index in range(args.rounds + 1):
        parallel.barrier()
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        grpo_update(model, optimizer, mine, advantages, config, plan=plan)
        if cuda:
            torch.cuda.synchronize()
        elapsed = parallel.all_reduce([time.perf_counter() - started], "max")[0]
        if round_index > 0:  # the first round warms up allocators and FSDP's lazy state
            seconds.append(elapsed)
    if parallel.is_main:
        median = sorted(seconds)[len(seconds) // 2]
        result = {
            "processes": parallel.world_size,
            "device": torch.cuda.get_device_name() if cuda else "cpu",
            "threads_per_process": torch.get_num_threads(),
            "rows": rows,
            "length": length,
            "update_seconds_median": round(median, 4),
            "tokens_per_s": round(rows * length / median, 1),
            "trained_tokens_per_s": round(plan.total_tokens / median, 1),
            "model_tflops_per_update": round(flops / 1e12, 3),
        }
        Path(args.out).write_text(json.dumps(result))
    parallel.close()


# ------------------------------------------------------------------ launching
def launch(args: argparse.Namespace, processes: int, model: str, out: Path, threads: int | None = None) -> dict[str, Any]:
    """This script in worker mode: alone, or under torchrun with ``processes`` ranks, each with
    ``threads`` intra-op threads (None: the cores split evenly on CPU, torchrun's default on GPU)."""
    worker = [__file__, "--worker", "update", "--model", model, "--out", str(out), "--rounds", str(args.rounds)]
    worker += ["--rows", str(args.rows), "--length", str(args.length), "--micro-batch-size", str(args.micro_batch_size)]
    worker += ["--gpu-rows", str(args.gpu_rows), "--gpu-length", str(args.gpu_length), "--gpu-micro-batch-size", str(args.gpu_micro_batch_size)]
    command = [sys.executable, *worker]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes), *worker]
    env = dict(os.environ)
    if model == "tiny":
        env["OMP_NUM_THREADS"] = str(threads or max(1, (os.cpu_count() or 1) // processes))
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"worker failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(out.read_text())


def peak_tflops(args: argparse.Namespace) -> float | None:
    if args.peak_tflops:
        return args.peak_tflops
    name = torch.cuda.get_device_name()
    return next((value for key, value in PEAK_BF16_TFLOPS.items() if key in name), None)


def end_to_end_gpu(work: Path) -> dict[str, Any]:
    """GRPOTrainer + vLLM, Qwen2.5-0.5B body with the tiny tokenizer, on the demo world: seconds per phase."""
    from statistics import median

    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    from deepresearch.agents import GRPOConfig, GRPOTrainer, RolloutConfig, default_tiny_model, read_metrics

    tokenizer = AutoTokenizer.from_pretrained(str(default_tiny_model()))
    model_dir = work / "qwen2.5-0.5b-shaped"
    shape = {**QWEN25_05B, "vocab_size": len(tokenizer)}
    AutoModelForCausalLM.from_config(Qwen2Config(**shape), dtype=torch.bfloat16).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    config = GRPOConfig(
        model=str(model_dir), engine="vllm", prompt_mode="text", group_size=8, questions_per_step=32, steps=4,
        rollout=RolloutConfig(max_new_tokens_per_turn=128, max_response_tokens=512), eval_every=0, save_every=0,
        report_to=("jsonl",), output_dir=str(work / "run"), env_kwargs={"protocol": "search_r1", "max_turns": 3},
    )
    trainer = GRPOTrainer(config, log=lambda line: None, progress=False)
    trainer.train()
    trainer.close()
    records = read_metrics(work / "run" / "metrics.jsonl")[1:]  # the first step compiles and warms up
    return {key: round(median(r[key] for r in records), 3) for key in ("time/generate", "time/env", "time/update", "time/sync", "time/rollout")}


def main() -> None:
    args = parse_args()
    if args.worker:
        run_update_worker(args)
        return
    report: dict[str, Any] = {"load_average": [round(x, 2) for x in os.getloadavg()], "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as work:
        # One process with every core, one with a single core (what each of the N processes
        # gets), and N processes: on a loaded machine a multi-threaded process loses much of
        # its time waiting at OpenMP barriers for descheduled threads.
        single = launch(args, 1, "tiny", Path(work, "cpu1.json"))
        single_thread = launch(args, 1, "tiny", Path(work, "cpu1t.json"), threads=1)
        several = launch(args, args.processes, "tiny", Path(work, f"cpu{args.processes}.json"))
        report["cpu"] = {
            "single_all_cores": single,
            "single_one_thread": single_thread,
            "data_parallel": several,
            "speedup_vs_single_all_cores": round(several["tokens_per_s"] / single["tokens_per_s"], 3),
            "speedup_vs_single_one_thread": round(several["tokens_per_s"] / single_thread["tokens_per_s"], 3),
        }
        if not torch.cuda.is_available():
            report["gpu"] = "not run: no CUDA device on this machine"
        else:
            gpus = torch.cuda.device_count()
            update = launch(args, gpus, "qwen2.5-0.5b", Path(work, "gpu.json"))
            peak = peak_tflops(args)
            achieved = update["model_tflops_per_update"] / update["update_seconds_median"]
            update["achieved_tflops"] = round(achieved, 1)
            update["mfu"] = round(achieved / (peak * gpus), 4) if peak else "unknown peak: pass --peak-tflops"
            report["gpu"] = {"update": update, "mfu_goal": 0.35, "end_to_end_step_seconds": end_to_end_gpu(Path(work))}
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
