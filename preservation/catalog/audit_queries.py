"""Catalogue queries of fixity audits, incidents, repairs and scheduler leases.

Like :mod:`preservation.catalog.queries`, every function takes an open session and
never commits; :mod:`preservation.audit` calls these and never writes SQL itself.

Leases (a job runs on one host at a time) are rows of ``jobs`` with kind ``lease``:
their id is derived from the lease name, ``state`` is ``running`` while held,
``host``/``pid`` name the holder and ``updated_at`` is its last heartbeat. Taking a
lease is one conditional UPDATE (or the INSERT of the row), atomic on SQLite and
PostgreSQL alike; a lease whose holder stopped renewing it for ``ttl`` seconds, or
whose process is gone from this host, can be taken over.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, exc, func, insert, or_, select, update
from sqlalchemy.orm import Session

from preservation.catalog.models import (
    Aip,
    AipVersion,
    Copy,
    File,
    FileCopy,
    Incident,
    Job,
    StoreRow,
)
from preservation.errors import NotInCatalog, UsageError

LEASE_KIND = "lease"
AUDIT_KIND = "audit"
_LEASE_NAMESPACE = uuid.UUID("8f6f0a52-3b0e-4d39-9a43-6c1f0b7d2e41")
_ACTIVE_COPY = ("stored", "verified")  # copies whose objects are on the store
OPEN_INCIDENT_STATES = ("open",)


# --- audit candidates -----------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One file of one copy, with what a fixity check needs to know about it."""

    file_copy_id: int
    copy_id: int
    file_id: int
    version_id: int
    aip_id: str
    version: int
    origin_version: int
    path: str
    kind: str
    size: int
    sha256: str
    sha512: str | None
    file_uuid: str | None
    last_verified_at: dt.datetime | None


@dataclass(frozen=True)
class Cursor:
    """Where a keyset scan of candidates stopped: never-verified rows come first (by
    id), then verified ones by (last_verified_at, id)."""

    never: bool
    last_verified_at: dt.datetime | None
    file_copy_id: int

    @classmethod
    def after(cls, c: Candidate) -> Cursor:
        return cls(c.last_verified_at is None, c.last_verified_at, c.file_copy_id)


def _candidate_select(store_name: str | None = None, aip_id: str | None = None) -> Any:
    """File copies with what a check needs; with ``store_name``, only that store's
    active copies (``stored``/``verified``); with ``aip_id``, only that AIP's."""
    q = (
        select(
            FileCopy.id.label("file_copy_id"),
            FileCopy.copy_id,
            FileCopy.file_id,
            Copy.version_id,
            AipVersion.aip_id,
            AipVersion.number.label("version"),
            File.origin_version,
            File.path,
            File.kind,
            File.size,
            File.sha256,
            File.sha512,
            File.file_uuid,
            FileCopy.last_verified_at,
        )
        .join(Copy, Copy.id == FileCopy.copy_id)
        .join(File, File.id == FileCopy.file_id)
        .join(AipVersion, AipVersion.id == Copy.version_id)
    )
    if store_name is not None:
        q = q.where(FileCopy.store_name == store_name, Copy.state.in_(_ACTIVE_COPY))
    if aip_id is not None:
        q = q.where(AipVersion.aip_id == aip_id)
    return q


def audit_candidates(
    session: Session,
    store_name: str,
    *,
    verified_before: dt.datetime,
    limit: int,
    after: Cursor | None = None,
    aip_id: str | None = None,
) -> list[Candidate]:
    """The next ``limit`` file copies of ``store_name`` due for a check: never verified
    first (by id), then last verified before ``verified_before``, least recently
    verified first. ``after`` continues a scan (keyset pagination: rows a run has
    updated meanwhile are not seen twice)."""
    if limit < 1:
        raise UsageError("limit must be at least 1")
    base = _candidate_select(store_name, aip_id)
    conn = session.connection()  # Core rows: no ORM loading machinery per row
    out: list[Candidate] = []
    if after is None or after.never:
        q = base.where(FileCopy.last_verified_at.is_(None))
        if after is not None:
            q = q.where(FileCopy.id > after.file_copy_id)
        out = [
            Candidate(*r) for r in conn.execute(q.order_by(FileCopy.id).limit(limit))
        ]
        after = None
    if len(out) < limit:
        q = base.where(FileCopy.last_verified_at < verified_before)
        if after is not None and after.last_verified_at is not None:
            # One index range (store_name, last_verified_at >= cursor) walked in order;
            # the tie-break on id is a filter. Written as "a > x OR (a = x AND id > y)"
            # instead, SQLite (with bound parameters) plans two index scans merged
            # and sorted: every due row read for each page, seconds at millions of rows.
            q = q.where(
                FileCopy.last_verified_at >= after.last_verified_at,
                or_(
                    FileCopy.last_verified_at > after.last_verified_at,
                    FileCopy.id > after.file_copy_id,
                ),
            )
        q = q.order_by(FileCopy.last_verified_at, FileCopy.id).limit(limit - len(out))
        out += [Candidate(*r) for r in conn.execute(q)]
    return out


