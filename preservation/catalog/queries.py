"""Read and write helpers of the catalogue, for the packages that may not speak SQL.

Every function takes an open :class:`~sqlalchemy.orm.Session` (from
``Catalog.session()``, which commits, rolls back and translates driver errors) and
never commits by itself.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, func, insert, literal, select
from sqlalchemy.orm import Session

from preservation.catalog.models import (
    COPY_STATES,
    JOB_FINISHED_STATES,
    JOB_STATES,
    Aip,
    AipVersion,
    Copy,
    EventRow,
    File,
    FileCopy,
    Job,
    StoreRow,
    UTCDateTime,
)
from preservation.errors import NotInCatalog, UsageError
from preservation.iterutil import batched
from preservation.model import new_uuid, utcnow

DEFAULT_BATCH_SIZE = 1000
# Columns a caller may give for a file row (``version_id`` is set by add_files_batched).
_FILE_TABLE = cast(Table, File.__table__)
FILE_COLUMNS = frozenset(c.key for c in _FILE_TABLE.columns) - {"id", "version_id"}
_FILE_REQUIRED = frozenset({"path", "kind", "size", "sha256"})


# --- AIPs -------------------------------------------------------------------------


def get_aip(session: Session, aip_id: str) -> Aip | None:
    """The AIP with this id, or None."""
    return session.get(Aip, aip_id)


def require_aip(session: Session, aip_id: str) -> Aip:
    """The AIP with this id; NotInCatalog (CAT002) if there is none."""
    aip = session.get(Aip, aip_id)
    if aip is None:
        raise NotInCatalog(kind="AIP", ident=aip_id)
    return aip


def get_version(session: Session, aip_id: str, number: int | None = None) -> AipVersion:
    """Version ``number`` of an AIP (default: its current version)."""
    if number is None:
        number = require_aip(session, aip_id).current_version
    version = session.execute(
        select(AipVersion).where(AipVersion.aip_id == aip_id, AipVersion.number == number)
    ).scalar_one_or_none()
    if version is None:
        raise NotInCatalog(kind="AIP version", ident=f"{aip_id} v{number}")
    return version


def find_aip_by_payload_key(
    session: Session, payload_key: str, reference_code: str | None
) -> Aip | None:
    """An active AIP with the same payload digests and reference code (a duplicate
    transfer), oldest first; None if there is none."""
    ref = (
        Aip.reference_code.is_(None)
        if reference_code is None
        else (Aip.reference_code == reference_code)
    )
    return session.execute(
        select(Aip)
        .where(Aip.payload_key == payload_key, ref, Aip.state == "active")
        .order_by(Aip.created_at, Aip.id)
        .limit(1)
    ).scalar_one_or_none()


# --- files ------------------------------------------------------------------------


def add_files_batched(
    session: Session,
    version_id: int,
    rows: Iterable[Mapping[str, Any]],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> int:
    """Insert file rows of one version with executemany-style bulk INSERTs.

    ``rows`` is consumed lazily, ``batch_size`` rows at a time, so memory does not
    grow with the number of files. Each row needs ``path``, ``kind``, ``size`` and
    ``sha256``; ``origin_version`` defaults to the version's own number. Returns the
    number of rows inserted.
    """
    if batch_size < 1:
        raise UsageError("batch_size must be at least 1")
    version = session.get(AipVersion, version_id)
    if version is None:
        raise NotInCatalog(kind="AIP version", ident=version_id)
    total = 0
    for batch in batched(rows, batch_size):
        prepared = []
        for row in batch:
            keys = row.keys()
            unknown = keys - FILE_COLUMNS
            missing = _FILE_REQUIRED - keys
            if unknown or missing:
                problems = [f"unknown column(s) {sorted(unknown)}"] if unknown else []
                problems += [f"missing column(s) {sorted(missing)}"] if missing else []
                raise UsageError(f"file row {row.get('path')!r}: {'; '.join(problems)}")
            values = dict(row)
            values["version_id"] = version_id
            values.setdefault("origin_version", version.number)
            prepared.append(values)
        # Core INSERTs of the table (the ORM's bulk path costs about twice the time),
        # one executemany per run of rows with the same columns, in order
        run: list[dict[str, Any]] = []
        for values in prepared:
            if run and values.keys() != run[0].keys():
                session.execute(insert(_FILE_TABLE), run)
                run = []
            run.append(values)
        if run:
            session.execute(insert(_FILE_TABLE), run)
        total += len(prepared)
    return total


# --- stores and copies ------------------------------------------------------------


def add_copy(
    session: Session,
    version_id: int,
    store_name: str,
    state: str = "pending",
    *,
    verified_at: dt.datetime | None = None,
) -> Copy:
    """Record a copy of a version on a store, with one fixity row per file.

    ``verified_at`` records that every file of the copy was verified then (for a copy
    whose every object was checked end to end as it was written): the copy is
    ``verified`` and each file row has outcome ``pass``.
    """
    if verified_at is not None:
        state = "verified"
    if state not in COPY_STATES:
        raise UsageError(f"copy state {state!r} is not one of {', '.join(COPY_STATES)}")
    copy = Copy(version_id=version_id, store_name=store_name, state=state, verified_at=verified_at)
    session.add(copy)
    session.flush()
    columns = ["copy_id", "file_id", "store_name"]
    values = [literal(copy.id), File.id, literal(store_name)]
    if verified_at is not None:
        columns += ["last_verified_at", "outcome"]
        values += [literal(verified_at, UTCDateTime()), literal("pass")]
    session.execute(
        insert(FileCopy).from_select(columns, select(*values).where(File.version_id == version_id))
    )
    return copy


@dataclass(frozen=True)
class DueFile:
    """One file of one copy that is due for a fixity check."""

    file_copy_id: int
    copy_id: int
    aip_id: str
    version: int
    origin_version: int
    path: str
    size: int
    sha256: str
    sha512: str | None
    last_verified_at: dt.datetime | None


def due_file_copies(
    session: Session, store_name: str, verified_before: dt.datetime, limit: int
) -> list[DueFile]:
    """Files on ``store_name`` never verified or last verified before
    ``verified_before``: never-verified first, then least recently verified."""
    base = (
        select(
            FileCopy.id.label("file_copy_id"),
            FileCopy.copy_id,
            AipVersion.aip_id,
            AipVersion.number.label("version"),
            File.origin_version,
            File.path,
            File.size,
            File.sha256,
            File.sha512,
            FileCopy.last_verified_at,
        )
        .join(Copy, Copy.id == FileCopy.copy_id)
        .join(File, File.id == FileCopy.file_id)
        .join(AipVersion, AipVersion.id == Copy.version_id)
        .where(FileCopy.store_name == store_name, Copy.state.not_in(("pending", "deleted")))
    )
    out = [
        DueFile(**r._asdict())
        for r in session.execute(
            base.where(FileCopy.last_verified_at.is_(None)).order_by(FileCopy.id).limit(limit)
        )
    ]
    if len(out) < limit:
        out += [
            DueFile(**r._asdict())
            for r in session.execute(
                base.where(FileCopy.last_verified_at < verified_before)
                .order_by(FileCopy.last_verified_at, FileCopy.id)
                .limit(limit - len(out))
            )
        ]
    return out


# --- summary for 'aip show' -------------------------------------------------------


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def stores_with_copies(session: Session, aip_id: str) -> list[str]:
    """Stores holding a copy (stored or verified) of any version of the AIP."""
    rows = session.execute(
        select(Copy.store_name)
        .join(AipVersion, AipVersion.id == Copy.version_id)
        .where(AipVersion.aip_id == aip_id, Copy.state.in_(("stored", "verified")))
        .distinct()
        .order_by(Copy.store_name)
    ).scalars()
    return list(rows)


def list_aips(session: Session, *, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent AIPs with their current version's counts."""
    rows = session.execute(
        select(
            Aip.id,
            Aip.reference_code,
            Aip.title,
            Aip.current_version,
            Aip.created_at,
            AipVersion.file_count,
            AipVersion.byte_count,
        )
        .join(
            AipVersion,
            (AipVersion.aip_id == Aip.id) & (AipVersion.number == Aip.current_version),
        )
        .where(Aip.state == "active")
        .order_by(Aip.created_at.desc(), Aip.id)
        .limit(limit)
    ).all()
    return [
        {
            "id": r.id,
            "reference_code": r.reference_code,
            "title": r.title,
            "version": r.current_version,
            "created_at": _iso(r.created_at),
            "files": r.file_count,
            "bytes": r.byte_count,
        }
        for r in rows
    ]


