"""Format identification and opening checks of payload files, in worker processes.

Identification (Siegfried, in Go through pygfried) and the opening checks read the
files and cost CPU; hashing and copying them into the store is the ingest process's
own work. :class:`Examiner` sends batches of ``(payload path, source path)`` to a pool
of worker processes, so both cores work at once and Siegfried's Go heap (well over
100 MB once it has scanned a few thousand files) lives in the workers, not in the
ingest process:

- workers are *spawned* (forking a process whose Go runtime runs is not safe), so a
  program that runs an ingest must guard its main module with
  ``if __name__ == "__main__":`` as for any multiprocessing use; being children of
  the ingest process, their peak memory counts in its ``RUSAGE_CHILDREN``, and each
  batch reports its worker's peak RSS (:attr:`Examiner.worker_peak_kb`);
- a worker is started per :data:`FILES_PER_WORKER` files (up to the configured
  number), since each costs a fraction of a second of a core to start;
- each worker runs Siegfried with one Go worker and ``GOGC`` at
  :data:`SIEGFRIED_GOGC` (a smaller heap for nearly the same speed; set in this
  process's environment, which spawned workers start with), and is replaced after
  :data:`TASKS_PER_WORKER` batches, so its heap cannot grow without bound;
- a transfer of fewer than :data:`IN_PROCESS_BELOW` files and bytes is examined in
  the ingest process itself (starting workers would cost more than it saves; Siegfried
  holds the GIL while it runs, so there it cannot overlap the hashing).

Results come back in submission order through futures; the caller bounds how many
batches are in flight.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preservation.ingest.findings import Finding
from preservation.model import FileEntry, FormatInfo

IN_PROCESS_BELOW = 200  # files: smaller transfers are examined in the ingest process
IN_PROCESS_BYTES = 64 * 2**20  # ... unless they hold this many bytes or more
FILES_PER_WORKER = 1_000  # a worker process per this many files, up to ``workers``
# Go's garbage-collector target for Siegfried in the workers: a smaller heap for nearly
# the same speed (peak RSS after 20,000 small files about 129 MB against 162 MB with
# Go's default of 100, and over 200 MB after 50,000; 9 % fewer files a second). Go
# reads GOGC from the environment a process starts with; a value put into os.environ
# afterwards is not seen, so it is set here for the workers to inherit (a deployment
# can set GOGC=25 for a whole service that runs Siegfried itself).
SIEGFRIED_GOGC = "25"
TASKS_PER_WORKER = 64  # batches a worker examines before it is replaced (bounds its heap)


@dataclass
class Examined:
    """What examining one batch found: format and opening-check properties per
    payload path, and the opening checks' findings."""

    formats: dict[str, FormatInfo | None]
    properties: dict[str, dict[str, Any]]
    findings: list[Finding]
    peak_kb: int = 0  # the examining process's peak RSS so far (VmHWM), 0 if unknown


def examine_batch(items: list[tuple[str, str]], go_workers: int = 1) -> Examined:
    """Identify and open each ``(payload path, source path)``; runs in a worker (or in
    the ingest process for a small transfer, with ``go_workers`` Siegfried workers)."""
    from preservation.ingest.identify import identify_files
    from preservation.ingest.usability import check_usability

    sources = [Path(src) for _, src in items]
    formats = identify_files(sources, workers=go_workers)
    entries = [
        FileEntry(path=path, size=0, digests={}, source=src, format=formats.get(src))
        for (path, _), src in zip(items, sources, strict=True)
    ]
    findings, props = check_usability(entries, workers=1)
    return Examined({e.path: e.format for e in entries}, props, findings, _peak_kb())


def _peak_kb() -> int:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    line = next((ln for ln in status.splitlines() if ln.startswith("VmHWM:")), "")
    return int(line.split()[1]) if line else 0


class Examiner:
    """Examines batches of files in ``workers`` worker processes (or in this process
    when ``files`` and ``nbytes`` are small). Use as a context manager; :meth:`submit`
    returns a future of :class:`Examined`."""

    def __init__(self, workers: int, files: int, nbytes: int = 0) -> None:
        # starting a worker costs about a quarter of a second of a core (its imports,
        # Siegfried's signatures): a transfer of a few (large) files gets one
        self.workers = max(1, min(workers, -(-files // FILES_PER_WORKER)))
        self._go_workers = max(1, workers)  # Siegfried's, when examined in this process
        self.worker_peak_kb = 0  # the largest peak RSS a worker reported
        self._pool: ProcessPoolExecutor | None = None
        if files >= IN_PROCESS_BELOW or nbytes >= IN_PROCESS_BYTES:
            # Go reads GOGC from the environment a process starts with: spawned workers
            # inherit this process's (Siegfried in this process, if any, is unaffected)
            os.environ.setdefault("GOGC", SIEGFRIED_GOGC)
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                max_tasks_per_child=TASKS_PER_WORKER,
            )

    @property
    def in_process(self) -> bool:
        return self._pool is None

    def submit(self, items: list[tuple[str, str]]) -> Future[Examined]:
        if self._pool is not None:
            future = self._pool.submit(examine_batch, items)
            future.add_done_callback(self._note_peak)
            return future
        done: Future[Examined] = Future()
        try:
            done.set_result(examine_batch(items, go_workers=self._go_workers))
        except Exception as e:  # delivered by result(), as a worker's error would be
            done.set_exception(e)
        return done

    def _note_peak(self, future: Future[Examined]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.worker_peak_kb = max(self.worker_peak_kb, future.result().peak_kb)

    def close(self, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)
            self._pool = None

    def __enter__(self) -> Examiner:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.close(cancel=exc_type is not None)
