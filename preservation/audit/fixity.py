"""The checks themselves: what runs on a worker (a thread here, or a Dask worker).

A :class:`CheckUnit` is a small list of :class:`FileTask` of one store; running it
returns one :class:`CheckResult` per task. Everything here is read-only and plain
data in, plain data out, so that units travel to Dask workers by pickle; a worker
opens the store itself from the configuration (:class:`StoreRef`) and keeps it.

- ``full``/``sample``: the object is read once, in blocks, feeding every algorithm
  asked for; the digests are compared with the catalogue and with the bag manifest,
  the byte count with the catalogue's size.
  On a local store the file is opened directly and read into a buffer kept per
  thread (:func:`_hash_local`); any error there takes the generic store path, which
  reports it, so the findings are the same either way.
- ``inventory``: one ``head``: the object is there, its size is right and any
  checksum the store keeps agrees with the catalogue (local stores keep none).

Transient store errors are retried (:mod:`preservation.storage.retry`); when they
persist the error propagates and stops the run: an unreachable store is not a
fixity finding. Any other read error is the finding ``unreadable``.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Literal

from preservation.audit.codes import Outcome
from preservation.errors import ObjectNotFound, PreservationError
from preservation.hashing import BLOCK_SIZE, SUPPORTED, hash_stream
from preservation.model import utcnow
from preservation.paths import validate_key
from preservation.storage.local import TMP_NAME, LocalStore
from preservation.storage.retry import retry

if TYPE_CHECKING:
    from preservation.audit.early import EarlyRead
    from preservation.config import Config
    from preservation.storage.base import Store

# Hands over a file read before the run took its lease, when still valid
# (:meth:`preservation.audit.early.EarlyReads.take`): (key, algorithms) -> read or None.
EarlyTake = Callable[[str, Sequence[str]], "EarlyRead | None"]

Mode = Literal["full", "inventory", "sample"]
MODES: tuple[Mode, ...] = ("full", "inventory", "sample")
READ_ATTEMPTS = 3


@dataclass(frozen=True)
class StoreRef:
    """How a worker finds a store: the repository's configuration and the store's name
    (``fingerprint`` tells apart two configurations of one name)."""

    config: Config
    name: str
    fingerprint: str

    @classmethod
    def of(cls, config: Config, name: str) -> StoreRef:
        settings = config.store_settings(name).model_dump_json()
        digest = hashlib.sha256(f"{config.root}\n{settings}".encode()).hexdigest()
        return cls(config, name, digest)

    def open(self) -> Store:
        return _store_cache.get(self)


class _StoreCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stores: dict[tuple[str, str], Store] = {}

    @staticmethod
    def _key(ref: StoreRef) -> tuple[str, str]:
        return (ref.name, ref.fingerprint)

    def get(self, ref: StoreRef) -> Store:
        key = self._key(ref)
        with self._lock:
            store = self._stores.get(key)
            if store is None:
                from preservation.storage.registry import open_store

                store = open_store(ref.config, ref.name)
                self._stores[key] = store
            return store

    def prime(self, ref: StoreRef, store: Store) -> None:
        """Use an already open store for ``ref`` in this process."""
        with self._lock:
            self._stores[self._key(ref)] = store


_store_cache = _StoreCache()
prime_store = _store_cache.prime


@dataclass(frozen=True)
class FileTask:
    """One file copy to check. ``expected``: catalogue digests by algorithm (only the
    algorithms to check); ``manifest``: the bag manifest's digests, where known."""

    file_copy_id: int
    copy_id: int
    version_id: int
    aip_id: str
    version: int
    path: str
    key: str
    kind: str
    size: int
    expected: Mapping[str, str]
    manifest: Mapping[str, str] = field(default_factory=dict)
    file_uuid: str | None = None


@dataclass(frozen=True)
class DigestCheck:
    algorithm: str  # a digest algorithm, or 'size' when only the size was compared
    expected: str | None
    actual: str | None

    @property
    def ok(self) -> bool:
        return (
            self.expected is not None
            and self.actual is not None
            and (self.expected.lower() == self.actual.lower())
        )


@dataclass(frozen=True)
class CheckResult:
    task: FileTask
    mode: Mode
    outcome: Outcome
    detail: str
    actual_size: int | None
    digests: tuple[DigestCheck, ...]
    started: datetime
    duration: float
    worker: str

    @property
    def failed(self) -> bool:
        return self.outcome != "pass"


