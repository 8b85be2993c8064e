"""``deepresearch eval``: evaluate a local model, a chat endpoint or recorded transcripts on QA sets.

    deepresearch eval --policy replay --replay archive.json --protocol search_r1 \
        --corpus wiki18/passages.jsonl --out runs/eval
    deepresearch eval --model runs/ckpt --engine vllm --dataset nq --dataset bamboogle --data-dir qa/
    deepresearch eval --model SmolLM2-135M-Instruct.Q4_1.gguf --protocol search_r1 --dataset nq --data-dir qa/
    deepresearch eval --endpoint http://127.0.0.1:8000/v1 --model Qwen2.5-7B-Instruct --dataset nq --data-dir qa/

Writes ``<out>/results.jsonl`` (one line per item; rerunning resumes) and ``<out>/results.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from deepresearch.agents.eval.harness import load_dataset, run_evaluation, write_table
from deepresearch.envs import PROTOCOLS

POLICIES = ("auto", "model", "endpoint", "replay")


def configure(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--policy", choices=POLICIES, default="auto", help="auto: endpoint if --endpoint, replay if --replay, else model")
    parser.add_argument(
        "--model", help="local model path, Hugging Face id or .gguf file (model policy), or served model name (endpoint policy)"
    )
    parser.add_argument("--gguf-file", help="with --model FOLDER: the GGUF file in it to load (converted once, then cached)")
    parser.add_argument("--engine", choices=["hf", "vllm", "auto"], default="hf")
    parser.add_argument("--endpoint", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="env var holding the endpoint's API key")
    parser.add_argument("--replay", help="recorded trajectories (Search-R1/FlashRAG archive or our results JSONL)")
    parser.add_argument("--dataset", action="append", default=[], help="QA file or standard name (repeatable); default: the replay file's questions, else demo")
    parser.add_argument("--data-dir", help="folder holding the standard datasets (nq, triviaqa, popqa, hotpotqa, 2wiki, musique, bamboogle)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="first N questions of each dataset")
    parser.add_argument("--env-id", default="DeepResearch-Wiki-v0")
    parser.add_argument("--protocol", default="research", choices=sorted(PROTOCOLS))
    parser.add_argument("--corpus", help="corpus .jsonl or saved index dir (Wiki env)")
    parser.add_argument(
        "--retriever", default=None, help="bm25 or dense (Wiki env); default: a saved index's own kind, bm25 for a .jsonl"
    )
    parser.add_argument("--max-turns", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--env-kwargs", default="{}", help="extra env kwargs as JSON")
    parser.add_argument("--max-new-tokens", type=int, default=512, help="per turn")
    parser.add_argument("--max-response-tokens", type=int, default=4096, help="model policy: whole-episode budget")
    parser.add_argument("--batch-size", type=int, default=16, help="episodes in flight at once / per results flush")
    parser.add_argument("--schedule", choices=["async", "sync"], default="async",
                        help="model policy: each episode on its own (async) or all turns in lockstep (sync, the reference)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent episodes for endpoint/replay policies")
    parser.add_argument("--timeout", type=float, default=120.0, help="endpoint read timeout per call (s)")
    parser.add_argument("--retries", type=int, default=3, help="attempts per endpoint call")
    parser.add_argument("--no-vllm-extensions", action="store_true", help="endpoint rejects vLLM request fields")
    parser.add_argument("--judge-endpoint", help="OpenAI-compatible base URL of an LLM judge")
    parser.add_argument("--judge-model", help="served judge model name")
    parser.add_argument("--out", default="runs/eval", help="output folder")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="engine logs on the console (default: OUT/engine.log)")
    return run


def run(args: argparse.Namespace) -> int:
    import deepresearch  # noqa: F401 - registers the env ids

    out = Path(args.out)
    datasets, policy_items = _datasets(args)
    runner = _runner(args, policy_items)
    judge = _judge(args)
    summary = run_evaluation(datasets, runner, out / "results.jsonl", judge=judge, chunk_size=args.batch_size, progress=not args.quiet)
    table = write_table(out / "results.jsonl")
    print(table.read_text(encoding="utf-8"), end="")
    print(json.dumps(summary))
    return 0


def _datasets(args: argparse.Namespace) -> tuple[list[tuple[str, list[Any]]], dict[str, str] | None]:
    responses = None
    replay_items: list[Any] = []
    if _policy(args) == "replay":
        from deepresearch.agents.eval.recorded import read_recorded

        if not args.replay:
            raise SystemExit("--policy replay needs --replay FILE")
        replay_items, responses = read_recorded(args.replay)
    if args.dataset:
        return [load_dataset(spec, args.data_dir, args.split, args.limit) for spec in args.dataset], responses
    if responses is not None:
        return [(Path(args.replay).stem, replay_items[: args.limit] if args.limit else replay_items)], responses
    return [load_dataset("demo", None, "test", args.limit)], responses


def _policy(args: argparse.Namespace) -> str:
    if args.policy != "auto":
        return args.policy
    return "endpoint" if args.endpoint else "replay" if args.replay else "model"


def _env_factory(args: argparse.Namespace) -> Callable[[], Any]:
    import gymnasium as gym

    kwargs: dict[str, Any] = {"protocol": args.protocol, "max_turns": args.max_turns, "top_k": args.top_k}
    if args.corpus:
        kwargs.update(corpus=args.corpus, retriever=args.retriever)
    kwargs.update(json.loads(args.env_kwargs))
    return lambda: gym.make(args.env_id, **kwargs)


def _runner(args: argparse.Namespace, responses: dict[str, str] | None) -> Any:
    from deepresearch.agents.eval.harness import EngineRunner, TextPolicyRunner

    make_env = _env_factory(args)
    policy = _policy(args)
    if policy == "replay":
        from deepresearch.agents.eval.text_policies import ReplayPolicy
        from deepresearch.envs import get_protocol

        return TextPolicyRunner(make_env, ReplayPolicy(responses or {}, get_protocol(args.protocol)), args.workers)
    if policy == "endpoint":
        from deepresearch.agents.eval.text_policies import ChatPolicy, ChatPolicyConfig

        if not (args.endpoint and args.model):
            raise SystemExit("the endpoint policy needs --endpoint URL and --model NAME")
        config = ChatPolicyConfig(max_tokens=args.max_new_tokens, vllm_extensions=not args.no_vllm_extensions)
        return TextPolicyRunner(make_env, ChatPolicy(_client(args, args.endpoint, args.model), config), args.workers)
    from deepresearch.agents import RolloutConfig, TurnEncoder, default_tiny_model
    from deepresearch.agents.rollout.engines.console import make_command_engine

    model = args.model or str(default_tiny_model())
    engine = make_command_engine(args.engine, model, args.out, args.verbose, gguf_file=args.gguf_file)
    rollout = RolloutConfig(
        max_new_tokens_per_turn=args.max_new_tokens, max_response_tokens=args.max_response_tokens, temperature=0.0, schedule=args.schedule
    )
    envs = [make_env() for _ in range(args.batch_size)]
    return EngineRunner(engine, TurnEncoder.for_tokenizer(engine.tokenizer), envs, rollout)


def _client(args: argparse.Namespace, url: str, model: str) -> Any:
    from deepresearch.agents.eval.chat_client import ChatClient, ChatEndpointConfig
    from deepresearch.envs.web.net.retry import RetryPolicy

    return ChatClient(ChatEndpointConfig(url, model, args.api_key_env, (10.0, args.timeout), RetryPolicy(max_attempts=args.retries)))


def _judge(args: argparse.Namespace) -> Any:
    if not args.judge_endpoint:
        return None
    from deepresearch.agents.eval.judge import LLMJudge

    if not args.judge_model:
        raise SystemExit("--judge-endpoint needs --judge-model")
    return LLMJudge(_client(args, args.judge_endpoint, args.judge_model))
