"""Where page text is extracted: in the fetching thread, or in a pool of processes.

trafilatura parses under the GIL, so 32 pages fetched concurrently were then
parsed one at a time (browse speed-up 13.6-14.4x where fetching alone reached
17-21x). With ``processes > 0`` the parsing runs in a process pool shared by
every backend of this process (started on first use with ``spawn``, which is
safe after torch or CUDA were loaded). Either way the caller stops waiting at
the step's deadline; a page that takes longer becomes an error, not a late step.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from deepresearch.envs.deadline import Deadline
from deepresearch.envs.web.pages.extract import ExtractionError, extract_text
from deepresearch.envs.web.pages.fetch import FetchedPage

_POOLS: dict[int, ProcessPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(processes: int) -> ProcessPoolExecutor:
    with _POOLS_LOCK:
        pool = _POOLS.get(processes)
        if pool is None:
            pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
            _POOLS[processes] = pool
        return pool


def _discard(processes: int, pool: ProcessPoolExecutor) -> None:
    """Forget a broken pool (a worker died, e.g. out of memory on a hostile page); the next call starts a new one."""
    with _POOLS_LOCK:
        if _POOLS.get(processes) is pool:
            del _POOLS[processes]
    pool.shutdown(wait=False, cancel_futures=True)


class Extractor:
    """``extract(page, deadline)`` -> text, or ``ExtractionError`` (no text, timed out, worker died)."""

    def __init__(self, processes: int = 0) -> None:
        if processes < 0:
            raise ValueError(f"extract_processes must be >= 0, got {processes}")
        self.processes = processes

    def extract(self, page: FetchedPage, deadline: Deadline) -> str:
        if self.processes == 0:
            return extract_text(page)
        pool = _pool(self.processes)
        try:
            return pool.submit(extract_text, page).result(timeout=deadline.remaining())
        except FutureTimeout:
            raise ExtractionError(f"timed out while extracting the text ({deadline.describe()})") from None
        except BrokenProcessPool:
            _discard(self.processes, pool)
            raise ExtractionError("the text extractor crashed on this page") from None

    def warm_up(self) -> None:
        """Start the pool's processes now (spawning takes about a second each) instead of on the first page."""
        if self.processes:
            pool = _pool(self.processes)
            for future in [pool.submit(extract_text, FetchedPage("", "", "text/plain", None, b"warm", False))
                           for _ in range(self.processes)]:
                future.result()
