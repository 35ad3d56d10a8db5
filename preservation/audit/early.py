"""Early reads: an AIP's big files read and digested while the audit command starts.

A one-shot ``preservation audit run --aip ID`` spends its first fraction of a second
importing the catalogue layer and opening the catalogue, on one core. When the AIP
is on a local store and is audited in full, :func:`start_early_reads` uses that time:
threads (one core's worth) read the AIP's files of at least :data:`MIN_SIZE` bytes,
in the order of its bag manifests on the store, and digest them as a check would.
This module imports nothing heavy, so that it can start before the catalogue layer.

A run uses an early read for a file in place of reading it again only when that
cannot change what the run records:

- the run took the store's lease and the lease had been free since before the
  early reads started (by the holder's own clock for this host, with
  :data:`CLOCK_SKEW` of margin for another host's): no repair or audit of the
  store ran meanwhile (:meth:`EarlyReads.claim`);
- the file is the one read: same device, inode, size, modification and change
  times (nanoseconds) when it was opened, when its read ended and once the lease
  was held, and it had not changed for :data:`SETTLED` seconds before its read (a
  change within the file system's timestamp granularity of the read would not show);
- it was digested with every algorithm the check asks for (the digests are handed
  over in the check's own order, no others).

The check is then judged exactly as after its own read (the catalogue, the bag
manifest, the size), and its evidence keeps the time the read started and its
duration. Anything else (a file not read early, a read that failed, a file that
changed) is read again by the run, as without early reads.

The environment variable ``PRESERVATION_AUDIT_EARLY_READS=0`` turns early reads off
(the benchmarks use it to time the run's own reading alone).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preservation.errors import PreservationError
from preservation.hashing import SUPPORTED, check_algorithms
from preservation.model import utcnow
from preservation.paths import validate_key
from preservation.storage.local import TMP_NAME, LocalStore

if TYPE_CHECKING:
    from preservation.repository import Repository

MIN_SIZE = 1024 * 1024  # smaller files cost more interpreter time than digesting
MAX_ENTRIES = 1_000  # manifest lines looked at, per version
BLOCK = 8 * 1024 * 1024  # fewer hand-overs of the interpreter lock than 1 MiB blocks
SWITCH_INTERVAL = 0.0005  # seconds; while the main thread imports (see _Reader.start)
SETTLED = 1.0  # seconds without a change before a file's read
CLOCK_SKEW = dt.timedelta(minutes=5)  # between this host and another lease holder
CATALOGUE_DIGESTS = ("sha256", "sha512")
ENV_SWITCH = "PRESERVATION_AUDIT_EARLY_READS"

_Signature = tuple[int, int, int, int, int]


def _signature(st: os.stat_result) -> _Signature:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class EarlyRead:
    """One file read early: its digests, byte count, and when the read began."""

    digests: dict[str, str]
    size: int
    started: dt.datetime
    duration: float
    signature: _Signature


@dataclass
class _Entry:
    done: threading.Event = field(default_factory=threading.Event)
    result: EarlyRead | None = None


class EarlyReads:
    """The early reads of one AIP on one local store (see the module doc)."""

    def __init__(
        self, store: LocalStore, aip_id: str, algorithms: Sequence[str], threads: int = 1
    ) -> None:
        self.store = store
        self.aip_id = aip_id
        self.algorithms = tuple(algorithms)
        self.threads = max(1, threads)
        self.started_at = utcnow()
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._stop = threading.Event()
        self._usable = False
        self._claimed = False
        self.used = False  # some check took an early read
        self._workers: list[threading.Thread] = []
        self._switch: float | None = None
        self._files: Iterator[tuple[str, Path]] | None = None

    # ------------------------------------------------------------------ reading
    def start(self) -> EarlyReads:
        self._files = self._candidates()
        # While the main thread imports, a reader thread waits for the interpreter
        # lock after each block: a short switch interval keeps it hashing. Put back
        # when the run claims the reads.
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        for i in range(self.threads):
            t = threading.Thread(target=self._work, name=f"audit-early-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def _candidates(self) -> Iterator[tuple[str, Path]]:
        """(key, file) of the files to read: those the payload manifests list, of
        at least MIN_SIZE bytes, stored under the version that lists them."""
        for version in _versions(Path(self.store.root) / self.aip_id):
            manifest = version / f"manifest-{self.algorithms[0]}.txt"
            try:
                with manifest.open(encoding="utf-8", errors="strict") as f:
                    for i, line in enumerate(f):
                        if i >= MAX_ENTRIES or self._stop.is_set():
                            break
                        parts = line.rstrip("\r\n").split(maxsplit=1)
                        if len(parts) != 2 or "%" in parts[1]:  # encoded names: read later
                            continue
                        key = f"{self.aip_id}/{version.name}/{parts[1]}"
                        path = self._path(key)
                        if path is not None:
                            yield key, path
            except (OSError, UnicodeDecodeError):
                continue

    def _path(self, key: str) -> Path | None:
        """The file of a key, checked as the store checks keys; None if refused."""
        try:
            validate_key(key)
        except PreservationError:
            return None
        if TMP_NAME.match(key.rpartition("/")[2]):
            return None
        return Path(self.store.root).joinpath(*key.split("/"))

    def _next(self) -> tuple[str, Path, _Entry] | None:
        with self._lock:
            while not self._stop.is_set() and self._files is not None:
                try:
                    key, path = next(self._files)
                except StopIteration:
                    self._files = None
                    break
                if key in self._entries:
                    continue
                try:
                    st = path.stat()
                except OSError:
                    continue
                if st.st_size < MIN_SIZE or not _regular(st):
                    continue
                entry = _Entry()
                self._entries[key] = entry
                return key, path, entry
        return None

    def _work(self) -> None:
        buffer = memoryview(bytearray(BLOCK))
        while (item := self._next()) is not None:
            _, path, entry = item
            try:
                entry.result = self._read(path, buffer)
            except Exception:  # any problem: the run reads the file itself
                entry.result = None
            finally:
                entry.done.set()

    def _read(self, path: Path, buffer: memoryview) -> EarlyRead | None:
        started = utcnow()
        t0 = time.perf_counter()
        hashers = [getattr(hashlib, a)() for a in self.algorithms]
        size = 0
        with path.open("rb", buffering=0) as f:
            before = os.fstat(f.fileno())
            if before.st_ctime_ns > (time.time() - SETTLED) * 1e9 or not _regular(before):
                return None
            while n := f.readinto(buffer):
                if self._stop.is_set() and not self._claimed:
                    return None  # closed before the run took the reads
                size += n
                block = buffer[:n]
                for h in hashers:
                    h.update(block)
            after = os.fstat(f.fileno())
        if _signature(before) != _signature(after) or size != before.st_size:
            return None
        return EarlyRead(
            {a: h.hexdigest() for a, h in zip(self.algorithms, hashers, strict=True)},
            size,
            started,
            time.perf_counter() - t0,
            _signature(before),
        )

    # ------------------------------------------------------------------ the run
    def claim(self, previous_holder: dict[str, Any] | None) -> None:
        """The run holds the store's lease: no new early read starts, the reads in
        flight finish. ``previous_holder`` is the lease row as it was just before
        this run took it (None: never taken): the results are used only if nobody
        held the lease since before the early reads started."""
        with self._lock:
            self._claimed = True
            self._stop.set()
        self._restore_switch()
        self._usable = self._lease_was_free(previous_holder)

    def _lease_was_free(self, previous: dict[str, Any] | None) -> bool:
        if previous is None:
            return True
        changed = previous.get("updated_at")
        if previous.get("state") == "running" or changed is None:
            return False  # taken over from a holder that died: not known when
        margin = dt.timedelta(0) if previous.get("host") == socket.gethostname() else CLOCK_SKEW
        return bool(changed + margin < self.started_at)

    def take(self, key: str, algorithms: Sequence[str]) -> EarlyRead | None:
        """The early read of ``key`` with exactly ``algorithms``' digests (waiting
        for it if it is in flight), or None when the run must read the file itself."""
        if not self._claimed:
            return None
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return None
        entry.done.wait()
        r = entry.result
        if r is None or not self._usable or any(a not in r.digests for a in algorithms):
            return None
        path = self._path(key)
        try:
            if path is None or _signature(path.stat()) != r.signature:
                return None
        except OSError:
            return None
        self.used = True
        digests = {a: r.digests[a] for a in algorithms}  # the check's algorithms, in its order
        return EarlyRead(digests, r.size, r.started, r.duration, r.signature)

    def close(self) -> None:
        """Stop reading and wait for the reader threads (reads in flight stop at
        their next block unless the run claimed them)."""
        self._stop.set()
        for t in self._workers:
            t.join()
        self._restore_switch()

    def _restore_switch(self) -> None:
        if self._switch is not None:
            sys.setswitchinterval(self._switch)
            self._switch = None


def _regular(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode)


def start_early_reads(
    repo: Repository,
    *,
    store: str | None,
    aip: str | None,
    mode: str | None,
    algorithm: str | None,
    all_digests: bool,
    budget: str | None,
    fraction: float | None,
    workers: int | None,
) -> EarlyReads | None:
    """Early reads for ``preservation audit run`` when it audits one AIP in full on
    a local store with worker threads and no budget, else None (nothing started).
    Any doubt (a setting that does not validate, an unknown store) gives None: the
    run reports it as usual."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    try:
        if store is None or aip is None or budget is not None or fraction is not None:
            return None
        settings = repo.config.settings
        if settings.executor.kind != "threads":
            return None
        store_settings = repo.config.store_settings(store)
        if store_settings.cold or (mode or store_settings.audit_mode) != "full":
            return None
        opened = repo.store(store)
        if type(opened) is not LocalStore:
            return None
        algorithms = list(check_algorithms([algorithm or settings.audit.algorithm]))
        if all_digests:
            algorithms += _manifest_algorithms(Path(opened.root) / aip)
        if not any(a in CATALOGUE_DIGESTS for a in algorithms):
            algorithms.append("sha256")
        threads = max(1, min(workers or settings.audit.workers, (os.cpu_count() or 2) - 1))
    except (PreservationError, OSError, ValueError):
        return None
    return EarlyReads(opened, aip, tuple(dict.fromkeys(algorithms)), threads).start()


def _manifest_algorithms(aip_root: Path) -> list[str]:
    """The payload manifests' algorithms of the AIP's versions on the store, sorted."""
    found: set[str] = set()
    for version in _versions(aip_root):
        try:
            names = [p.name for p in version.iterdir()]
        except OSError:
            continue
        for name in names:
            if name.startswith("manifest-") and name.endswith(".txt"):
                alg = name[len("manifest-") : -len(".txt")]
                if alg in SUPPORTED:
                    found.add(alg)
    return sorted(found)


def _versions(aip_root: Path) -> list[Path]:
    """The version folders (``v1``, ``v2``, ...) of an AIP on a local store, in order."""
    try:
        found = [p for p in aip_root.iterdir() if p.name[:1] == "v" and p.name[1:].isdigit()]
    except OSError:
        return []
    return sorted(found, key=lambda p: int(p.name[1:]))
