"""A CPU platform for verl 0.9.1, so its trainer's FSDP2 worker runs here (test harness).

verl knows NVIDIA, Huawei and AMD devices (``verl.plugin.platform``); with none found
it falls back to ``nvidia`` and its worker stops in ``init_process_group`` (no NCCL).
This module registers a ``cpu`` platform through verl's own plugin registry: device
``cpu``, collectives over gloo, no-op memory calls. It is imported by every verl
process with ``VERL_USE_EXTERNAL_MODULES`` (verl imports the listed modules at the end
of ``import verl``) and selected with ``VERL_PLATFORM=cpu``.

Two more settings complete the picture, set by the test: ``VERL_ENGINE_DEVICE=cuda``
and ``VERL_ENGINE_VENDOR=nvidia`` (verl registers its FSDP engine for cuda/npu only;
the engine itself is device-agnostic), and Ray started with a fake GPU
(``+ray_kwargs.ray_init.num_gpus=1``: verl's resource pools count GPUs only).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

import torch
import verl.utils.distributed as verl_distributed
from verl.plugin.platform.platform_base import PlatformBase
from verl.plugin.platform.platform_manager import PlatformRegistry


class CPUDeviceModule:
    """What verl calls on ``get_torch_device()`` (a ``torch.cuda`` stand-in): memory
    queries answer 0, caches and RNG go to the CPU; anything else is ``torch.cpu``'s."""

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cpu, name)

    def is_available(self) -> bool:
        return True

    def device_count(self) -> int:
        return 1

    def current_device(self) -> str:
        return "cpu"

    def get_device_name(self, *_: Any) -> str:
        return "CPU"

    def empty_cache(self) -> None:
        """Nothing cached."""

    def reset_peak_memory_stats(self, *_: Any) -> None:
        """No device memory to track."""

    def memory_allocated(self, *_: Any) -> int:
        return 0

    memory_reserved = max_memory_allocated = max_memory_reserved = memory_allocated

    def mem_get_info(self, *_: Any) -> tuple[int, int]:
        """(free, total) bytes of RAM, as torch.cuda.mem_get_info reports device memory."""
        page = os.sysconf("SC_PAGE_SIZE")
        return page * os.sysconf("SC_AVPHYS_PAGES"), page * os.sysconf("SC_PHYS_PAGES")

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    manual_seed_all = manual_seed

    def get_rng_state(self, *_: Any) -> torch.Tensor:
        return torch.get_rng_state()

    def set_rng_state(self, state: torch.Tensor, *_: Any) -> None:
        torch.set_rng_state(state)


@PlatformRegistry.register(platform="cpu")
class CPUPlatform(PlatformBase):
    device_name = "cpu"
    vendor_name = "cpu"

    @property
    def device_module(self) -> Any:
        return CPUDeviceModule()

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        return False  # never picked by detection: only VERL_PLATFORM=cpu selects it

    def current_device(self) -> str:  # verl passes it to .to(device=...): an int would mean cuda:N
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        """One device."""

    def synchronize(self, device_index: int | None = None) -> None:
        """CPU ops are synchronous."""

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    manual_seed_all = manual_seed

    def set_allocator_settings(self, settings: str) -> None:
        """No device allocator."""

    def empty_cache(self) -> None:
        """Nothing cached."""

    def get_device_capability(self, device_index: int = 0) -> tuple[None, None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    @contextmanager
    def nvtx_range(self, msg: str) -> Iterator[None]:
        yield

    def profiler_start(self) -> None:
        """No profiler."""

    def profiler_stop(self) -> None:
        """No profiler."""

    def cudart(self) -> None:
        return None


_initialize_process_group = verl_distributed.initialize_global_process_group_ray


def _initialize_gloo_process_group(timeout_second: int | None = None, backend: str | None = None) -> None:
    """verl's default backend string is ``cpu:gloo,<device>:<backend>``, here ``cpu:gloo,cpu:gloo``,
    which torch rejects as a duplicate device type: default to plain gloo."""
    _initialize_process_group(timeout_second=timeout_second, backend=backend or "gloo")


# Imported during `import verl`, before verl.workers.engine_workers binds the name.
verl_distributed.initialize_global_process_group_ray = _initialize_gloo_process_group