@dataclass(frozen=True)
class CheckUnit:
    store: StoreRef
    mode: Mode
    algorithms: tuple[str, ...]
    tasks: tuple[FileTask, ...]

    @property
    def bytes(self) -> int:
        return sum(t.size for t in self.tasks) if self.mode != "inventory" else 0


_label: tuple[int, str] = (-1, "")


def worker_label() -> str:
    """``host:pid`` of this worker (kept per process: it is asked once per check)."""
    global _label
    pid = os.getpid()
    if _label[0] != pid:
        _label = (pid, f"{socket.gethostname()}:{pid}")
    return _label[1]


def run_unit(unit: CheckUnit, early: EarlyTake | None = None) -> list[CheckResult]:
    """Check every task of a unit, in order (the function Dask and threads run).
    ``early``: reads made before the run started (threads only, see check_content)."""
    store = unit.store.open()
    if unit.mode == "inventory":
        return [check_inventory(store, t) for t in unit.tasks]
    return [check_content(store, t, unit.algorithms, unit.mode, early) for t in unit.tasks]


class _Tee:
    """A read-only stream that hands each block it reads to ``sink`` as well."""

    def __init__(self, raw: IO[bytes], sink: Callable[[memoryview], None]) -> None:
        self._raw = raw
        self._sink = sink

    def readinto(self, b: Any) -> int:
        n: int | None = self._raw.readinto(b)  # type: ignore[attr-defined]
        if n:
            self._sink(memoryview(b)[:n])
        return n or 0

    def read(self, n: int = -1) -> bytes:
        block = self._raw.read(n)
        if block:
            self._sink(memoryview(block))
        return block


def hash_object(
    store: Store,
    key: str,
    algorithms: Sequence[str],
    size_hint: int | None = None,
    sink: Callable[[memoryview], None] | None = None,
) -> tuple[dict[str, str], int]:
    """Read one object once, in blocks, digesting it with every algorithm; transient
    errors are retried from the start of the object. ``sink`` sees every block."""

    def attempt() -> tuple[dict[str, str], int]:
        block = BLOCK_SIZE if size_hint is None else max(4096, min(BLOCK_SIZE, size_hint + 1))
        with store.open(key) as raw:
            stream: Any = _Tee(raw, sink) if sink is not None else raw
            return hash_stream(stream, algorithms, block)

    return retry(attempt, attempts=READ_ATTEMPTS)


_thread = threading.local()


def _block_buffer() -> memoryview:
    """This thread's read buffer (one per thread, allocated once, not once per file)."""
    view: memoryview | None = getattr(_thread, "view", None)
    if view is None:
        view = _thread.view = memoryview(bytearray(BLOCK_SIZE))
    return view


def _hash_local(
    store: LocalStore, key: str, algorithms: Sequence[str]
) -> tuple[dict[str, str], int] | None:
    """The fast path of :func:`hash_object` for a local store: the file opened directly
    (unbuffered) and read in blocks into this thread's buffer. Many small files cost
    a fraction of the generic path (store stream, retry wrapper, a buffer per file).
    None on any error: the caller takes the generic path, which reports it as usual."""
    try:
        # The checks of LocalStore._path (a safe key, not a temporary name) without
        # building a pathlib.Path per file.
        validate_key(key)
        if TMP_NAME.match(key.rpartition("/")[2]):
            return None
        path = f"{os.fspath(store.root)}/{key}"
        hashers = [_CONSTRUCTORS[a]() for a in algorithms]
        view = _block_buffer()
        size = 0
        with open(path, "rb", buffering=0) as f:
            readinto = f.readinto
            while n := readinto(view):
                size += n
                block = view[:n]
                for h in hashers:
                    h.update(block)
    except (OSError, PreservationError, KeyError, ValueError):
        return None
    return {a: h.hexdigest() for a, h in zip(algorithms, hashers, strict=True)}, size


# ``hashlib.sha256`` and the like: faster than ``hashlib.new`` by name.
_CONSTRUCTORS: dict[str, Callable[[], Any]] = {a: getattr(hashlib, a) for a in SUPPORTED}


