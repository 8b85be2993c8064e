"""The GRPO run's configuration: one dataclass of nested parts, saved with every checkpoint.

Each knob is declared once, where it acts: sampling budgets in ``RolloutConfig``, the
update in ``UpdateConfig`` (its loss in ``PolicyLossConfig``), the optimizer here. Two
values follow from others and are not knobs: the update divides logits by the rollout
temperature, and Dr.GRPO's length normaliser defaults to the response budget.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from deepresearch.agents.grpo.update import UpdateConfig
from deepresearch.agents.rollout.runner import RolloutConfig
from deepresearch.agents.train.distributed import DistributedConfig
from deepresearch.agents.train.metrics_log import check_report_to


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW over the trainable parameters."""

    learning_rate: float = 1e-5
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError(f"need learning_rate > 0 and weight_decay >= 0, got {self.learning_rate}, {self.weight_decay}")


@dataclass
class GRPOConfig:
    # Model: a Hugging Face id or local path; None builds (or reuses) the tiny offline model.
    model: str | None = None
    env_id: str = "DeepResearch-Wiki-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    # Held-out evaluation env kwargs; None = env_kwargs with split="test".
    eval_env_kwargs: dict[str, Any] | None = None
    engine: Literal["auto", "vllm", "hf"] = "auto"
    prompt_mode: Literal["auto", "text", "chat"] = "auto"
    # GRPO
    group_size: int = 8
    questions_per_step: int = 4
    steps: int = 50
    scale_rewards_by_std: bool = True
    filter_zero_variance: bool = False
    mask_env_tokens: bool = True
    # Sampling, the update (and its loss), the optimizer.
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    update: UpdateConfig = field(default_factory=UpdateConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    # Linear learning-rate warm-up over this many steps (0: none).
    warmup_steps: int = 0
    gradient_checkpointing: bool = False
    lora_rank: int = 0
    lora_alpha: int = 32
    # Sharding when launched by torchrun with several processes (FSDP2).
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    # Experiment trackers: any of "jsonl" (OUTPUT/metrics.jsonl, read by plots), "tensorboard", "wandb".
    report_to: tuple[str, ...] = ("jsonl", "tensorboard")
    # Bookkeeping
    eval_every: int = 10
    eval_questions: int = 64
    # Episodes per step written to OUTPUT/episodes/ for the trajectory viewer.
    episodes_to_log: int = 4
    save_every: int = 10
    keep_checkpoints: int = 2
    output_dir: str = "runs/grpo"
    resume: bool = False
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ValueError("group_size must be >= 2: GRPO's baseline is the group's mean reward")
        if self.questions_per_step < 1 or self.steps < 0:
            raise ValueError("questions_per_step must be >= 1 and steps >= 0")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        check_report_to(self.report_to)
        self.report_to = tuple(self.report_to)
        if self.update.loss.max_response_length is None:
            loss = replace(self.update.loss, max_response_length=self.rollout.max_response_tokens)
            self.update = replace(self.update, loss=loss)

    @property
    def kl_coef(self) -> float:
        return self.update.loss.kl_coef

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GRPOConfig:
        """The inverse of ``to_dict`` (nested parts given as dicts), every key and type checked."""
        from deepresearch.agents.train.config_file import build_dataclass

        return build_dataclass(cls, values, "")

    def eval_kwargs(self) -> dict[str, Any]:
        if self.eval_env_kwargs is not None:
            return dict(self.eval_env_kwargs)
        return {**self.env_kwargs, "split": "test"}
