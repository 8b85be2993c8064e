"""SIGTERM and SIGINT as a request to stop after the step in flight, with a checkpoint of it.

A cluster preempting a job sends SIGTERM (Slurm, Kubernetes); a user presses Ctrl-C
(SIGINT). Dying there loses every step since the last periodic checkpoint, and a signal
that lands inside an optimizer step or a checkpoint write must not leave half-written
state. So the first signal only sets a flag: the step in flight (its rollouts and
update) and any checkpoint being written finish, then the trainer writes a checkpoint of
that last completed step and raises ``TrainingInterrupted``. A second signal restores the
previous handler and is delivered again: the process stops at once (a checkpoint write it
cuts leaves the previous checkpoint intact, since checkpoints are renamed into place).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(Exception):
    """The run stopped on a signal after a checkpoint of its last completed step; ``exit_code``
    is the shell's convention for a process ended by that signal (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, signal_name: str, step: int, checkpoint: Path) -> None:
        super().__init__(
            f"stopped by {signal_name} after step {step}: checkpoint {checkpoint} written; "
            "rerun with resume=true to continue from it"
        )
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
        self.exit_code = 128 + int(signal.Signals[signal_name])


class StopSignals:
    """``with StopSignals() as stop: ... stop.received`` (the first signal's name, or None).

    Handlers can only be installed from the main thread; elsewhere (a trainer run inside a
    worker thread) this is a no-op and signals keep their usual effect.
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {int(s): signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(number).name
            return
        signal.signal(number, self._previous.pop(number, signal.SIG_DFL))  # a second signal: stop now
        signal.raise_signal(number)
