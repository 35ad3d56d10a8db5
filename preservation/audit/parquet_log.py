"""The Parquet audit log: one row per file check and digest algorithm.

Each committed batch of a run becomes one Parquet file, partitioned by the UTC date
of its checks (hive style, readable by DuckDB, Spark, Trino or pyarrow)::

    <log dir>/date=2024-05-01/<run id>-000001.parquet

The row schema is :data:`SCHEMA`, documented for other readers in
``schemas/audit-log.schema.json``. A check that computed several digests (``--all-
digests``) gives one row per algorithm; a check that read nothing (the object is
missing) gives one row for the run's audit algorithm with ``actual`` empty; an
inventory check gives a row per stored checksum compared, or one ``size`` row.

Files are written to a temporary name and renamed, so a reader never sees half a
file. With ``audit.log_store`` each file is also put to that store under
``<log_prefix>/date=…/…``; a failed upload is logged and the local file stays.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from preservation.audit.codes import code_of
from preservation.errors import PreservationError
from preservation.paths import join_key

if TYPE_CHECKING:
    from preservation.audit.fixity import CheckResult
    from preservation.storage.base import Store

log = logging.getLogger(__name__)

SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("mode", pa.string(), nullable=False),
        pa.field("aip", pa.string(), nullable=False),
        pa.field("version", pa.int32(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("store", pa.string(), nullable=False),
        pa.field("site", pa.string(), nullable=False),
        pa.field("worker", pa.string(), nullable=True),
        pa.field("algorithm", pa.string(), nullable=False),
        pa.field("expected", pa.string(), nullable=True),
        pa.field("actual", pa.string(), nullable=True),
        pa.field("size", pa.int64(), nullable=True),
        pa.field("actual_size", pa.int64(), nullable=True),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("code", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=True),
        pa.field("started", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("duration", pa.float64(), nullable=False),
    ],
    metadata={"preservation.schema": "audit-log/1"},
)
PARTITION = "date"


def result_rows(
    results: Iterable[CheckResult], *, run_id: str, store: str, site: str, algorithm: str
) -> Iterator[dict[str, Any]]:
    """The log rows of check results (see the module doc for how many per check)."""
    for r in results:
        t = r.task
        checks = r.digests or ()
        base = {
            "run_id": run_id,
            "mode": r.mode,
            "aip": t.aip_id,
            "version": t.version,
            "path": t.path,
            "key": t.key,
            "store": store,
            "site": site,
            "worker": r.worker,
            "size": t.size,
            "actual_size": r.actual_size,
            "outcome": r.outcome,
            "code": code_of(r.outcome),
            "detail": r.detail or None,
            "started": r.started,
            "duration": r.duration,
        }
        if not checks:
            yield {
                **base,
                "algorithm": algorithm,
                "expected": t.expected.get(algorithm),
                "actual": None,
            }
            continue
        for c in checks:
            yield {**base, "algorithm": c.algorithm, "expected": c.expected, "actual": c.actual}


def unexpected_row(
    *,
    run_id: str,
    aip: str,
    version: int,
    path: str,
    key: str,
    store: str,
    site: str,
    actual_size: int | None,
    started: datetime,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "mode": "inventory",
        "aip": aip,
        "version": version,
        "path": path,
        "key": key,
        "store": store,
        "site": site,
        "worker": None,
        "algorithm": "size",
        "expected": None,
        "actual": None if actual_size is None else str(actual_size),
        "size": None,
        "actual_size": actual_size,
        "outcome": "unexpected",
        "code": code_of("unexpected"),
        "detail": "object not in the catalogue",
        "started": started,
        "duration": 0.0,
    }


class AuditLog:
    """Writes the rows of one run, one Parquet file per batch and date."""

    def __init__(
        self,
        directory: Path,
        run_id: str,
        *,
        store: Store | None = None,
        prefix: str = "audit-log",
    ) -> None:
        self.directory = directory
        self.run_id = run_id
        self.store = store
        self.prefix = prefix
        self.files: list[Path] = []
        self.rows = 0
        self._seq = 0

    def write(self, rows: Iterable[Mapping[str, Any]]) -> list[Path]:
        by_date: dict[str, list[Mapping[str, Any]]] = {}
        for row in rows:
            started = row["started"]
            day = started.astimezone(UTC).strftime("%Y-%m-%d")
            by_date.setdefault(day, []).append(row)
        written: list[Path] = []
        for day, day_rows in sorted(by_date.items()):
            self._seq += 1
            name = f"{self.run_id}-{self._seq:06d}.parquet"
            table = pa.Table.from_pylist([dict(r) for r in day_rows], schema=SCHEMA)
            folder = self.directory / f"{PARTITION}={day}"
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / name
            tmp = folder / f".{name}.tmp"
            pq.write_table(table, tmp, compression="zstd")
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
            tmp.replace(final)
            written.append(final)
            self.rows += len(day_rows)
            if self.store is not None:
                self._upload(final, f"{PARTITION}={day}/{name}")
        self.files.extend(written)
        return written

    def _upload(self, path: Path, rel: str) -> None:
        assert self.store is not None
        key = join_key(self.prefix, rel)
        try:
            data = path.read_bytes()  # one batch file: small
            self.store.put(key, io.BytesIO(data), size=len(data), overwrite=True)
        except PreservationError as e:
            log.warning("audit log %s not written to store %s: %s", rel, self.store.name, e)


def read_log(directory: Path) -> pa.Table:
    """Every row under a log directory, with the ``date`` partition column."""
    import pyarrow.dataset as ds

    dataset = ds.dataset(directory, format="parquet", partitioning="hive", schema=None)
    return dataset.to_table()
