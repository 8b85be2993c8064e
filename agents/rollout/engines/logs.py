"""Where an inference engine's own output goes: a log file in the run folder, not the console.

vLLM logs dozens of INFO/WARNING lines at start-up and some on every call (on CPU,
``cpu_worker.py ... skip it`` per generate), and its C++ runtime and checkpoint
loader print straight to the process's stdout/stderr. A training run's console
should show progress and metrics, so with a log file the ``vllm`` loggers write
there, and the start-up is run with the process's output descriptors pointed at
it too. One line is dropped everywhere: ``RotaryEmbedding: Failed to load weights``
at each weight sync. It is harmless — rotary embeddings hold a cos/sin cache
computed from the config, never a checkpoint tensor (Hugging Face state dicts do
not carry it), and vLLM puts the existing cache back when nothing is loaded for
the layer; the engine tests check outputs after sync against transformers.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class _DropRotaryReloadWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "%s: Failed to load weights" and record.args == ("RotaryEmbedding",))


def route_vllm_logs(log_file: Path | None) -> None:
    """Send the ``vllm`` loggers to ``log_file`` (None: leave them on the console) and drop the
    harmless rotary reload warning either way. Call once the ``vllm.LLM`` exists: building it
    (re)configures vLLM's logging."""
    vllm_logger = logging.getLogger("vllm")
    for handler in vllm_logger.handlers:
        if not any(isinstance(f, _DropRotaryReloadWarning) for f in handler.filters):
            handler.addFilter(_DropRotaryReloadWarning())
    if log_file is None:
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(log_file, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    file_handler.addFilter(_DropRotaryReloadWarning())
    for handler in list(vllm_logger.handlers):
        vllm_logger.removeHandler(handler)
    vllm_logger.addHandler(file_handler)
    vllm_logger.propagate = False


@contextmanager
def process_output_to(log_file: Path | None) -> Iterator[None]:
    """Point file descriptors 1 and 2 at ``log_file`` for the block (None: change nothing).

    For output that bypasses Python logging: C++ warnings, loader progress bars.
    """
    if log_file is None:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log_file, "ab") as target:
        os.dup2(target.fileno(), 1)
        os.dup2(target.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for descriptor in saved:
                os.close(descriptor)
