"""The bag's own manifests of a copy, read from the store being audited.

A full audit compares each file's digest with the catalogue *and* with the bag's
``manifest-<alg>.txt`` (payload) or ``tagmanifest-<alg>.txt`` (tag files) of the same
copy. Each manifest object is read once: its lines are parsed and the object itself
is digested in the same pass and judged like any file (so reading a manifest is a
fixity check of that manifest, with a result of its own). A manifest that fails its
own check is not used: the files it lists are then compared with the catalogue only,
and the failure is reported on the manifest.

The digests of a run's copies are kept by a :class:`ManifestIndex`, in bounded
memory whatever the size of a bag: a copy's manifests are read once, into dicts for
small copies (a few at a time) or into a scratch SQLite database for big ones, and
each batch of checks looks up the paths it needs.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from preservation.audit.fixity import (
    CheckResult,
    FileTask,
    Mode,
    check_content,
    hash_object,
    judge,
    worker_label,
)
from preservation.bags.manifest import decode_path
from preservation.errors import ObjectNotFound, PreservationError
from preservation.model import utcnow
from preservation.scratch import name_key, name_of, open_scratch
from preservation.storage.base import Store

# Manifest entries a run keeps in memory (copies of more files go to a scratch
# database), and entries it keeps in its scratch database; both are per run.
MEMORY_ENTRIES = 50_000
SCRATCH_ENTRIES = 5_000_000
MANIFEST_RE = re.compile(r"(tag)?manifest-([a-z0-9]+)\.txt")
_LINE = re.compile(r"(\S+)[ \t]+(.+)")


def manifest_kind(path: str) -> tuple[str, str] | None:
    """``("payload"|"tag", algorithm)`` for a manifest's bag path, else None."""
    m = MANIFEST_RE.fullmatch(path)
    if m is None:
        return None
    return ("tag" if m.group(1) else "payload", m.group(2))


def manifest_algorithms(paths: Iterable[str]) -> tuple[str, ...]:
    """The algorithms of the payload manifests among ``paths``, sorted."""
    found = {k[1] for p in paths if (k := manifest_kind(p)) is not None and k[0] == "payload"}
    return tuple(sorted(found))


@dataclass
class BagManifests:
    """What reading a copy's manifests found: the manifests' own checks and the
    problems that made some of them unusable (their entries are not kept)."""

    checks: list[CheckResult] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)


class EntrySink(Protocol):
    """Where the entries of the manifests being read go, one manifest after another
    (``start``): those of a manifest are kept only when it passes its own check
    (``keep``), else dropped; a path listed again replaces the earlier entry."""

    def start(self, algorithm: str) -> None: ...

    def add(self, path: str, digest: str) -> None: ...

    def keep(self) -> None: ...

    def drop(self) -> None: ...


class _Lines:
    """Splits a byte stream into manifest entries, handed to ``add``."""

    def __init__(self, add: Callable[[str, str], None]) -> None:
        self._rest = b""
        self._add = add
        self.bad_lines = 0

    def feed(self, block: memoryview) -> None:
        data = self._rest + bytes(block)
        *lines, self._rest = data.split(b"\n")
        for line in lines:
            self._line(line)

    def close(self) -> None:
        if self._rest:
            self._line(self._rest)
            self._rest = b""

    def _line(self, raw: bytes) -> None:
        try:
            text = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            self.bad_lines += 1
            return
        if not text.strip():
            return
        m = _LINE.fullmatch(text.lstrip("\ufeff"))
        if m is None:
            self.bad_lines += 1
            return
        self._add(decode_path(m.group(2)), m.group(1).lower())


def read_manifests(
    store: Store,
    manifests: Sequence[FileTask],
    algorithms: Sequence[str],
    mode: Mode,
    sink: EntrySink,
) -> BagManifests:
    """Read the manifest objects of one copy for ``algorithms``, their entries to
    ``sink`` (those of a manifest that fails its own check are dropped).

    ``manifests`` are the tasks of the copy's manifest files (their ``expected``
    holds the catalogue's digests).
    """
    out = BagManifests()
    for task in manifests:
        kind = manifest_kind(task.path)
        if kind is None or kind[1] not in algorithms:
            continue
        sink.start(kind[1])
        lines = _Lines(sink.add)
        started = utcnow()
        t0 = time.perf_counter()
        try:
            digests, size = hash_object(
                store, task.key, tuple(task.expected), task.size, sink=lines.feed
            )
        except (ObjectNotFound, PreservationError, OSError):
            sink.drop()
            # The same read again, as an ordinary check, gives the finding its code.
            result = check_content(store, task, tuple(task.expected), mode)
            out.checks.append(result)
            out.unusable.append(f"{task.path}: {result.outcome} ({result.detail})")
            continue
        lines.close()
        outcome, detail, checks = judge(task, digests, size)
        if outcome == "pass" and lines.bad_lines:
            outcome, detail = "mismatch", f"{lines.bad_lines} unreadable line(s)"
        out.checks.append(
            CheckResult(
                task,
                mode,
                outcome,
                detail,
                size,
                checks,
                started,
                time.perf_counter() - t0,
                worker_label(),
            )
        )
        if outcome != "pass":
            sink.drop()
            out.unusable.append(f"{task.path}: {outcome} ({detail})")
            continue
        sink.keep()
    return out


Digests = dict[str, dict[str, str]]  # bag path -> algorithm -> digest


