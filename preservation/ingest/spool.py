"""A disk spool of FileEntry records, so that ingest memory does not grow with file count.

Entries are appended to a temporary file and can be read back any number of times, in
the order they were written (METS, manifests and the catalogue each take a pass). The
file is private to the ingest process that writes and reads it, so records are pickled
plain dictionaries (several times faster to read back than JSON, which matters at
hundreds of thousands of files and a handful of passes), written in batches of
:data:`BATCH` records (one pickle each: the per-call cost of pickling and unpickling
dominates for small records, and memory holds one batch). The source path of a file
is not kept: it is needed only while the file is streamed.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from preservation.model import FileEntry, FormatInfo

BATCH = 256  # records per pickle


def _to_record(e: FileEntry) -> dict[str, Any]:
    return {
        "path": e.path,
        "size": e.size,
        "digests": e.digests,
        "original_name": e.original_name,
        "format": e.format.to_dict() if e.format else None,
        "record_row": e.record_row,
        "uuid": e.uuid,
        "supplied": e.supplied_digests,
        "role": e.role,
        "derived_from": e.derived_from,
        "properties": e.properties,
    }


def _from_record(d: dict[str, Any]) -> FileEntry:
    fmt = d.get("format")
    return FileEntry(
        path=d["path"],
        size=d["size"],
        digests=d["digests"],
        original_name=d.get("original_name"),
        format=FormatInfo(**fmt) if fmt else None,
        record_row=d.get("record_row"),
        uuid=d["uuid"],
        supplied_digests=d.get("supplied") or {},
        role=d.get("role", "original"),
        derived_from=d.get("derived_from"),
        properties=d.get("properties") or {},
    )


class EntrySpool:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._out: IO[bytes] | None = path.open("wb")
        self._pending: list[dict[str, Any]] = []
        self.count = 0
        self.bytes = 0

    def append(self, entry: FileEntry) -> None:
        if self._out is None:
            raise RuntimeError("spool is closed for writing")
        self._pending.append(_to_record(entry))
        self.count += 1
        self.bytes += entry.size
        if len(self._pending) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._out is not None and self._pending:
            pickle.dump(self._pending, self._out, protocol=pickle.HIGHEST_PROTOCOL)
            self._pending = []
        if self._out is not None:
            self._out.flush()

    def close(self) -> None:
        if self._out is not None:
            self._flush()
            self._out.close()
            self._out = None

    def reader(self) -> SpoolReader:
        """What was appended so far, as a picklable reader (for a worker process)."""
        self._flush()
        return SpoolReader(self.path, self.count)

    def __iter__(self) -> Iterator[FileEntry]:
        return iter(self.reader())


class SpoolReader:
    """The first ``count`` entries of a spool file, read any number of times; small and
    picklable, so another process can read the spool. Calling it gives a fresh
    iterator (the form :class:`preservation.metadata.mets_writer.MetsPackage` takes)."""

    def __init__(self, path: Path, count: int) -> None:
        self.path = path
        self.count = count

    def __call__(self) -> Iterator[FileEntry]:
        return iter(self)

    def __iter__(self) -> Iterator[FileEntry]:
        with self.path.open("rb") as f:
            # one unpickler per batch: a shared one would keep every record read in
            # its memo and resolve a back reference of a later batch to an earlier
            # batch's object
            read = 0
            while read < self.count:
                batch = pickle.load(f)
                read += len(batch)
                for record in batch:
                    yield _from_record(record)
