"""One thread policy for the whole process: every encoder pass and vector search runs on
one dedicated compute thread, whose thread counts are set once.

Why one thread: torch and faiss each bundle their own GNU OpenMP runtime, and libgomp
gives every *calling* thread its own team of workers (kept alive while that thread
lives) and its own thread-count setting (``omp_set_num_threads`` applies to the calling
thread only). Searches called from many threads would leave a team per thread, counts
set on one thread and not on the next, and — once the process holds more OpenMP
threads than cores — libgomp's "throttled" mode. Funnelling all torch/faiss calls
through one thread gives one team per runtime, sized once, and nothing changes a thread
count per call.

Why no spinning (``GOMP_SPINCOUNT=0``): an idle OpenMP worker spins before it sleeps,
300,000 pauses by default (milliseconds). When other processes want the cores, the
team's thread that lost its core waits for the scheduler while its partner spins on the
other one, so each of a forward pass' ~100 barriers costs a time slice: measured on the
2 shared cores here at load ~25, one MiniLM query took 900 ms with the default spin,
380 ms with 20,000 pauses and 12 ms with none (9.5 ms on one thread; a batch of 16, 5.5
ms a query with two threads and none). Without spinning a woken worker costs a futex
wake-up per parallel region, a few microseconds on an idle core. libgomp reads the
variable when it loads, so ``prepare_process`` must run before torch/faiss are imported
(``deepresearch serve-retriever`` does; in-process users may call it first thing).
"""

from __future__ import annotations

import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

Result = TypeVar("Result")
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


@dataclass(frozen=True)
class ThreadPolicy:
    """``compute_threads``: torch intra-op and faiss OpenMP threads of the compute thread
    (None: the available cores). ``spin_count``: libgomp's spin before sleeping (0: sleep
    at once; a dedicated, otherwise idle machine may gain from a few thousand)."""

    compute_threads: int | None = None
    spin_count: int = 0

    def __post_init__(self) -> None:
        if self.compute_threads is not None and self.compute_threads <= 0:
            raise ValueError(f"compute_threads must be positive, got {self.compute_threads}")
        if self.spin_count < 0:
            raise ValueError(f"spin_count must be >= 0, got {self.spin_count}")

    def threads(self) -> int:
        return self.compute_threads or available_cores()


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, a cgroup CPU quota (containers) and
    ``OMP_NUM_THREADS`` when set, whichever is smallest."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota_cores()
    if quota is not None:
        cores = min(cores, quota)
    requested = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if requested.isdigit() and int(requested) > 0:
        cores = min(cores, int(requested))
    return max(1, cores)


def _cgroup_quota_cores() -> int | None:
    try:
        quota, period = _CGROUP_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def prepare_process(policy: ThreadPolicy | None = None) -> bool:
    """Set the OpenMP/tokenizer environment before torch or faiss load (their OpenMP
    runtimes read it once); returns False when one of them was already imported, in
    which case the thread counts still apply but the spin setting does not. Values the
    user set are kept."""
    policy = policy or ThreadPolicy()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no rayon pool beside OpenMP
    os.environ.setdefault("GOMP_SPINCOUNT", str(policy.spin_count))
    return not ({"torch", "faiss"} & set(sys.modules))


class ComputeThread:
    """A single worker thread that runs the process' torch and faiss work."""

    def __init__(self, policy: ThreadPolicy | None = None) -> None:
        self.policy = policy or ThreadPolicy()
        self.threads = self.policy.threads()
        self._ident: int | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepresearch-compute", initializer=self._configure)

    def run(self, function: Callable[..., Result], *args: object) -> Result:
        """``function(*args)`` on the compute thread (inline when already on it)."""
        if threading.get_ident() == self._ident:
            return function(*args)
        return self._executor.submit(function, *args).result()

    def _configure(self) -> None:
        """Thread counts, once, on this thread (omp_set_num_threads is per calling
        thread), and faiss' scan/BLAS crossover (``flat_search.set_scan_threshold``)."""
        import faiss
        import torch

        from deepresearch.envs.retrieval.flat_search import set_scan_threshold

        self._ident = threading.get_ident()
        torch.set_num_threads(self.threads)
        faiss.omp_set_num_threads(self.threads)
        set_scan_threshold()


_shared: ComputeThread | None = None
_shared_guard = threading.Lock()


def compute_thread() -> ComputeThread:
    """The process' compute thread (made on first use, with the default policy unless
    ``configure_compute_thread`` ran first)."""
    global _shared
    with _shared_guard:
        if _shared is None:
            _shared = ComputeThread()
        return _shared


def configure_compute_thread(policy: ThreadPolicy) -> ComputeThread:
    """Fix the process' thread policy; allowed only before the compute thread exists, so
    thread counts are never changed under running work."""
    global _shared
    with _shared_guard:
        if _shared is not None and _shared.policy != policy:
            raise RuntimeError(f"the compute thread already runs with {_shared.policy}; configure it before any dense search")
        _shared = _shared or ComputeThread(policy)
        return _shared