class _MemoryCopy:
    """The entries of one small copy, in dicts: ``digests[algorithm][path]``."""

    def __init__(self) -> None:
        self.digests: dict[str, dict[str, str]] = {}
        self.entries = 0
        self._algorithm = ""
        self._pending: dict[str, str] = {}

    def start(self, algorithm: str) -> None:
        self._algorithm = algorithm
        self._pending = {}

    def add(self, path: str, digest: str) -> None:
        self._pending[path] = digest

    def keep(self) -> None:
        self.digests.setdefault(self._algorithm, {}).update(self._pending)
        self.entries += len(self._pending)
        self._pending = {}

    def drop(self) -> None:
        self._pending = {}

    def lookup(self, paths: Iterable[str]) -> Digests:
        out: Digests = {}
        for path in paths:
            found = {a: d[path] for a, d in self.digests.items() if path in d}
            if found:
                out[path] = found
        return out


class _ScratchCopy:
    """The entries of one big copy, in the index's scratch database. Each manifest's
    rows carry its number (``src``): a failed manifest's rows are deleted, and a
    path listed by several manifests takes the last one's digest."""

    ROWS = 10_000  # entries inserted per statement

    def __init__(self, db: sqlite3.Connection, copy_id: int) -> None:
        self._db = db
        self.copy_id = copy_id
        self.entries = 0
        self._src = 0
        self._algorithm = ""
        self._rows: list[tuple[int, bytes, str, int, str]] = []

    def start(self, algorithm: str) -> None:
        self._src += 1
        self._algorithm = algorithm
        self._rows = []

    def add(self, path: str, digest: str) -> None:
        self._rows.append((self.copy_id, name_key(path), self._algorithm, self._src, digest))
        if len(self._rows) >= self.ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self.entries += len(self._rows)
            # OR REPLACE: a path listed twice in one manifest keeps its last digest.
            self._db.executemany("INSERT OR REPLACE INTO entries VALUES (?,?,?,?,?)", self._rows)
            self._rows = []

    def keep(self) -> None:
        self._flush()

    def drop(self) -> None:
        self._rows = []
        self._db.execute(
            "DELETE FROM entries WHERE copy = ? AND src = ?", (self.copy_id, self._src)
        )

    def lookup(self, paths: Iterable[str]) -> Digests:
        out: Digests = {}
        keys = [name_key(p) for p in paths]
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows = self._db.execute(
                "SELECT path, alg, digest FROM entries WHERE copy = ?"
                f" AND path IN ({','.join('?' * len(chunk))}) ORDER BY src",
                (self.copy_id, *chunk),
            )
            for path, alg, digest in rows:  # later manifests last: their digest stays
                out.setdefault(name_of(path), {})[alg] = digest
        return out

    def remove(self) -> None:
        self._db.execute("DELETE FROM entries WHERE copy = ?", (self.copy_id,))


class ManifestIndex:
    """The manifest digests of the copies a run touches, in bounded memory.

    A copy's manifests are read once while the copy stays indexed. Copies of up to
    ``memory_entries`` files (default :data:`MEMORY_ENTRIES`) go to dicts, dropped
    least recently used first when the dicts hold more than ``memory_entries``
    entries in all; bigger copies go to a scratch SQLite database (opened when first
    needed; its page cache is bounded), dropped least recently used first beyond
    ``scratch_entries`` entries (default :data:`SCRATCH_ENTRIES`). A dropped copy
    seen again is read again. Use from one thread; :meth:`close` at the end of the run.
    """

    def __init__(
        self, memory_entries: int | None = None, scratch_entries: int | None = None
    ) -> None:
        self.memory_entries = MEMORY_ENTRIES if memory_entries is None else memory_entries
        self.scratch_entries = SCRATCH_ENTRIES if scratch_entries is None else scratch_entries
        self._copies: OrderedDict[int, _MemoryCopy | _ScratchCopy] = OrderedDict()
        self._db: sqlite3.Connection | None = None

    def _scratch(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = open_scratch()
            self._db.execute(
                "CREATE TABLE entries (copy INTEGER, path BLOB, alg TEXT, src INTEGER,"
                " digest TEXT, PRIMARY KEY (copy, path, alg, src)) WITHOUT ROWID"
            )
        return self._db

    def ensure(
        self,
        copy_id: int,
        file_count: int,
        read: Callable[[EntrySink], BagManifests],
    ) -> BagManifests | None:
        """Read the copy's manifests (``read`` with the sink to fill) unless they are
        indexed already: what the read found, or None when nothing was read."""
        if copy_id in self._copies:
            self._copies.move_to_end(copy_id)
            return None
        big = file_count > self.memory_entries
        held: _MemoryCopy | _ScratchCopy = (
            _ScratchCopy(self._scratch(), copy_id) if big else _MemoryCopy()
        )
        found = read(held)
        self._copies[copy_id] = held
        self._evict(type(held), self.scratch_entries if big else self.memory_entries)
        return found

    def _evict(self, kind: type[_MemoryCopy | _ScratchCopy], limit: int) -> None:
        held = [(c, h) for c, h in self._copies.items() if isinstance(h, kind)]
        total = sum(h.entries for _, h in held)
        for copy_id, h in held[:-1]:  # least recently used first; never the newest
            if total <= limit:
                break
            total -= h.entries
            if isinstance(h, _ScratchCopy):
                h.remove()
            del self._copies[copy_id]

    def lookup(self, copy_id: int, paths: Iterable[str]) -> Digests:
        """``{path: {algorithm: digest}}`` of those ``paths`` the copy's manifests list."""
        held = self._copies.get(copy_id)
        return held.lookup(paths) if held is not None else {}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._copies.clear()