def store_totals(session: Session, store_name: str) -> tuple[int, int]:
    """(file copies, bytes) held by the active copies of a store."""
    row = session.execute(
        select(func.count(FileCopy.id), func.coalesce(func.sum(File.size), 0))
        .join(Copy, Copy.id == FileCopy.copy_id)
        .join(File, File.id == FileCopy.file_id)
        .where(FileCopy.store_name == store_name, Copy.state.in_(_ACTIVE_COPY))
    ).one()
    return int(row[0]), int(row[1])


@dataclass(frozen=True)
class CopyInfo:
    copy_id: int
    version_id: int
    aip_id: str
    version: int
    store_name: str
    state: str
    file_count: int


def copy_infos(session: Session, copy_ids: Iterable[int]) -> dict[int, CopyInfo]:
    ids = sorted(set(copy_ids))
    out: dict[int, CopyInfo] = {}
    for chunk in _chunks(ids, 500):
        rows = session.execute(
            select(
                Copy.id,
                Copy.version_id,
                AipVersion.aip_id,
                AipVersion.number,
                Copy.store_name,
                Copy.state,
                AipVersion.file_count,
            )
            .join(AipVersion, AipVersion.id == Copy.version_id)
            .where(Copy.id.in_(chunk))
        )
        for r in rows:
            out[r[0]] = CopyInfo(r[0], r[1], r[2], r[3], r[4], r[5], int(r[6] or 0))
    return out


def copy_files(
    session: Session, copy_id: int, paths: Sequence[str] | None = None
) -> list[Candidate]:
    """File copies of one copy (all, or only those at ``paths``), by path."""
    q = _candidate_select().where(FileCopy.copy_id == copy_id)
    conn = session.connection()
    if paths is not None:
        out: list[Candidate] = []
        for chunk in _chunks(list(paths), 500):
            out += [
                Candidate(*r)
                for r in conn.execute(q.where(File.path.in_(chunk)).order_by(File.path))
            ]
        return out
    return [Candidate(*r) for r in conn.execute(q.order_by(File.path))]


def known_object_paths(
    session: Session, version_id: int, origin_version: int, paths: Sequence[str]
) -> set[str]:
    """Which of ``paths`` are files of the version stored under its own prefix."""
    found: set[str] = set()
    for chunk in _chunks(list(paths), 500):
        found.update(
            session.execute(
                select(File.path).where(
                    File.version_id == version_id,
                    File.origin_version == origin_version,
                    File.path.in_(chunk),
                )
            ).scalars()
        )
    return found