def aip_summary(
    session: Session,
    aip_id: str,
    *,
    file_limit: int | None = 1000,
    event_limit: int | None = None,
) -> dict[str, Any]:
    """Everything ``aip show`` prints, as JSON-ready data: the AIP, its versions, the
    files of the current version (at most ``file_limit``), its copies with their
    state and per-file fixity counts, and its events in chain order (with
    ``event_limit``, only the newest that many: every audit adds events)."""
    aip = require_aip(session, aip_id)
    versions = list(
        session.execute(
            select(AipVersion).where(AipVersion.aip_id == aip_id).order_by(AipVersion.number)
        ).scalars()
    )
    by_id = {v.id: v for v in versions}
    current = next((v for v in versions if v.number == aip.current_version), None)

    files: list[dict[str, Any]] = []
    files_total = 0
    if current is not None:
        files_total = session.execute(
            select(func.count()).select_from(File).where(File.version_id == current.id)
        ).scalar_one()
        q = select(File).where(File.version_id == current.id).order_by(File.kind, File.path)
        if file_limit is not None:
            q = q.limit(file_limit)
        files = [
            {
                "path": f.path,
                "kind": f.kind,
                "size": f.size,
                "sha256": f.sha256,
                "puid": f.puid,
                "mime": f.mime,
                "format_name": f.format_name,
                "format_version": f.format_version,
                "origin_version": f.origin_version,
                "file_uuid": f.file_uuid,
                "record_reference_code": f.record_reference_code,
            }
            for f in session.execute(q).scalars()
        ]

    copy_rows = (
        session.execute(
            select(Copy, StoreRow)
            .join(StoreRow, StoreRow.name == Copy.store_name)
            .where(Copy.version_id.in_(list(by_id)))
            .order_by(Copy.version_id, Copy.store_name)
        ).all()
        if by_id
        else []
    )
    fixity: dict[int, dict[str, int]] = {}
    if copy_rows:
        for copy_id, outcome, n in session.execute(
            select(FileCopy.copy_id, FileCopy.outcome, func.count())
            .where(FileCopy.copy_id.in_([c.id for c, _ in copy_rows]))
            .group_by(FileCopy.copy_id, FileCopy.outcome)
        ):
            fixity.setdefault(copy_id, {})[outcome or "unverified"] = n
    copies = [
        {
            "version": by_id[c.version_id].number,
            "store": c.store_name,
            "site": s.site,
            "role": s.role,
            "cold": s.cold,
            "state": c.state,
            "created_at": _iso(c.created_at),
            "verified_at": _iso(c.verified_at),
            "last_audit_at": _iso(c.last_audit_at),
            "fixity": fixity.get(c.id, {}),
        }
        for c, s in copy_rows
    ]

    events = [
        {
            "seq": e.seq,
            "id": e.id,
            "type": e.type,
            "datetime": _iso(e.datetime),
            "outcome": e.outcome,
            "detail": e.detail,
            "outcome_detail": e.outcome_detail,
            "agents": e.agents,
            "version": by_id[e.version_id].number if e.version_id in by_id else None,
            "store": e.store_name,
        }
        for e in _aip_events(session, aip_id, event_limit)
    ]
    events_total = (
        session.execute(
            select(func.count()).select_from(EventRow).where(EventRow.aip_id == aip_id)
        ).scalar_one()
        if event_limit is not None
        else len(events)
    )

    return {
        "aip": {
            "id": aip.id,
            "reference_code": aip.reference_code,
            "title": aip.title,
            "transfer_name": aip.transfer_name,
            "fonds": aip.fonds,
            "year": aip.year,
            "security_level": aip.security_level,
            "open_status": aip.open_status,
            "retention": aip.retention,
            "created_at": _iso(aip.created_at),
            "state": aip.state,
            "current_version": aip.current_version,
            "payload_key": aip.payload_key,
        },
        "versions": [
            {
                "number": v.number,
                "created_at": _iso(v.created_at),
                "reason": v.reason,
                "file_count": v.file_count,
                "byte_count": v.byte_count,
                "mets_sha256": v.mets_sha256,
                "bag_sha256": v.bag_sha256,
                "descriptive": v.descriptive,
                "note": v.note,
            }
            for v in versions
        ],
        "files": files,
        "files_total": files_total,
        "files_truncated": len(files) < files_total,
        "copies": copies,
        "events": events,
        "events_total": events_total,
        "events_truncated": len(events) < events_total,
    }


