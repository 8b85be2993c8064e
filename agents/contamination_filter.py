"""DeepResearcher's contamination filter: drop the training questions a model already
answers from memory.

DeepResearcher trains only on questions its base model cannot answer without searching,
so that the reward pays for search rather than recall. Its rule (arXiv 2504.03160, §4.3
"Contamination Detection", prompt in Appendix A.1): "For each candidate question, we
randomly sample 10 responses from the base model we will use in training, and check if any
response contains the ground truth answer (i.e., pass@10)." Those are the defaults here:
``samples=10``, ``min_correct=1``, their closed-book prompt, and ``--model`` should be the
policy you will train.

"Contains the ground truth" is FlashRAG's ``acc`` (a gold answer occurs in the normalised
reply); ``metric="em"`` is the stricter option, though chat models answer in sentences
("The capital of France is Paris.") that exact match calls wrong, keeping a question the
model knows. Any reply counts, as in the paper, also one still running at
``max_new_tokens`` (the gold is already in it); ``ignore_unfinished=True`` discounts those,
for small models whose rambling continuations name many things, the gold among them by chance.

    deepresearch data filter --model SmolLM2-135M-Instruct.Q4_1.gguf --dataset nq.jsonl --out nq_filtered/

writes ``kept.jsonl`` (FlashRAG rows, every other field of the source row kept),
``dropped_ids.txt`` (one id a line) and ``report.json`` (settings, counts and, per
question, every sampled reply and how many were correct), each file atomically.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from deepresearch.envs import QAItem, load_qa
from deepresearch.rewards import exact_match, substring_match

# DeepResearcher's contamination-detection prompt (paper, Appendix A.1), its line breaks as typeset there.
CLOSED_BOOK_TEMPLATE = "Give a short answer to the following question. The answer should be in English.\n\nQuestion: {question}\n\nYour answer:"
METRICS: dict[str, Callable[[str | None, Sequence[str]], float]] = {"acc": substring_match, "em": exact_match}


@dataclass(frozen=True)
class FilterConfig:
    """How each question is asked and when it counts as known."""

    # Closed-book attempts per question, sampled (DeepResearcher: 10).
    samples: int = 10
    # A question is dropped when at least this many attempts are correct (DeepResearcher: any).
    min_correct: int = 1
    metric: Literal["acc", "em"] = "acc"
    # Discount replies cut off at ``max_new_tokens`` (DeepResearcher counts every reply).
    ignore_unfinished: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 32
    # Questions per engine call (each asked ``samples`` times in that call).
    questions_per_batch: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 1 or not 1 <= self.min_correct <= self.samples:
            raise ValueError(f"need samples >= 1 and 1 <= min_correct <= samples, got {self.samples}, {self.min_correct}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {sorted(METRICS)}, not {self.metric!r}")
        if self.temperature <= 0:
            raise ValueError("the filter samples: temperature must be > 0")
        if not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError(f"need 0 < top_p <= 1 and top_k >= 0, got {self.top_p}, {self.top_k}")
        if self.max_new_tokens < 1 or self.questions_per_batch < 1:
            raise ValueError("max_new_tokens and questions_per_batch must be >= 1")


@dataclass
class Verdict:
    """One question's closed-book attempts."""

    id: str
    question: str
    golden_answers: list[str]
    replies: list[str]
    # Replies that ended (end of turn, or the line break of a plain-text prompt) within the budget.
    finished: int
    correct: int
    dropped: bool


def closed_book_prompt(tokenizer: Any, question: str) -> list[int]:
    """The question with no search offered: through the chat template when there is one."""
    text = CLOSED_BOOK_TEMPLATE.format(question=question.strip())
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": text}]
        return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def filter_questions(engine: Any, items: Sequence[QAItem], config: FilterConfig, on_batch: Callable[[int], None] | None = None) -> list[Verdict]:
    """Ask every question ``config.samples`` times and judge each reply; one verdict per item, in order."""
    from deepresearch.agents.rollout.engines.base import sampling_request

    score = METRICS[config.metric]
    # Plain-text prompts end a reply at the line break; chat replies end at the turn's end.
    stop = () if engine.tokenizer.chat_template else ("\n",)
    verdicts = []
    for start in range(0, len(items), config.questions_per_batch):
        chunk = items[start : start + config.questions_per_batch]
        prompts = [closed_book_prompt(engine.tokenizer, item.question) for item in chunk for _ in range(config.samples)]
        sampling = sampling_request(config, config.max_new_tokens, stop, config.seed + start)
        generations = engine.generate(prompts, sampling)
        for index, item in enumerate(chunk):
            own = generations[index * config.samples : (index + 1) * config.samples]
            replies = [engine.tokenizer.decode(g.token_ids, skip_special_tokens=True).strip() for g in own]
            ended = [g.finish_reason != "length" for g in own]
            counted = ended if config.ignore_unfinished else [True] * len(own)
            correct = sum(done and score(reply, item.golden_answers) >= 1.0 for reply, done in zip(replies, counted))
            verdict = Verdict(item.id, item.question, list(item.golden_answers), replies, sum(ended), correct, correct >= config.min_correct)
            verdicts.append(verdict)
        if on_batch is not None:
            on_batch(len(chunk))
    return verdicts


