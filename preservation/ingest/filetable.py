"""The payload files a transfer holds, as discovered: kept on disk, not in memory.

A transfer may hold hundreds of thousands of files. Discovery (:mod:`receive`) writes
one row per file into a :class:`FileTable`, a private SQLite database in the ingest's
work folder (no journal, no fsync, a bounded page cache: scratch data, deleted with
the folder, never the catalogue). The later steps read it back in path order, a page
at a time, as :class:`TransferFile` objects made on the fly; so the ingest's memory
holds one page of files, whatever their number. The supplied digests of the files
(bag manifests, checksum files) live in the same database.

The table is also what the pipeline narrows down: junk and unstorable names are
*excluded* after the path checks, and of two received names that are one path after
NFC normalisation only the first is kept. Iterating a table gives the kept files;
:meth:`FileTable.discovered` gives every one.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from preservation.scratch import name_key, name_of, open_scratch

PAGE = 1000  # rows read per query
WRITE_BATCH = 1000  # rows buffered before an insert


def _mtime(ts: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


class TransferFile:
    """One payload file as discovered (nothing read yet).

    Made in pages from a :class:`FileTable`, so kept small: slots, the folder the
    received name is relative to kept once (interned) for all files of a page, the
    modification time as a number; a Path and a datetime are made only when asked for.
    """

    __slots__ = ("_mtime", "_root", "original_name", "path", "size", "supplied")

    path: str  # NFC, '/'-separated, relative to the payload root
    original_name: str  # the relative path as received (differs from path when not NFC)
    size: int
    supplied: dict[str, str]  # supplied digests {algorithm: hex}, empty when none

    def __init__(
        self,
        path: str,
        original_name: str,
        size: int,
        abspath: Path | str,
        mtime: datetime | float | None = None,
        supplied: dict[str, str] | None = None,
    ) -> None:
        self.path = path
        self.original_name = original_name
        self.size = size
        full = os.fspath(abspath)
        tail = "/" + original_name
        # the root, shared by every file of the transfer; or the whole path, when the
        # received name is not its end (then _root ends with NUL, never in a name)
        self._root = sys.intern(full[: -len(tail)]) if full.endswith(tail) else full + "\0"
        self._mtime = mtime.timestamp() if isinstance(mtime, datetime) else mtime
        self.supplied = supplied or {}

    @property
    def abspath(self) -> Path:
        return Path(self.source)

    @property
    def source(self) -> str:
        """The absolute path as a string (no Path made)."""
        root = self._root
        return root[:-1] if root.endswith("\0") else f"{root}/{self.original_name}"

    @property
    def mtime(self) -> datetime | None:
        return None if self._mtime is None else _mtime(self._mtime)

    def _key(self) -> tuple[str, str, int, str, float | None]:
        return (self.path, self.original_name, self.size, self.source, self._mtime)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransferFile) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"TransferFile(path={self.path!r}, original_name={self.original_name!r},"
            f" size={self.size}, abspath={self.source!r})"
        )


_SCHEMA = (
    # seq: discovery order, which breaks ties between equal paths (the first is kept)
    "CREATE TABLE files (seq INTEGER PRIMARY KEY, path BLOB NOT NULL, original BLOB NOT NULL,"
    " source BLOB NOT NULL, size INTEGER NOT NULL, mtime REAL, kept INTEGER NOT NULL DEFAULT 1)",
    "CREATE TABLE supplied (path BLOB NOT NULL, alg TEXT NOT NULL, digest TEXT NOT NULL,"
    " PRIMARY KEY (path, alg)) WITHOUT ROWID",
)
_INDEXES = ("CREATE INDEX files_path ON files (path, seq)",)
_COLUMNS = "seq, path, original, source, size, mtime"


class FileTable:
    """The discovered files of one transfer in a scratch SQLite database at ``path``.

    Writing (discovery): :meth:`add`, then :meth:`seal` (builds the index; reading
    before it seals the table). Reading: iteration gives the kept files in path order,
    ``len()`` and ``in`` (by path) count and look among them. Safe to use from several
    threads: every query holds the table's lock and reads a whole page.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_scratch(path, shared=True)
        self._lock = threading.RLock()
        for stmt in _SCHEMA:
            self._db.execute(stmt)
        self._pending: list[tuple[bytes, bytes, bytes, int, float | None]] = []
        self._sealed = False
        self._count: int | None = None

    # ------------------------------------------------------------------ writing
    def add(self, f: TransferFile) -> None:
        """Add a discovered file (buffered; any read flushes)."""
        if self._sealed:
            raise RuntimeError("the file table is sealed")
        self._pending.append(
            (name_key(f.path), name_key(f.original_name), name_key(f.source), f.size, f._mtime)
        )
        if len(self._pending) >= WRITE_BATCH:
            self._flush()

    def extend(self, files: Iterable[TransferFile]) -> None:
        for f in files:
            self.add(f)

    def _flush(self) -> None:
        if not self._pending:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO files (path, original, source, size, mtime) VALUES (?, ?, ?, ?, ?)",
                self._pending,
            )
            self._db.execute("COMMIT")
        self._pending = []
        self._count = None

    def seal(self) -> FileTable:
        """No more files: index them by path (once, after the inserts: faster)."""
        with self._lock:
            if not self._sealed:
                self._flush()
                for stmt in _INDEXES:
                    self._db.execute(stmt)
                self._db.execute("ANALYZE")
                self._sealed = True
        return self

    def remove(self, paths: Iterable[str]) -> None:
        """Take files out altogether (they are not payload: e.g. checksum files)."""
        self._update("DELETE FROM files WHERE path = ?", (name_key(p) for p in paths))

    def exclude(self, paths: Iterable[str]) -> None:
        """Keep files out of the AIP (junk, unstorable names); they stay discovered."""
        self._update("UPDATE files SET kept = 0 WHERE path = ?", (name_key(p) for p in paths))

    def keep_first_of_equal_paths(self) -> None:
        """Of several received names that are one path (after NFC), keep the first."""
        self.seal()
        with self._lock:
            self._db.execute(
                "UPDATE files SET kept = 0 WHERE kept = 1 AND seq NOT IN"
                " (SELECT min(seq) FROM files WHERE kept = 1 GROUP BY path)"
            )
        self._count = None

    def _update(self, sql: str, paths: Iterable[bytes]) -> None:
        self.seal()
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(sql, ((p,) for p in paths))
            self._db.execute("COMMIT")
        self._count = None

    def add_supplied(self, path: str, algorithm: str, digest: str) -> str | None:
        """Record a supplied digest of ``path``; returns the other digest already
        supplied for the same file and algorithm when it differs (nothing recorded)."""
        key = name_key(path)
        with self._lock:
            row = self._db.execute(
                "SELECT digest FROM supplied WHERE path = ? AND alg = ?", (key, algorithm)
            ).fetchone()
            if row is not None:
                return None if row[0] == digest else str(row[0])
            self._db.execute("INSERT INTO supplied VALUES (?, ?, ?)", (key, algorithm, digest))
        return None

    def add_supplied_many(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """``(path, algorithm, digest)`` rows known to agree (a validated bag's
        manifests: one line per file and algorithm)."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO supplied VALUES (?, ?, ?)",
                ((name_key(p), alg, digest) for p, alg, digest in rows),
            )
            self._db.execute("COMMIT")

    # ------------------------------------------------------------------ reading
    def __iter__(self) -> Iterator[TransferFile]:
        return self._pages("kept = 1")

    def discovered(self) -> Iterator[TransferFile]:
        """Every discovered file, excluded ones too, in path order."""
        return self._pages("1")

    def _pages(self, where: str) -> Iterator[TransferFile]:
        self.seal()
        sql = (
            f"SELECT {_COLUMNS}, (SELECT group_concat(alg || ':' || digest)"
            " FROM supplied s WHERE s.path = f.path)"
            f" FROM files f WHERE {where} AND (path, seq) > (?, ?)"
            " ORDER BY path, seq LIMIT ?"
        )
        after: tuple[bytes, int] = (b"", -1)
        while True:
            with self._lock:
                rows = self._db.execute(sql, (*after, PAGE)).fetchall()
            for _seq, path, original, source, size, mtime, supplied in rows:
                yield TransferFile(
                    name_of(path),
                    name_of(original),
                    size,
                    name_of(source),
                    mtime,
                    _digests(supplied),
                )
            if len(rows) < PAGE:
                return
            after = (rows[-1][1], rows[-1][0])

    def __len__(self) -> int:
        if self._count is None:
            self._count = self._scalar("SELECT count(*) FROM files WHERE kept = 1")
        return self._count

    def __bool__(self) -> bool:
        return len(self) > 0

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        return (
            self._scalar("SELECT count(*) FROM files WHERE path = ? AND kept = 1", name_key(path))
            > 0
        )

    def get(self, path: str) -> TransferFile | None:
        """The kept file at ``path`` (the first received, when several names are one)."""
        self.seal()
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM files WHERE path = ? AND kept = 1 ORDER BY seq LIMIT 1",
                (name_key(path),),
            ).fetchone()
        if row is None:
            return None
        _seq, _p, original, source, size, mtime = row
        return TransferFile(
            path, name_of(original), size, name_of(source), mtime, self.supplied_for(path)
        )

    @property
    def bytes(self) -> int:
        return self._scalar("SELECT coalesce(sum(size), 0) FROM files WHERE kept = 1")

    def supplied_for(self, path: str) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT alg, digest FROM supplied WHERE path = ?", (name_key(path),)
            ).fetchall()
        return {str(a): str(d) for a, d in rows}

    @property
    def supplied(self) -> SuppliedDigests:
        return SuppliedDigests(self)

    def without_supplied(self) -> Iterator[str]:
        """Kept paths that no supplied digest covers, in order."""
        self.seal()
        sql = (
            "SELECT path FROM files f WHERE kept = 1 AND path > ? AND NOT EXISTS"
            " (SELECT 1 FROM supplied s WHERE s.path = f.path) GROUP BY path ORDER BY path"
            " LIMIT ?"
        )
        after = b""
        while True:
            with self._lock:
                rows = [bytes(r[0]) for r in self._db.execute(sql, (after, PAGE))]
            yield from (name_of(r) for r in rows)
            if len(rows) < PAGE:
                return
            after = rows[-1]

    def _scalar(self, sql: str, *args: Any) -> int:
        self.seal()
        with self._lock:
            (value,) = self._db.execute(sql, args).fetchone()
        return int(value)

    # ------------------------------------------------------------------ end
    def close(self, remove: bool = True) -> None:
        with self._lock:
            self._db.close()
        if remove:
            self.path.unlink(missing_ok=True)


class SuppliedDigests(Mapping[str, dict[str, str]]):
    """The supplied digests of a table's files, read as ``{path: {algorithm: hex}}``
    (every query goes to the table; nothing is held)."""

    def __init__(self, table: FileTable) -> None:
        self._table = table

    def __getitem__(self, path: str) -> dict[str, str]:
        found = self._table.supplied_for(path)
        if not found:
            raise KeyError(path)
        return found

    def __iter__(self) -> Iterator[str]:
        table = self._table
        after = b""
        while True:
            with table._lock:
                rows = [
                    bytes(r[0])
                    for r in table._db.execute(
                        "SELECT DISTINCT path FROM supplied WHERE path > ? ORDER BY path LIMIT ?",
                        (after, PAGE),
                    )
                ]
            yield from (name_of(r) for r in rows)
            if len(rows) < PAGE:
                return
            after = rows[-1]

    def __len__(self) -> int:
        return self._table._scalar("SELECT count(DISTINCT path) FROM supplied")


def _digests(packed: str | None) -> dict[str, str]:
    if not packed:
        return {}
    out: dict[str, str] = {}
    for item in packed.split(","):
        alg, _, digest = item.partition(":")
        out[alg] = digest
    return out