def judge(
    task: FileTask,
    digests: Mapping[str, str],
    size: int,
) -> tuple[Outcome, str, tuple[DigestCheck, ...]]:
    """Compare what was read with the catalogue, then with the bag manifest."""
    checks = tuple(
        DigestCheck(alg, task.expected.get(alg) or task.manifest.get(alg), digests.get(alg))
        for alg in digests
    )
    if size != task.size:
        return "size", f"size {size} bytes, catalogue says {task.size}", checks
    bad = [alg for alg, exp in task.expected.items() if digests.get(alg, "").lower() != exp.lower()]
    if bad:
        alg = bad[0]
        return (
            "mismatch",
            f"{alg} {digests.get(alg)} differs from the catalogue's {task.expected[alg]}",
            checks,
        )
    off = [
        alg
        for alg, exp in task.manifest.items()
        if alg in digests and digests[alg].lower() != exp.lower()
    ]
    if off:
        alg = off[0]
        return (
            "manifest",
            f"content agrees with the catalogue but the bag manifest lists {alg}"
            f" {task.manifest[alg]}",
            checks,
        )
    return "pass", "", checks


def check_content(
    store: Store,
    task: FileTask,
    algorithms: Sequence[str],
    mode: Mode = "full",
    early: EarlyTake | None = None,
) -> CheckResult:
    """Read the object once and judge it (modes ``full`` and ``sample``).

    ``early`` may hand over the object's read made before the run took its lease
    (:mod:`preservation.audit.early`): it is judged the same way and keeps the time
    it started."""
    algs = tuple(dict.fromkeys([*algorithms, *task.expected]))
    done = early(task.key, algs) if early is not None else None
    if done is not None:
        outcome, detail, checks = judge(task, done.digests, done.size)
        return CheckResult(
            task, mode, outcome, detail, done.size, checks, done.started, done.duration,
            worker_label(),
        )  # fmt: skip
    started = utcnow()
    t0 = time.perf_counter()
    try:
        local = _hash_local(store, task.key, algs) if type(store) is LocalStore else None
        digests, size = local or hash_object(store, task.key, algs, task.size)
    except ObjectNotFound:
        return _failed(
            task, mode, "missing", f"no object {task.key} on {store.name}", algs, started, t0
        )
    except PreservationError as e:
        if e.transient:
            raise
        return _failed(task, mode, "unreadable", f"{e.code}: {e.message}", algs, started, t0)
    except OSError as e:
        return _failed(
            task, mode, "unreadable", f"read error: {e.strerror or e}", algs, started, t0
        )
    outcome, detail, checks = judge(task, digests, size)
    return CheckResult(
        task, mode, outcome, detail, size, checks, started, time.perf_counter() - t0, worker_label()
    )


def check_inventory(store: Store, task: FileTask) -> CheckResult:
    """One ``head``: present, right size, and any checksum the store keeps agrees."""
    started = utcnow()
    t0 = time.perf_counter()
    try:
        info = retry(lambda: store.head(task.key), attempts=READ_ATTEMPTS)
    except ObjectNotFound:
        return _failed(
            task, "inventory", "missing", f"no object {task.key} on {store.name}", (), started, t0
        )
    except PreservationError as e:
        if e.transient:
            raise
        return _failed(task, "inventory", "unreadable", f"{e.code}: {e.message}", (), started, t0)
    stored = {a: d for a, d in info.digests.items() if a in task.expected}
    checks: tuple[DigestCheck, ...] = tuple(
        DigestCheck(a, task.expected[a], d) for a, d in stored.items()
    ) or (DigestCheck("size", str(task.size), str(info.size)),)
    if info.size != task.size:
        outcome: Outcome = "size"
        detail = f"size {info.size} bytes, catalogue says {task.size}"
    elif any(not c.ok for c in checks):
        bad = next(c for c in checks if not c.ok)
        outcome, detail = (
            "checksum",
            (f"stored {bad.algorithm} {bad.actual} differs from the catalogue's {bad.expected}"),
        )
    else:
        outcome, detail = "pass", ""
    return CheckResult(
        task,
        "inventory",
        outcome,
        detail,
        info.size,
        checks,
        started,
        time.perf_counter() - t0,
        worker_label(),
    )


def _failed(
    task: FileTask,
    mode: Mode,
    outcome: Outcome,
    detail: str,
    algorithms: Sequence[str],
    started: datetime,
    t0: float,
) -> CheckResult:
    checks = tuple(
        DigestCheck(a, task.expected.get(a) or task.manifest.get(a), None) for a in algorithms
    ) or (DigestCheck("size", str(task.size), None),)
    return CheckResult(
        task, mode, outcome, detail, None, checks, started, time.perf_counter() - t0, worker_label()
    )