def flashrag_row(item: QAItem) -> dict[str, Any]:
    """``item`` as a FlashRAG JSON line, the source row's other fields kept at the top level."""
    return {"id": item.id, "question": item.question, "golden_answers": list(item.golden_answers), **item.metadata}


def write_outputs(out_dir: Path, items: Sequence[QAItem], verdicts: Sequence[Verdict], config: FilterConfig, source: dict[str, Any]) -> dict[str, Any]:
    """Write the kept set, the dropped ids and the report; returns the report's summary."""
    dropped = {verdict.id for verdict in verdicts if verdict.dropped}
    kept_lines = [json.dumps(flashrag_row(item), ensure_ascii=False) for item in items if item.id not in dropped]
    summary = {
        "questions": len(items),
        "kept": len(items) - len(dropped),
        "dropped": len(dropped),
        "dropped_share": len(dropped) / len(items) if items else 0.0,
    }
    report = {"source": source, "config": asdict(config), "summary": summary, "questions": [asdict(verdict) for verdict in verdicts]}
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(out_dir / "kept.jsonl", "".join(line + "\n" for line in kept_lines))
    _write_atomically(out_dir / "dropped_ids.txt", "".join(f"{verdict.id}\n" for verdict in verdicts if verdict.dropped))
    _write_atomically(out_dir / "report.json", json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return summary


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


# ------------------------------------------------------------------ CLI
def configure(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """``deepresearch data filter``."""
    actions = parser.add_subparsers(dest="data_command", required=True)
    sub = actions.add_parser("filter", help="drop questions the model answers correctly without search", description=__doc__,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = FilterConfig()
    sub.add_argument("--model", required=True, help="model folder, Hugging Face id or .gguf file")
    sub.add_argument("--gguf-file", help="with --model FOLDER: the GGUF file in it")
    sub.add_argument("--engine", choices=["auto", "vllm", "hf"], default="auto")
    sub.add_argument("--dataset", required=True, help="QA file or folder (FlashRAG jsonl, HotpotQA, MuSiQue) or 'demo'")
    sub.add_argument("--split", default="train", help="split of a dataset folder or of the demo world")
    sub.add_argument("--limit", type=int, help="first N questions only")
    sub.add_argument("--samples", type=int, default=defaults.samples, help="closed-book attempts per question")
    sub.add_argument("--min-correct", type=int, default=defaults.min_correct, help="drop a question with at least this many correct attempts")
    sub.add_argument("--metric", choices=sorted(METRICS), default=defaults.metric, help="what makes an attempt correct")
    sub.add_argument("--ignore-unfinished", action="store_true", help="never count a reply cut off at --max-new-tokens")
    sub.add_argument("--temperature", type=float, default=defaults.temperature)
    sub.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    sub.add_argument("--questions-per-batch", type=int, default=defaults.questions_per_batch)
    sub.add_argument("--seed", type=int, default=defaults.seed)
    sub.add_argument("--out", required=True, help="output folder")
    sub.add_argument("--quiet", action="store_true")
    sub.add_argument("--verbose", action="store_true", help="engine logs on the console (default: OUT/engine.log)")
    return run


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from deepresearch.agents.rollout.engines.console import make_command_engine

    config = FilterConfig(
        samples=args.samples, min_correct=args.min_correct, metric=args.metric, ignore_unfinished=args.ignore_unfinished,
        temperature=args.temperature, max_new_tokens=args.max_new_tokens, questions_per_batch=args.questions_per_batch, seed=args.seed,
    )
    items = load_qa(args.dataset, split=args.split, limit=args.limit)
    engine = make_command_engine(args.engine, args.model, args.out, args.verbose, gguf_file=args.gguf_file)
    with tqdm(total=len(items), desc="closed-book", unit="question", disable=args.quiet) as bar:
        verdicts = filter_questions(engine, items, config, bar.update)
    source = {"model": str(args.model), "gguf_file": args.gguf_file, "dataset": str(args.dataset), "split": args.split, "limit": args.limit}
    summary = write_outputs(Path(args.out), items, verdicts, config, source)
    print(json.dumps(summary))
    return 0