def _aip_events(session: Session, aip_id: str, limit: int | None) -> list[EventRow]:
    """The AIP's events in chain order; with ``limit`` only the newest ``limit``."""
    q = select(EventRow).where(EventRow.aip_id == aip_id)
    if limit is None:
        return list(session.execute(q.order_by(EventRow.seq)).scalars())
    newest = session.execute(q.order_by(EventRow.seq.desc()).limit(limit)).scalars()
    return list(reversed(list(newest)))


# --- job journal ------------------------------------------------------------------


def start_job(
    session: Session,
    kind: str,
    params: Mapping[str, Any] | None = None,
    *,
    job_id: str | None = None,
    aip_id: str | None = None,
    state: str = "running",
    host: str | None = None,
    pid: int | None = None,
) -> str:
    """Journal the start of a job; returns its id (``job_id`` or a new UUID).

    ``host`` and ``pid`` default to this host and process, so that a later cleanup
    can tell a dead job from a live one.
    """
    _check_job_state(state)
    job_id = job_id or new_uuid()
    now = utcnow()
    session.add(
        Job(
            id=job_id,
            kind=kind,
            state=state,
            aip_id=aip_id,
            created_at=now,
            updated_at=now,
            host=host if host is not None else socket.gethostname(),
            pid=pid if pid is not None else os.getpid(),
            params=dict(params or {}),
        )
    )
    session.flush()
    return job_id


