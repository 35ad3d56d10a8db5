"""Format identification and opening checks of payload files, in a worker process.

Identification (Siegfried, in Go through pygfried) and the opening checks read the
files and cost CPU; hashing and copying them into the store is the ingest process's
own work. :class:`Examiner` sends batches of ``(payload path, source path)`` to one
worker process, so both run at once and Siegfried's Go heap (about 100 MB once its
signature matchers are built, whatever the number of files) lives in the worker, not
in the ingest process:

- one worker, running Siegfried with ``workers`` Go workers: Siegfried's matchers
  are built once per process, so one process with two Go workers identifies as fast
  as two processes with one each for half the memory (a second process costs a whole
  second copy of the matchers);
- the worker is a fresh interpreter (``python -m preservation.ingest.examine``), not
  a multiprocessing child: it imports only what examining needs (no catalogue, no
  CLI, no pydantic; the caller's main module is never re-imported, and no resource
  tracker process is started); batches and results travel as pickles over its stdin
  and stdout (the worker moves its own stdout aside first, so a stray print cannot
  corrupt them), and it exits when its stdin closes, so it never outlives the ingest;
- it starts with ``GOGC`` at :data:`SIEGFRIED_GOGC` unless the environment sets one
  (Go reads GOGC only from the environment a process starts with) and is replaced
  after :data:`TASKS_PER_WORKER` batches, so its heap cannot grow without bound;
- a transfer of fewer than :data:`IN_PROCESS_BELOW` files and bytes is examined in
  the ingest process itself (starting a worker would cost more than it saves;
  Siegfried holds the GIL while it runs, so there it cannot overlap the hashing).

The worker's peak memory is reported with each batch (:attr:`Examiner.worker_peak_kb`)
and, being a child of the ingest process, counts in its ``RUSAGE_CHILDREN``. Results
come back in submission order through futures; the caller bounds how many batches
are in flight.
"""

from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from preservation.errors import PreservationError
from preservation.ingest.findings import Finding
from preservation.model import FileEntry, FormatInfo

IN_PROCESS_BELOW = 200  # files: smaller transfers are examined in the ingest process
IN_PROCESS_BYTES = 64 * 2**20  # ... unless they hold this many bytes or more
# Go's garbage-collector target for Siegfried in the worker: a smaller heap for about
# the same speed. Siegfried's matchers take about 70 MB of live heap once built; the
# worker (two Go workers, batches of 250 random small files) peaks at about 112 MB
# with GOGC=10 and 123 MB with 25 after 20,000 files (with one Go worker and Go's
# default of 100, 162 MB); 1,360-1,860 files a second with 10 or 25 alike on a busy 2-core machine
# (5 is slower: about 1,500 where 10 gave 1,860). A deployment can set GOGC for a
# whole service that runs Siegfried itself; the worker then keeps that value.
SIEGFRIED_GOGC = "10"
TASKS_PER_WORKER = 80  # batches a worker examines before it is replaced (bounds its heap)


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
    """Examines batches of files in one worker process running Siegfried with
    ``workers`` Go workers (or in this process when ``files`` and ``nbytes`` are
    small). Use as a context manager; :meth:`submit` returns a future of
    :class:`Examined`."""

    def __init__(self, workers: int, files: int, nbytes: int = 0) -> None:
        self.go_workers = max(1, workers)
        self.worker_peak_kb = 0  # the largest peak RSS the worker reported
        self._tasks: queue.SimpleQueue[tuple[Future[Examined], list[tuple[str, str]]] | None]
        self._tasks = queue.SimpleQueue()
        self._worker: _Worker | None = None
        self._thread: threading.Thread | None = None
        if files >= IN_PROCESS_BELOW or nbytes >= IN_PROCESS_BYTES:
            self._thread = threading.Thread(target=self._run, name="examiner", daemon=True)
            self._thread.start()

    @property
    def in_process(self) -> bool:
        return self._thread is None

    @property
    def worker_pid(self) -> int | None:
        """The process id of the current worker (None before the first batch)."""
        worker = self._worker
        return worker.pid if worker is not None else None

    def submit(self, items: list[tuple[str, str]]) -> Future[Examined]:
        done: Future[Examined] = Future()
        if self._thread is not None:
            self._tasks.put((done, items))
            return done
        try:
            done.set_result(examine_batch(items, go_workers=self.go_workers))
        except Exception as e:  # delivered by result(), as a worker's error would be
            done.set_exception(e)
        return done

    def _run(self) -> None:
        """The thread that owns the worker: one batch at a time, in order."""
        failed: BaseException | None = None
        while (task := self._tasks.get()) is not None:
            done, items = task
            if not done.set_running_or_notify_cancel():
                continue
            if failed is not None:  # a broken worker fails every later batch too
                done.set_exception(failed)
                continue
            try:
                if self._worker is None or self._worker.tasks >= TASKS_PER_WORKER:
                    if self._worker is not None:
                        self._worker.stop()
                    self._worker = _Worker(self.go_workers)
                result = self._worker.examine(items)
            except BaseException as e:
                if self._worker is None or self._worker.broken:
                    failed = e
                done.set_exception(e)
            else:
                self.worker_peak_kb = max(self.worker_peak_kb, result.peak_kb)
                done.set_result(result)

    def close(self, cancel: bool = False) -> None:
        if self._thread is None:
            return
        if cancel:
            while True:
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    break
                if task is not None:
                    task[0].cancel()
            worker = self._worker
            if worker is not None:  # the batch in flight fails at once; nobody waits for it
                worker.kill()
        self._tasks.put(None)
        self._thread.join()
        self._thread = None
        if self._worker is not None:
            self._worker.stop(kill=cancel)
            self._worker = None

    def __enter__(self) -> Examiner:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.close(cancel=exc_type is not None)


