"""``deepresearch train``: GRPO from a YAML config (a recipe) plus ``key=value`` overrides.

    deepresearch train --config recipes/research_qwen2.5-7b-instruct.cpu.yaml
    deepresearch train --config recipes/search_r1_qwen2.5-3b.yaml steps=20 update.loss.kl_coef=0.01
    deepresearch train --config recipes/search_r1_qwen2.5-3b.yaml --print-config   # resolved, nothing run
    torchrun --nproc-per-node 8 -m deepresearch.cli train --config recipes/search_r1_qwen2.5-3b.yaml

Under ``torchrun`` every process runs this same command and trains data-parallel (FSDP2);
rank 0 prints, logs and plots. Overrides are dotted paths into the config
(``rollout.temperature=0.7``, ``env_kwargs.top_k=5``, ``report_to=[jsonl,wandb]``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from deepresearch.agents.train.config_file import ConfigError, config_to_yaml, load_run_file


def configure(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--config", help="YAML config, e.g. a recipe under recipes/ (omitted: the defaults)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. optimizer.learning_rate=1e-6")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    parser.add_argument("--verbose", action="store_true", help="engine logs on the console (default: OUTPUT/engine.log)")
    return run


def run(args: argparse.Namespace) -> int:
    try:
        run_file = load_run_file(args.config, args.overrides)
    except ConfigError as error:
        print(f"deepresearch train: {error}", file=sys.stderr)
        return 2
    if args.print_config:
        print(config_to_yaml(run_file.config, run_file.recipe), end="")
        return 0
    from deepresearch.agents.train.checkpoint import CheckpointError
    from deepresearch.agents.train.health import TrainingHalted
    from deepresearch.agents.train.metrics_log import read_metrics
    from deepresearch.agents.train.stop_signals import TrainingInterrupted
    from deepresearch.agents.train.plots import plot_run
    from deepresearch.agents.train.trainer import GRPOTrainer

    config, recipe = run_file.config, run_file.recipe
    trainer = GRPOTrainer(config, verbose=args.verbose)
    if recipe.name:
        trainer.log(f"recipe {recipe.name}: {recipe.paper} | assumes {recipe.hardware} | expected wall time {recipe.expected_wall_time}")
    trainer.log(f"training on {trainer.parallel.world_size} process(es), {trainer.device}; output in {config.output_dir}")
    try:
        trainer.train()
    except (TrainingInterrupted, TrainingHalted, CheckpointError) as error:
        print(f"deepresearch train: {error}", file=sys.stderr)
        return error.exit_code if isinstance(error, TrainingInterrupted) else 1
    finally:
        trainer.close()
    output_dir = Path(config.output_dir)
    if trainer.parallel.is_main and "jsonl" in config.report_to:
        plot = plot_run(read_metrics(output_dir / "metrics.jsonl"), output_dir / "training.png")
        trainer.log(f"metrics: {output_dir / 'metrics.jsonl'}  plot: {plot}  model: {output_dir / 'final_model'}")
    return 0