def set_job_state(
    session: Session,
    job_id: str,
    state: str,
    result: Mapping[str, Any] | None = None,
    error: str | None = None,
    *,
    aip_id: str | None = None,
) -> None:
    """Move a job to ``state``; ``result``/``error``/``aip_id`` are stored when given."""
    _check_job_state(state)
    job = session.get(Job, job_id)
    if job is None:
        raise NotInCatalog(kind="job", ident=job_id)
    job.state = state
    job.updated_at = utcnow()
    if result is not None:
        job.result = dict(result)
    if error is not None:
        job.error = error
    if aip_id is not None:
        job.aip_id = aip_id
    session.flush()


def job_dict(job: Job) -> dict[str, Any]:
    """A journal row as plain data (datetimes stay aware ``datetime`` objects)."""
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "aip_id": job.aip_id,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "host": job.host,
        "pid": job.pid,
        "params": dict(job.params or {}),
        "result": job.result,
        "error": job.error,
    }


def get_job(session: Session, job_id: str) -> dict[str, Any] | None:
    job = session.get(Job, job_id)
    return job_dict(job) if job is not None else None


def unfinished_jobs(session: Session, kind: str | None = None) -> list[dict[str, Any]]:
    """Jobs not done, failed or cancelled (oldest first), as :func:`job_dict` data:
    the work a kill left behind (or work still running elsewhere)."""
    q = select(Job).where(Job.state.not_in(JOB_FINISHED_STATES))
    if kind is not None:
        q = q.where(Job.kind == kind)
    return [job_dict(j) for j in session.execute(q.order_by(Job.created_at, Job.id)).scalars()]


def _check_job_state(state: str) -> None:
    if state not in JOB_STATES:
        raise UsageError(f"job state {state!r} is not one of {', '.join(JOB_STATES)}")
