"""A disk-backed index of one ingest's files, so that its memory does not grow with
the number of files.

Two checks need every file at once: duplicate content (files with the same SHA-256
and size) and the verification of the staged objects (every expected key there with
its size, nothing else). Holding a record per file for them costs hundreds of bytes
per file; this index keeps them in a private SQLite database in the ingest's work
folder instead (no journal, no fsync: it is scratch data, deleted with the folder,
and never the catalogue). Rows are added in batches.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from preservation.scratch import open_scratch


@dataclass(frozen=True)
class DigestedFile:
    """What the duplicate-content check reads of a file."""

    path: str
    size: int
    digests: dict[str, str]


class WorkIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_scratch(path, shared=True)
        self._db.execute("CREATE TABLE content (path TEXT, size INTEGER, sha256 TEXT)")
        self._db.execute(
            "CREATE TABLE staged (key TEXT PRIMARY KEY, expected INTEGER, found INTEGER)"
        )

    def close(self) -> None:
        self._db.close()

    # -- duplicate content
    def add_content(self, rows: Iterable[tuple[str, int, str]]) -> None:
        """``(path, size, sha256)`` of files."""
        with self._transaction():
            self._db.executemany("INSERT INTO content VALUES (?, ?, ?)", rows)

    def duplicate_candidates(self) -> Iterator[DigestedFile]:
        """The files whose SHA-256 and size another non-empty file shares."""
        cur = self._db.execute(
            "SELECT c.path, c.size, c.sha256 FROM content c JOIN ("
            " SELECT sha256, size FROM content WHERE size > 0"
            " GROUP BY sha256, size HAVING count(*) > 1) d"
            " ON c.sha256 = d.sha256 AND c.size = d.size ORDER BY c.path"
        )
        for path, size, sha in cur:
            yield DigestedFile(path, size, {"sha256": sha})

    # -- staged objects
    def expect(self, rows: Iterable[tuple[str, int]]) -> None:
        """``(key, size)`` of objects that must be staged."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO staged (key, expected) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET expected = excluded.expected",
                rows,
            )

    def found(self, rows: Iterable[tuple[str, int]]) -> None:
        """``(key, size)`` of objects listed in staging."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO staged (key, found) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET found = excluded.found",
                rows,
            )

    def staging_problems(self, limit: int) -> tuple[int, list[str]]:
        """How many staged objects differ from what was expected, and the first
        ``limit`` of them described."""
        where = "WHERE expected IS NOT found"
        (count,) = self._db.execute(f"SELECT count(*) FROM staged {where}").fetchone()
        shown = [
            f"{key}: not expected"
            if expected is None
            else f"{key}: expected {expected} bytes, found {found}"
            for key, expected, found in self._db.execute(
                f"SELECT key, expected, found FROM staged {where} ORDER BY key LIMIT ?",
                (limit,),
            )
        ]
        return int(count), shown

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
