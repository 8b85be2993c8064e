"""Worker threads shared by many envs, served in turn, with work past its deadline dropped unrun.

One ``WebBackend`` serving 50 envs used a first-come queue: one env's four slow
pages sat ahead of everybody's next page, and each fetch's deadline only started
once a worker picked it up (browse steps took up to 42.9 s). Here every env
(a *client*) has its own queue and idle workers take the next task from the
next client in turn, so an env asking for one page waits behind at most one
task of each other env; and a task whose step deadline has passed is failed
with ``DeadlineExceeded`` without running.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Hashable

from deepresearch.envs.deadline import Deadline, DeadlineExceeded


@dataclass
class _Task:
    future: Future
    run: Callable[[], Any]
    deadline: Deadline


class FairScheduler:
    """``submit(client, fn, deadline)`` -> ``Future``; at most ``max_workers`` threads, started as needed."""

    def __init__(self, max_workers: int, name: str = "web") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers
        self.name = name
        self._queues: dict[Hashable, deque[_Task]] = {}
        self._turns: deque[Hashable] = deque()  # clients with queued work, in serving order
        self._condition = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False

    def submit(self, client: Hashable, run: Callable[[], Any], deadline: Deadline) -> Future:
        future: Future = Future()
        with self._condition:
            if self._closed:
                raise RuntimeError("the web backend is closed")
            queue = self._queues.get(client)
            if queue is None:
                queue = self._queues[client] = deque()
                self._turns.append(client)
            queue.append(_Task(future, run, deadline))
            if self._idle:
                self._idle -= 1  # taken off the idle count here, so a burst of submits wakes distinct workers
                self._condition.notify()
            elif len(self._threads) < self.max_workers:
                thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def _next(self) -> _Task | None:
        """The next client's oldest task (the client goes to the back of the line), or ``None`` once closed."""
        with self._condition:
            while not self._turns:
                if self._closed:
                    return None
                self._idle += 1
                self._condition.wait()  # the submit that woke us already took us off the idle count
            client = self._turns.popleft()
            queue = self._queues[client]
            task = queue.popleft()
            if queue:
                self._turns.append(client)
            else:
                del self._queues[client]
            return task

    def _work(self) -> None:
        while (task := self._next()) is not None:
            if not task.future.set_running_or_notify_cancel():
                continue
            if task.deadline.expired:
                task.future.set_exception(DeadlineExceeded(f"waited for a worker until {task.deadline.describe()}"))
                continue
            try:
                task.future.set_result(task.run())
            except BaseException as error:  # noqa: BLE001 - handed to whoever waits on the future
                task.future.set_exception(error)

    def shutdown(self) -> None:
        """Cancel queued work and let the workers end once their current task is done."""
        with self._condition:
            self._closed = True
            for queue in self._queues.values():
                for task in queue:
                    task.future.cancel()
            self._queues.clear()
            self._turns.clear()
            self._condition.notify_all()
