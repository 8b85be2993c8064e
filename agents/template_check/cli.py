"""``deepresearch check-template MODEL``: conformance of a tokenizer and its chat template.

    deepresearch check-template Qwen/Qwen2.5-7B-Instruct
    deepresearch check-template SmolLM2-135M-Instruct.Q4_1.gguf --protocol tool_call
    deepresearch check-template runs/ckpt --mode text        # as a base model: plain-text prompts

Plays one two-hop episode of the demo world per protocol through our rollout (the
oracle's turns, tokenised as a model would sample them) and prints a pass/fail table;
a failure shows the first token where the two sides part. Exit status 1 when a check
fails. Only the tokenizer is loaded (a GGUF file is converted once, then cached).
"""

from __future__ import annotations

import argparse
from typing import Callable, Sequence

from deepresearch.agents.template_check.checks import CHECKS, ProtocolReport, check_template
from deepresearch.envs import PROTOCOLS


def configure(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("model", help="model folder, Hugging Face id or .gguf file (only its tokenizer is used)")
    parser.add_argument("--gguf-file", help="with MODEL a folder: the GGUF file in it")
    parser.add_argument("--protocol", action="append", choices=sorted(PROTOCOLS), help="repeatable; default: every protocol")
    parser.add_argument("--mode", choices=["auto", "chat", "text"], default="auto", help="auto: chat when the tokenizer has a chat template")
    return run


def run(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from deepresearch.agents.models.gguf import resolve_model_source

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_source(args.model, args.gguf_file))
    reports = check_template(tokenizer, args.protocol or sorted(PROTOCOLS), args.mode)
    print(format_reports(args.model, reports))
    return 0 if all(report.passed for report in reports) else 1


def format_reports(model: str, reports: Sequence[ProtocolReport]) -> str:
    """The pass/fail table, then one line per check with what was compared."""
    lines = [f"check-template {model} (mode: {reports[0].mode if reports else '-'})", "",
             "| protocol | " + " | ".join(CHECKS) + " |", "|---" * (len(CHECKS) + 1) + "|"]
    for report in reports:
        lines.append(f"| {report.protocol} | " + " | ".join("pass" if r.passed else "FAIL" for r in report.results) + " |")
    lines.append("")
    for report in reports:
        for result in report.results:
            lines.append(f"{report.protocol} / {result.check}: {'pass' if result.passed else 'FAIL'} - {result.detail}")
    verdict = "all checks pass" if all(r.passed for r in reports) else "some checks FAIL"
    return "\n".join(lines + ["", verdict])
