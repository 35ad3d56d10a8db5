"""The catalogue sheet's records and their links to payload files, kept on disk.

A sheet may have tens of thousands of rows and link hundreds of thousands of page
images. :class:`RecordTable` keeps the rows (:class:`~preservation.model.Record`,
fields as JSON), the links from rows to payload paths, and what the sheet checks work
out per row (the reference code as read, the volume an item belongs to) in a scratch
SQLite database (:mod:`preservation.scratch`). The checks, the pipeline, the METS
writer and the catalogue read it back by query, a page at a time: memory holds one
page of rows, whatever the sheet's size.

Iterating a table gives its records in sheet order, each with its linked paths
(``Record.files``, sorted). A table is picklable: a worker process (the METS writer)
reopens the same file read-only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preservation.model import Record
from preservation.scratch import name_key, name_of, open_scratch

PAGE = 1000  # rows read per query
WRITE_BATCH = 1000  # rows or links buffered before an insert

_SCHEMA = (
    # seq: the order the records were added (sheet order); key: the reference code as
    # the checks read it (canonical, or normalised); item/volume/fonds/year: the
    # stripped fields, and their natural-order sort keys (numbers as numbers)
    "CREATE TABLE records (seq INTEGER PRIMARY KEY, row INTEGER NOT NULL,"
    " level TEXT NOT NULL, reference_code TEXT NOT NULL, fields TEXT NOT NULL,"
    " fonds TEXT NOT NULL, year TEXT NOT NULL, volume TEXT NOT NULL,"
    " item_number TEXT NOT NULL, year_k INTEGER NOT NULL, year_i INTEGER NOT NULL,"
    " volume_k INTEGER NOT NULL, volume_i INTEGER NOT NULL, item_k INTEGER NOT NULL,"
    " item_i INTEGER NOT NULL,"
    # what the sheet checks work out per row: the reference code as linking reads it
    # (key) and as the duplicate check compares it (dup_key), the parsed code's group
    # and numbers, a volume row's own number, and the volume an item belongs to
    " key TEXT, dup_key TEXT, grp TEXT, code_item INTEGER, code_volume INTEGER,"
    " own_number INTEGER, in_volume TEXT)",
    "CREATE TABLE links (seq INTEGER NOT NULL, path BLOB NOT NULL, page INTEGER,"
    " PRIMARY KEY (seq, path)) WITHOUT ROWID",
    "CREATE INDEX links_path ON links (path, seq)",
    "CREATE INDEX records_key ON records (key, seq)",
    "CREATE INDEX records_row ON records (row)",
    "CREATE INDEX records_dup ON records (dup_key, seq)",
    "CREATE INDEX records_volume ON records (level, fonds, year, own_number)",
    # for the sheet checks: the payload paths to link, and the numbers to check
    "CREATE TABLE paths (path BLOB PRIMARY KEY) WITHOUT ROWID",
    "CREATE TABLE numbering (label TEXT NOT NULL, grp TEXT NOT NULL, number INTEGER NOT NULL,"
    " row INTEGER NOT NULL)",
)


def natural(value: str) -> tuple[int, int]:
    """Sort key of a number-like field: numbers in numeric order before other text
    (ties are broken by the text itself)."""
    v = value.strip()
    return (0, int(v)) if v.isascii() and v.isdigit() and len(v) < 19 else (1, 0)


@dataclass(frozen=True)
class Placed:
    """One record in the order of the METS logical structMap.

    ``volume`` is None for an item outside any volume; ``heads_volume`` marks the
    first volume row of its volume (the volume div itself), which comes before the
    volume's items; further volume rows of the same volume follow the volume div.
    """

    seq: int
    record: Record
    fonds: str
    year: str
    volume: str | None
    heads_volume: bool


class RecordTable:
    """The records of one catalogue sheet and their linked payload paths, in a scratch
    SQLite database at ``path`` (a private temporary one when None; such a table
    cannot be pickled)."""

    def __init__(self, path: Path | None = None, *, readonly: bool = False) -> None:
        self.path = path
        self._readonly = readonly
        # row_of is asked from the ingest's copy threads; the rest runs in one thread
        self._lock = threading.RLock()
        if readonly:
            if path is None:
                raise ValueError("a read-only record table needs its file")
            self._db = open_scratch(path, shared=True)
        else:
            self._db = open_scratch(path, shared=True)
            for stmt in _SCHEMA:
                self._db.execute(stmt)
        self._records: list[tuple[Any, ...]] = []
        self._links: list[tuple[int, bytes, int | None]] = []
        self._next = self._scalar("SELECT coalesce(max(seq), 0) FROM records") + 1
        self._count: int | None = None

    @classmethod
    def of(cls, records: Iterable[Record]) -> RecordTable:
        """A private table holding ``records`` and their ``files``."""
        if isinstance(records, RecordTable):
            return records
        table = cls()
        for rec in records:
            seq = table.add(rec)
            for p in rec.files:
                table.link(seq, p)
        return table.flush()

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        if self.path is None:
            raise TypeError("a private record table cannot be sent to another process")
        self.flush()
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], readonly=True)  # type: ignore[misc]

    # ------------------------------------------------------------------ writing
    def add(self, record: Record) -> int:
        """Add a record (buffered); returns its sequence number."""
        f = record.fields
        fonds, year = f.get("fonds", "").strip(), f.get("year", "").strip()
        volume, item = f.get("volume", "").strip(), f.get("item_number", "").strip()
        seq = self._next
        self._next += 1
        self._records.append(
            (seq, record.row, record.level, record.reference_code,
             json.dumps(f, ensure_ascii=False, separators=(",", ":")),
             fonds, year, volume, item, *natural(year), *natural(volume), *natural(item))
        )  # fmt: skip
        if len(self._records) >= WRITE_BATCH:
            self.flush()
        return seq

    def link(self, seq: int, path: str, page: int | None = None) -> None:
        """Link record ``seq`` to payload ``path`` (again: kept once)."""
        self._links.append((seq, name_key(path), page))
        if len(self._links) >= WRITE_BATCH:
            self.flush()

    def flush(self) -> RecordTable:
        with self._lock:
            return self._flush()

    def _flush(self) -> RecordTable:
        if self._records or self._links:
            self._db.execute("BEGIN")
            if self._records:
                self._db.executemany(
                    f"INSERT INTO records VALUES ({', '.join('?' * 15)}{', NULL' * 7})",
                    self._records,
                )
            if self._links:
                # a page number, once known, is kept when the same link comes again
                self._db.executemany(
                    "INSERT INTO links VALUES (?, ?, ?) ON CONFLICT (seq, path)"
                    " DO UPDATE SET page = coalesce(links.page, excluded.page)",
                    self._links,
                )
            self._db.execute("COMMIT")
            self._records, self._links = [], []
            self._count = None
        return self

    def execute(self, sql: str, *args: Any) -> None:
        """Run one write statement (for the sheet checks)."""
        self.flush()
        self._db.execute(sql, args)

    def many(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        """Run ``sql`` for every row of ``rows`` in one transaction, in batches."""
        self.flush()
        self._db.execute("BEGIN")
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= WRITE_BATCH:
                self._db.executemany(sql, batch)
                batch = []
        self._db.executemany(sql, batch)
        self._db.execute("COMMIT")

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        if self._count is None:
            self._count = self._scalar("SELECT count(*) FROM records")
        return self._count

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[Record]:
        return (rec for _seq, rec in self.numbered())

    def numbered(self, where: str = "1", *args: Any) -> Iterator[tuple[int, Record]]:
        """``(seq, record)`` in sheet order (``where``: a condition on ``records``)."""
        for seq, row, fields in self._paged(
            f"SELECT seq, row, fields FROM records WHERE ({where}) AND seq > ?"
            " ORDER BY seq LIMIT ?",
            args,
        ):
            yield seq, Record(row=row, fields=json.loads(fields), files=self.files_of(seq))

    def count(self, level: str | None = None) -> int:
        if level is None:
            return len(self)
        return self._scalar("SELECT count(*) FROM records WHERE level = ?", level)

    def files_of(self, seq: int) -> list[str]:
        self.flush()
        rows = self._db.execute("SELECT path FROM links WHERE seq = ? ORDER BY path", (seq,))
        return [name_of(p) for (p,) in rows]

    def first(self) -> Record | None:
        return next(iter(self), None)

    def row_of(self, path: str) -> int | None:
        """The sheet row of the last record linked to ``path`` (safe from any thread)."""
        with self._lock:
            self.flush()
            found = self._db.execute(
                "SELECT r.row FROM links l JOIN records r ON r.seq = l.seq WHERE l.path = ?"
                " ORDER BY l.seq DESC LIMIT 1",
                (name_key(path),),
            ).fetchone()
        return None if found is None else int(found[0])

    def reference_codes(self) -> RowCodes:
        """Sheet row -> reference code, for the rows that have one (read on demand)."""
        return RowCodes(self)

    def distinct(self, key: str) -> list[str]:
        """The distinct non-empty stripped values of field ``key``, sorted."""
        self.flush()
        values = {
            str(v).strip()
            for (v,) in self._db.execute(
                "SELECT DISTINCT json_extract(fields, '$.' || ?) FROM records", (key,)
            )
            if v is not None
        }
        return sorted(values - {""})

    def values(self, key: str) -> Iterator[str]:
        """The value of field ``key`` (empty when missing) of every record, in order."""
        for (v,) in self._paged(
            "SELECT seq, coalesce(json_extract(fields, '$.' || ?), '') FROM records"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (key,),
            skip_first=True,
        ):
            yield str(v)

    def linked_paths(self) -> Iterator[str]:
        """Every linked payload path once, in path order."""
        after = b""
        while True:
            self.flush()
            rows = [
                bytes(p)
                for (p,) in self._db.execute(
                    "SELECT DISTINCT path FROM links WHERE path > ? ORDER BY path LIMIT ?",
                    (after, PAGE),
                )
            ]
            yield from (name_of(p) for p in rows)
            if len(rows) < PAGE:
                return
            after = rows[-1]

    def logical(self, *, with_files: bool = True) -> Iterator[Placed]:
        """The records in the order of the METS logical structMap: by 全宗号, then
        年度 (numbers in numeric order), then the volumes (卷, by 案卷号) with their
        items (件, by 件号, then row), then the items outside any volume."""
        # section 0: a volume group (volume rows, and items naming a volume); 1: loose
        # items. Within a volume: its first volume row (0), its items (1), any further
        # volume rows (2).
        sql = """
            WITH placed AS (
              SELECT seq, row, fields, fonds, year, volume, year_k, year_i, volume_k,
                     volume_i, item_number, item_k, item_i,
                     CASE WHEN level = 'volume' OR volume <> '' THEN 0 ELSE 1 END AS section,
                     CASE WHEN level <> 'volume' THEN 1
                          WHEN seq = min(CASE WHEN level = 'volume' THEN seq END)
                               OVER (PARTITION BY fonds, year, volume) THEN 0
                          ELSE 2 END AS role
              FROM records)
            SELECT seq, row, fields, fonds, year, volume, section, role FROM placed
            ORDER BY fonds, year_k, year_i, year, section,
                     CASE WHEN section = 0 THEN volume_k ELSE 0 END,
                     CASE WHEN section = 0 THEN volume_i ELSE 0 END,
                     CASE WHEN section = 0 THEN volume ELSE '' END,
                     role,
                     CASE WHEN role = 1 THEN item_k ELSE 0 END,
                     CASE WHEN role = 1 THEN item_i ELSE 0 END,
                     CASE WHEN role = 1 THEN item_number ELSE '' END,
                     CASE WHEN role = 1 THEN row ELSE seq END"""
        self.flush()
        # one sort (SQLite spills it to a temporary file), read a page at a time
        cursor = self._db.execute(sql)
        while rows := cursor.fetchmany(PAGE):
            for seq, row, fields, fonds, year, volume, section, role in rows:
                yield Placed(
                    seq=seq,
                    record=Record(
                        row=row,
                        fields=json.loads(fields),
                        files=self.files_of(seq) if with_files else [],
                    ),
                    fonds=fonds,
                    year=year,
                    volume=volume if section == 0 else None,
                    heads_volume=role == 0,
                )

    def query(self, sql: str, *args: Any) -> Iterator[tuple[Any, ...]]:
        """Rows of a read query on the tables (for the sheet checks), fetched a page
        at a time; statements may be run on the table while they are read."""
        self.flush()
        cursor = self._db.execute(sql, args)
        while rows := cursor.fetchmany(PAGE):
            yield from rows

    def one(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        """The first row of a read query, or None."""
        self.flush()
        row: tuple[Any, ...] | None = self._db.execute(sql, args).fetchone()
        return row

    def __getitem__(self, index: int) -> Record:
        """The ``index``-th record in sheet order."""
        if index < 0:
            index += len(self)
        found = self.one(
            "SELECT seq, row, fields FROM records ORDER BY seq LIMIT 1 OFFSET ?", index
        )
        if found is None or index < 0:
            raise IndexError(index)
        seq, row, fields = found
        return Record(row=row, fields=json.loads(fields), files=self.files_of(seq))

    def _paged(
        self, sql: str, args: tuple[Any, ...], *, skip_first: bool = False
    ) -> Iterator[tuple[Any, ...]]:
        """Rows of ``sql`` (which ends ``seq > ? ORDER BY seq LIMIT ?`` and selects
        ``seq`` first) a page at a time; ``skip_first`` drops the seq column."""
        after = 0
        while True:
            self.flush()
            rows = self._db.execute(sql, (*args, after, PAGE)).fetchall()
            for r in rows:
                yield r[1:] if skip_first else r
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    def _scalar(self, sql: str, *args: Any) -> int:
        self.flush()
        (value,) = self._db.execute(sql, args).fetchone()
        return int(value)

    # ------------------------------------------------------------------ end
    def close(self, remove: bool = False) -> None:
        self._db.close()
        if remove and self.path is not None:
            self.path.unlink(missing_ok=True)


class RowCodes(Mapping[int, str]):
    """Sheet row -> reference code of a :class:`RecordTable` (queried on demand; the
    last answer is kept, as the files of one record come one after the other)."""

    def __init__(self, table: RecordTable) -> None:
        self._table = table
        self._last: tuple[int, str | None] | None = None

    def _lookup(self, row: int) -> str | None:
        if self._last is not None and self._last[0] == row:
            return self._last[1]
        found = next(
            self._table.query(
                "SELECT reference_code FROM records WHERE row = ? AND reference_code <> ''"
                " ORDER BY seq DESC LIMIT 1",
                row,
            ),
            None,
        )
        code = None if found is None else str(found[0])
        self._last = (row, code)
        return code

    def __getitem__(self, row: int) -> str:
        code = self._lookup(row)
        if code is None:
            raise KeyError(row)
        return code

    def __iter__(self) -> Iterator[int]:
        for (row,) in self._table.query(
            "SELECT DISTINCT row FROM records WHERE reference_code <> '' ORDER BY row"
        ):
            yield int(row)

    def __len__(self) -> int:
        return self._table._scalar(
            "SELECT count(DISTINCT row) FROM records WHERE reference_code <> ''"
        )
