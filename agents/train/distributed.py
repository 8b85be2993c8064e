"""Data-parallel training over ``torch.distributed``: the process group ``torchrun`` describes.

``torchrun --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT]`` sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE`` and ``MASTER_ADDR/PORT``; ``Parallel.from_environment()``
joins that group (NCCL on GPUs, one GPU per process; gloo on CPU). Without those variables,
or with one process, it is the single-process case and every method is a cheap no-op, so
the trainer has one code path.

GRPO's groups never straddle processes: each process gets whole questions, and advantages
need no communication. What crosses processes is the gradient (FSDP2, ``sharding``), the
loss normalisers (the whole step's token count) and the metrics, reduced here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeVar

import torch

T = TypeVar("T")
Reduction = Literal["mean", "sum", "max", "min", "same"]


@dataclass(frozen=True)
class DistributedConfig:
    """How the policy (and a KL reference model) is sharded when ``torchrun`` starts several processes.

    * ``param_dtype``: the dtype FSDP2 gathers parameters in for forward/backward (``auto``:
      bfloat16 on CUDA, float32 on CPU, where bf16 matmuls are slow); the sharded master
      weights and the optimizer state stay float32.
    * ``reduce_dtype``: the dtype gradients are reduce-scattered in.
    * ``cpu_offload``: sharded parameters, gradients and optimizer state live in CPU memory
      between uses (CUDA only: FSDP2's offload policy needs an accelerator).
    * ``reshard_after_forward``: free gathered parameters after each block's forward
      (ZeRO-3 memory; False keeps them until backward, ZeRO-2 speed).
    * ``timeout_minutes``: how long a collective waits for a slow rank (rollouts are uneven).
    """

    param_dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    reduce_dtype: Literal["float32", "bfloat16"] = "float32"
    cpu_offload: bool = False
    reshard_after_forward: bool = True
    timeout_minutes: float = 60.0

    def __post_init__(self) -> None:
        if self.timeout_minutes <= 0:
            raise ValueError(f"timeout_minutes must be > 0, got {self.timeout_minutes}")


class Parallel:
    """This process's place in the data-parallel group (rank 0 of 1 when not launched by torchrun)."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0) -> None:
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank

    @classmethod
    def from_environment(cls, device: str = "auto", timeout_minutes: float = 60.0) -> Parallel:
        """Join torchrun's process group; a single process when ``WORLD_SIZE`` is unset or 1.

        ``device`` is the trainer's setting: ``auto``/``cuda`` use NCCL with GPU
        ``LOCAL_RANK``; ``cpu`` (or no GPU) uses gloo.
        """
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        import torch.distributed as dist

        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(minutes=timeout_minutes))
        return cls(rank, world_size, local_rank)

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs, plots, episodes and checkpoint metadata."""
        return self.rank == 0

    def device(self, setting: str) -> torch.device:
        """The trainer's device: this process's GPU when distributed on CUDA."""
        if setting == "auto":
            setting = "cuda" if torch.cuda.is_available() else "cpu"
        if setting == "cuda" and self.is_distributed:
            return torch.device("cuda", self.local_rank)
        return torch.device(setting)

    # ------------------------------------------------------------ data split
    def block(self, total: int) -> range:
        """This rank's contiguous share of ``total`` items (whole GRPO groups when the items are
        questions); sizes differ by at most one, earlier ranks taking the extra ones."""
        size, extra = divmod(total, self.world_size)
        start = self.rank * size + min(self.rank, extra)
        return range(start, start + size + (1 if self.rank < extra else 0))

    # ---------------------------------------------------------- collectives
    def all_reduce(self, values: list[float], op: Literal["sum", "max", "min"] = "sum") -> list[float]:
        """Element-wise reduction of a short list of numbers over all ranks (float64; on the GPU under NCCL)."""
        if not self.is_distributed or not values:
            return list(values)
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op])
        return tensor.tolist()

    def all_gather_objects(self, value: T) -> list[T]:
        """Every rank's ``value``, in rank order (small picklable objects only)."""
        if not self.is_distributed:
            return [value]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def barrier(self) -> None:
        if self.is_distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Destroy the process group. A vLLM engine that joined it (``external_launcher``) made
        subgroups of it and tears them down, and the group itself, in its own cleanup at exit;
        running that cleanup first (it is idempotent) keeps both in order."""
        if not self.is_distributed:
            return
        import torch.distributed as dist

        vllm_groups = sys.modules.get("vllm.distributed.parallel_state")
        if vllm_groups is not None:
            vllm_groups.cleanup_dist_env_and_memory()
        if dist.is_initialized():
            dist.destroy_process_group()

    def _collective_device(self) -> torch.device:
        import torch.distributed as dist

        return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


COUNTS = ("episodes", "dropped", "groups", "zero_variance_groups", "skipped", "filtered")


def reduction_for(name: str) -> Reduction:
    """How a per-rank metric combines into the step's value, decided by its name.

    * ``time/*``: the slowest rank (the step waits for it) -> ``max``;
    * names ending in ``/max`` or ``/min`` (e.g. ``staleness/max``) -> ``max`` / ``min``;
    * counts (names ending in ``episodes``, ``dropped``, ``groups``, ``zero_variance_groups``,
      ``skipped``, ``filtered``) -> ``sum``;
    * ``lr``: the same everywhere -> ``same``;
    * everything else (rewards, lengths, rates) -> a mean weighted by the rank's episodes.
    """
    if name.startswith("time/") or name.endswith("/max"):
        return "max"
    if name.endswith("/min"):
        return "min"
    if name.rsplit("/", 1)[-1] in COUNTS:
        return "sum"
    if name == "lr":
        return "same"
    return "mean"


def update_reduction(name: str) -> Reduction:
    """For ``grpo_update``'s metrics under a data-parallel ``UpdatePlan``: each rank reports its part
    of the whole update's value (``sum``), except what is already global (``same``) and the
    importance-weight distribution of each rank's own tokens: extremes -> ``max``/``min``,
    mean and quantiles -> a mean weighted by the rank's tokens (for the quantiles an
    approximation: the exact ones would need every token's weight on one rank)."""
    if name in ("grad_norm", "response_tokens", "optimizer_steps", "nonfinite_steps"):
        return "same"
    if name.startswith("importance/"):
        return reduction_for(name)
    return "sum"


def reduce_metrics(
    parallel: Parallel,
    metrics: dict[str, Any],
    weights: dict[str, float] | None = None,
    rule: Callable[[str], Reduction] = reduction_for,
) -> dict[str, Any]:
    """One step's metrics over all ranks; non-numbers (e.g. ``data/questions``) are gathered into one list.

    ``rule(name)`` says how each number combines; ``weights[name]`` is this rank's weight
    for a ``mean`` metric (default: its ``episodes``).
    Every rank must call this with the same keys in the same order, as they do when they run
    the same code; a key one rank lacks is reduced as if that rank reported 0 with weight 0.
    """
    if not parallel.is_distributed:
        return dict(metrics)
    # Which names are numbers, agreed by all ranks (a rank may lack a key another has).
    kinds = parallel.all_gather_objects({name: _is_number(value) for name, value in metrics.items()})
    names = sorted(set().union(*kinds))
    numbers = [n for n in names if all(kind.get(n, True) for kind in kinds)]
    others = [n for n in names if n not in numbers]
    default_weight = float(metrics.get("episodes", 0))
    sums, maxima = [], []
    for name in numbers:
        value, weight = float(metrics.get(name, 0.0)), ((weights or {}).get(name, default_weight) if name in metrics else 0.0)
        sums.extend([value * weight, weight, value])
        # max of the value, and of its negation (-> the min), over the ranks that have it.
        maxima.extend([value, -value] if name in metrics else [float("-inf"), float("-inf")])
    summed = parallel.all_reduce(sums, "sum")
    largest = parallel.all_reduce(maxima, "max")
    reduced: dict[str, Any] = {}
    for index, name in enumerate(numbers):
        weighted, weight, total = summed[3 * index : 3 * index + 3]
        how = rule(name)
        if how == "mean":
            reduced[name] = weighted / weight if weight > 0 else 0.0
        elif how == "sum":
            reduced[name] = total
        elif how == "min":
            reduced[name] = -largest[2 * index + 1]
        else:  # max, and "same" (equal on every rank; max also covers ranks that skipped the update)
            reduced[name] = largest[2 * index]
    gathered = parallel.all_gather_objects({n: metrics[n] for n in others if n in metrics})
    for name in others:
        parts = [part[name] for part in gathered if name in part]
        reduced[name] = [item for part in parts for item in (part if isinstance(part, list) else [part])]
    return reduced


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