def record_checks(session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
    """Bulk-update file copies: each row has ``id``, ``last_verified_at``, ``outcome``
    and ``detail``. Returns the number of rows given."""
    if rows:
        # One executemany of a plain UPDATE straight to the driver: the ORM's bulk
        # update (and even a Core executemany, which builds every row's parameters
        # through the compiler) costs several times more Python per row, which an
        # audit of many small files feels. Values go through the columns' own bind
        # processors, so they are stored exactly as the ORM would store them.
        conn = session.connection()
        table = FileCopy.metadata.tables[FileCopy.__tablename__]
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        sql = (
            f"UPDATE {table.name} SET last_verified_at = {mark}, outcome = {mark},"
            f" detail = {mark} WHERE id = {mark}"
        )
        when = table.c.last_verified_at.type.bind_processor(conn.dialect) or _same
        conn.exec_driver_sql(
            sql,
            [(when(r["last_verified_at"]), r["outcome"], r["detail"], r["id"]) for r in rows],
        )
    return len(rows)


def _same(value: Any) -> Any:
    return value


def refresh_copy_states(
    session: Session, copy_ids: Iterable[int], when: dt.datetime
) -> dict[int, str]:
    """After an audit or a repair, for each copy:

    - ``last_audit_at`` = the oldest ``last_verified_at`` of its files (every file was
      checked since then), or None while some file was never checked;
    - a ``stored`` copy whose every file passed its last check becomes ``verified``.

    A failing file does not change the copy's state: ``failed`` is replication's
    queue (a copy to write again), and a damaged copy is repaired from the incident,
    with the damaged object kept in quarantine. Returns each copy's state.
    """
    states: dict[int, str] = {}
    for copy_id in sorted(set(copy_ids)):
        copy = session.get(Copy, copy_id)
        if copy is None:
            raise NotInCatalog(kind="copy", ident=copy_id)
        row = session.execute(
            select(
                func.count(FileCopy.id),
                func.count(FileCopy.last_verified_at),
                func.min(FileCopy.last_verified_at),
                func.coalesce(func.sum(case((FileCopy.outcome == "pass", 1), else_=0)), 0),
            ).where(FileCopy.copy_id == copy_id)
        ).one()
        total, checked, oldest, passed = int(row[0]), int(row[1]), row[2], int(row[3])
        if isinstance(oldest, str):  # SQLite hands back the stored text of an aggregate
            oldest = dt.datetime.fromisoformat(oldest).replace(tzinfo=dt.UTC)
        copy.last_audit_at = oldest if total and checked == total else None
        if copy.state == "stored" and total and passed == total:
            copy.state = "verified"
            copy.verified_at = when
        states[copy_id] = copy.state
    session.flush()
    return states


# --- copies of one file (repair) ------------------------------------------------


@dataclass(frozen=True)
class FileCopyInfo:
    file_copy_id: int
    copy_id: int
    store_name: str
    site: str
    copy_state: str
    outcome: str | None
    last_verified_at: dt.datetime | None


@dataclass(frozen=True)
class FileRef:
    file_id: int
    version_id: int
    aip_id: str
    version: int
    origin_version: int
    path: str
    size: int
    sha256: str
    sha512: str | None
    file_uuid: str | None


def file_ref(session: Session, version_id: int, path: str) -> FileRef:
    row = session.execute(
        select(
            File.id,
            File.version_id,
            AipVersion.aip_id,
            AipVersion.number,
            File.origin_version,
            File.path,
            File.size,
            File.sha256,
            File.sha512,
            File.file_uuid,
        )
        .join(AipVersion, AipVersion.id == File.version_id)
        .where(File.version_id == version_id, File.path == path)
    ).one_or_none()
    if row is None:
        raise NotInCatalog(kind="file", ident=f"{path} of version {version_id}")
    values: tuple[Any, ...] = tuple(row)
    return FileRef(*values)


def copies_of_file(session: Session, file_id: int) -> list[FileCopyInfo]:
    """Every copy of one file, on every store: passing, most recently verified first."""
    rows = session.execute(
        select(
            FileCopy.id,
            FileCopy.copy_id,
            FileCopy.store_name,
            StoreRow.site,
            Copy.state,
            FileCopy.outcome,
            FileCopy.last_verified_at,
        )
        .join(Copy, Copy.id == FileCopy.copy_id)
        .join(StoreRow, StoreRow.name == FileCopy.store_name)
        .where(FileCopy.file_id == file_id)
    ).all()
    infos = [FileCopyInfo(*r) for r in rows]
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    infos.sort(
        key=lambda i: (
            i.outcome != "pass",
            -(i.last_verified_at or epoch).timestamp(),
            i.store_name,
        )
    )
    return infos


def file_copy_id(session: Session, copy_id: int, file_id: int) -> int | None:
    return session.execute(
        select(FileCopy.id).where(FileCopy.copy_id == copy_id, FileCopy.file_id == file_id)
    ).scalar_one_or_none()


def copy_id_of(session: Session, version_id: int, store_name: str) -> int | None:
    return session.execute(
        select(Copy.id).where(Copy.version_id == version_id, Copy.store_name == store_name)
    ).scalar_one_or_none()


# --- incidents ------------------------------------------------------------------


def incident_dict(inc: Incident) -> dict[str, Any]:
    return {
        "id": inc.id,
        "aip_id": inc.aip_id,
        "version_id": inc.version_id,
        "store": inc.store_name,
        "path": inc.path,
        "kind": inc.kind,
        "severity": inc.severity,
        "state": inc.state,
        "opened_at": inc.opened_at,
        "closed_at": inc.closed_at,
        "evidence": dict(inc.evidence or {}),
        "note": inc.note,
    }


def find_open_incident(
    session: Session,
    *,
    aip_id: str | None,
    version_id: int | None,
    store_name: str | None,
    path: str | None,
    kind: str,
) -> dict[str, Any] | None:
    inc = session.execute(
        select(Incident)
        .where(
            Incident.aip_id == aip_id if aip_id is not None else Incident.aip_id.is_(None),
            Incident.version_id == version_id
            if version_id is not None
            else Incident.version_id.is_(None),
            Incident.store_name == store_name,
            Incident.path == path,
            Incident.kind == kind,
            Incident.state.in_(OPEN_INCIDENT_STATES),
        )
        .order_by(Incident.id)
        .limit(1)
    ).scalar_one_or_none()
    return incident_dict(inc) if inc is not None else None


def add_incident(
    session: Session,
    *,
    aip_id: str | None,
    version_id: int | None,
    store_name: str | None,
    path: str | None,
    kind: str,
    severity: str,
    evidence: Mapping[str, Any],
    when: dt.datetime,
    note: str | None = None,
) -> int:
    inc = Incident(
        aip_id=aip_id,
        version_id=version_id,
        store_name=store_name,
        path=path,
        kind=kind,
        severity=severity,
        state="open",
        opened_at=when,
        evidence=dict(evidence),
        note=note,
    )
    session.add(inc)
    session.flush()
    return inc.id


def update_incident(
    session: Session,
    incident_id: int,
    *,
    evidence: Mapping[str, Any] | None = None,
    severity: str | None = None,
    state: str | None = None,
    note: str | None = None,
    closed_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Merge ``evidence`` into the incident's evidence and set the given fields."""
    inc = session.get(Incident, incident_id)
    if inc is None:
        raise NotInCatalog(kind="incident", ident=incident_id)
    if evidence:
        merged = dict(inc.evidence or {})
        merged.update(evidence)
        inc.evidence = merged  # a new object, so the change is seen
    if severity is not None:
        inc.severity = severity
    if state is not None:
        inc.state = state
    if note is not None:
        inc.note = note
    if closed_at is not None:
        inc.closed_at = closed_at
    session.flush()
    return incident_dict(inc)


def get_incident(session: Session, incident_id: int) -> dict[str, Any]:
    inc = session.get(Incident, incident_id)
    if inc is None:
        raise NotInCatalog(kind="incident", ident=incident_id)
    return incident_dict(inc)


def list_incidents(
    session: Session,
    *,
    states: Sequence[str] = OPEN_INCIDENT_STATES,
    store_name: str | None = None,
    ids: Sequence[int] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    q = select(Incident).where(Incident.state.in_(list(states)))
    if store_name is not None:
        q = q.where(Incident.store_name == store_name)
    if ids is not None:
        q = q.where(Incident.id.in_(list(ids)))
    q = q.order_by(Incident.id)
    if limit is not None:
        q = q.limit(limit)
    return [incident_dict(i) for i in session.execute(q).scalars()]


def open_incidents_of_copy(session: Session, version_id: int, store_name: str) -> int:
    return int(
        session.execute(
            select(func.count(Incident.id)).where(
                Incident.version_id == version_id,
                Incident.store_name == store_name,
                Incident.state.in_(OPEN_INCIDENT_STATES),
            )
        ).scalar_one()
    )


# --- audit runs and status --------------------------------------------------------


def recent_audit_runs(session: Session, limit: int = 10) -> list[dict[str, Any]]:
    from preservation.catalog.queries import job_dict

    jobs = session.execute(
        select(Job).where(Job.kind == AUDIT_KIND).order_by(Job.created_at.desc()).limit(limit)
    ).scalars()
    return [job_dict(j) for j in jobs]


@dataclass(frozen=True)
class Coverage:
    store: str
    file_copies: int
    bytes: int
    verified_in_interval: int
    overdue: int
    never_verified: int
    failing: int
    oldest_verified_at: dt.datetime | None

    @property
    def share(self) -> float:
        return self.verified_in_interval / self.file_copies if self.file_copies else 1.0


def coverage(session: Session, store_name: str, since: dt.datetime) -> Coverage:
    """How much of a store's active copies passed a check at or after ``since``."""
    recent_ok = and_(FileCopy.outcome == "pass", FileCopy.last_verified_at >= since)
    row = session.execute(
        select(
            func.count(FileCopy.id),
            func.coalesce(func.sum(File.size), 0),
            func.coalesce(func.sum(case((recent_ok, 1), else_=0)), 0),
            func.coalesce(
                func.sum(
                    case(
                        (
                            or_(
                                FileCopy.last_verified_at.is_(None),
                                FileCopy.last_verified_at < since,
                            ),
                            1,
                        ),
                        else_=0,
                    )
                ),
                0,
            ),
            func.coalesce(func.sum(case((FileCopy.last_verified_at.is_(None), 1), else_=0)), 0),
            func.coalesce(
                func.sum(case((FileCopy.outcome.in_(("fail", "missing")), 1), else_=0)), 0
            ),
            func.min(FileCopy.last_verified_at),
        )
        .join(Copy, Copy.id == FileCopy.copy_id)
        .join(File, File.id == FileCopy.file_id)
        .where(FileCopy.store_name == store_name, Copy.state.in_(_ACTIVE_COPY))
    ).one()
    oldest = row[6]
    if isinstance(oldest, str):  # SQLite returns the raw text of an aggregate
        oldest = dt.datetime.fromisoformat(oldest).replace(tzinfo=dt.UTC)
    return Coverage(
        store=store_name,
        file_copies=int(row[0]),
        bytes=int(row[1]),
        verified_in_interval=int(row[2]),
        overdue=int(row[3]),
        never_verified=int(row[4]),
        failing=int(row[5]),
        oldest_verified_at=oldest,
    )


def incident_counts(session: Session) -> dict[str, dict[str, int]]:
    """Open incidents per store and severity."""
    out: dict[str, dict[str, int]] = {}
    for store, severity, n in session.execute(
        select(Incident.store_name, Incident.severity, func.count(Incident.id))
        .where(Incident.state.in_(OPEN_INCIDENT_STATES))
        .group_by(Incident.store_name, Incident.severity)
    ):
        out.setdefault(store or "", {})[severity] = int(n)
    return out


def aip_exists(session: Session, aip_id: str) -> bool:
    return session.get(Aip, aip_id) is not None


# --- leases -----------------------------------------------------------------------


def lease_id(name: str) -> str:
    return str(uuid.uuid5(_LEASE_NAMESPACE, f"lease:{name}"))


@dataclass(frozen=True)
class LeaseHolder:
    name: str
    host: str | None
    pid: int | None
    since: dt.datetime
    heartbeat: dt.datetime


def acquire_lease(
    session: Session,
    name: str,
    *,
    host: str,
    pid: int,
    ttl_seconds: float,
    now: dt.datetime,
    alive: Callable[[str | None, int | None], bool],
) -> LeaseHolder | None:
    """Take the lease ``name``; None when taken, else the holder that keeps it."""
    lid = lease_id(name)
    row = session.execute(
        select(Job.state, Job.host, Job.pid, Job.created_at, Job.updated_at).where(Job.id == lid)
    ).one_or_none()
    if row is None:
        try:
            with session.begin_nested():
                session.execute(
                    insert(Job).values(
                        id=lid,
                        kind=LEASE_KIND,
                        state="running",
                        created_at=now,
                        updated_at=now,
                        host=host,
                        pid=pid,
                        params={"name": name},
                    )
                )
            return None
        except exc.IntegrityError:
            row = session.execute(
                select(Job.state, Job.host, Job.pid, Job.created_at, Job.updated_at).where(
                    Job.id == lid
                )
            ).one()
    state, holder_host, holder_pid, since, heartbeat = row
    holder = LeaseHolder(name, holder_host, holder_pid, since, heartbeat)
    expired = heartbeat < now - dt.timedelta(seconds=ttl_seconds)
    if state == "running" and not expired and alive(holder_host, holder_pid):
        return holder
    taken = session.execute(
        update(Job)
        .where(Job.id == lid, Job.state == state, Job.updated_at == heartbeat)
        .values(state="running", host=host, pid=pid, created_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return None if taken.rowcount == 1 else holder  # type: ignore[attr-defined]


def renew_lease(session: Session, name: str, *, host: str, pid: int, now: dt.datetime) -> bool:
    """Heartbeat; False when the lease is no longer ours."""
    done = session.execute(
        update(Job)
        .where(Job.id == lease_id(name), Job.state == "running", Job.host == host, Job.pid == pid)
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def release_lease(session: Session, name: str, *, host: str, pid: int, now: dt.datetime) -> bool:
    done = session.execute(
        update(Job)
        .where(Job.id == lease_id(name), Job.state == "running", Job.host == host, Job.pid == pid)
        .values(state="done", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def _chunks(items: list[Any], n: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