class _Worker:
    """One ``python -m preservation.ingest.examine`` process: a batch in, its
    :class:`Examined` (or the exception it raised) out, both as pickles."""

    def __init__(self, go_workers: int) -> None:
        env = {**os.environ, "GOGC": os.environ.get("GOGC", SIEGFRIED_GOGC)}
        # its stderr: read back only if it fails (closed in stop())
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc = subprocess.Popen(
            # -P: the current folder is not put first on sys.path (a folder there named
            # like the package must not stand in for it)
            [sys.executable, "-P", "-m", "preservation.ingest.examine", str(go_workers)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        self.pid = self._proc.pid
        self.tasks = 0
        self.broken = False  # it died or broke the protocol: no more batches to it

    def examine(self, items: list[tuple[str, str]]) -> Examined:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self.tasks += 1
        try:
            pickle.dump(items, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.flush()
            ok, value = pickle.load(self._proc.stdout)
        except (OSError, EOFError, pickle.UnpicklingError) as e:
            self.broken = True
            raise self._failure() from e
        if not ok:
            raise value
        assert isinstance(value, Examined)
        return value

    def _failure(self) -> PreservationError:
        try:
            status = self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            status = self._proc.wait()
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - 2000))
        tail = self._stderr.read().decode("utf-8", "replace").strip()
        return PreservationError(
            f"the identification worker (pid {self.pid}) stopped with exit status {status}"
            + (f": {tail}" if tail else "")
        )

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()

    def stop(self, kill: bool = False) -> None:
        """Close its stdin (it exits), or kill it; wait for it either way."""
        if kill:
            self.kill()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()


def _serve(go_workers: int, requests: IO[bytes], replies: IO[bytes]) -> None:
    """The worker's loop: examine each batch read from ``requests`` until it closes."""
    from preservation.ingest.examine import examine_batch as examine  # not __main__'s

    while True:
        try:
            items = pickle.load(requests)
        except EOFError:
            return
        reply: tuple[bool, Any]
        try:
            reply = (True, examine(items, go_workers=go_workers))
        except Exception as e:
            reply = (False, e)
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # an exception that does not pickle: send its text
            text = f"{type(reply[1]).__name__}: {reply[1]}"
            data = pickle.dumps((False, PreservationError(text)))
        replies.write(data)
        replies.flush()


if __name__ == "__main__":
    # the replies go to the original stdout; anything printed goes to stderr
    _replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(int(sys.argv[1]), sys.stdin.buffer, _replies)
