"""The process' thread policy: cores counted from affinity / OMP_NUM_THREADS, thread
counts set once on one compute thread, the libgomp spin bound set before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from deepresearch.envs.retrieval.compute_thread import (
    ComputeThread,
    ThreadPolicy,
    available_cores,
    compute_thread,
    configure_compute_thread,
)


def test_available_cores_respect_affinity_and_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    unset = available_cores()
    assert 1 <= unset <= len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert available_cores() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert available_cores() == unset
    assert ThreadPolicy(compute_threads=3).threads() == 3
    with pytest.raises(ValueError, match="compute_threads"):
        ThreadPolicy(compute_threads=0)


def test_work_runs_on_one_thread_with_its_thread_counts_set_once() -> None:
    import faiss
    import torch

    worker = ComputeThread(ThreadPolicy(compute_threads=1))
    seen = {worker.run(threading.get_ident) for _ in range(5)}
    assert len(seen) == 1 and threading.get_ident() not in seen
    assert worker.run(lambda: worker.run(threading.get_ident)) in seen  # nested: inline, no deadlock
    assert worker.run(lambda: (torch.get_num_threads(), faiss.omp_get_max_threads())) == (1, 1)
    with pytest.raises(ZeroDivisionError):  # errors reach the caller
        worker.run(lambda: 1 / 0)


def test_the_policy_cannot_change_once_the_compute_thread_runs() -> None:
    running = compute_thread()
    assert configure_compute_thread(running.policy) is running
    with pytest.raises(RuntimeError, match="already runs"):
        configure_compute_thread(ThreadPolicy(compute_threads=running.threads + 1, spin_count=1))


def test_prepare_process_bounds_the_spin_before_torch_loads_and_keeps_user_values() -> None:
    code = (
        "import os\nfrom deepresearch.envs.retrieval.compute_thread import prepare_process\n"
        "first = prepare_process()\nimport torch\n"
        "print(first, prepare_process(), os.environ['GOMP_SPINCOUNT'], os.environ['TOKENIZERS_PARALLELISM'])"
    )
    environment = {key: value for key, value in os.environ.items() if key not in ("GOMP_SPINCOUNT", "TOKENIZERS_PARALLELISM")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300)
    assert done.stdout.split() == ["True", "False", str(ThreadPolicy().spin_count), "false"], done.stderr[-2000:]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**environment, "GOMP_SPINCOUNT": "7"}, timeout=300)
    assert done.stdout.split()[2] == "7"
