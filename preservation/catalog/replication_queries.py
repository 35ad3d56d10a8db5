"""Catalogue helpers of replication, health and controlled deletion.

The replication queue is the ``copies`` table itself: a copy in state ``pending`` or
``failed`` on a replica store is work to do. Each attempt on a copy is journalled as a
``jobs`` row of kind ``replication`` (params: ``copy_id``, ``version``, ``store``), so
that a killed worker is recognised (a ``running`` job whose process is gone) and its
error stays visible.

Like :mod:`preservation.catalog.queries`, every function takes an open session and
never commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from preservation.catalog.deletion_models import (
    OPEN_DELETION_STATES,
    DeletionRequest,
    Tombstone,
)
from preservation.catalog.models import (
    Aip,
    AipVersion,
    Copy,
    File,
    FileCopy,
    Job,
    StoreRow,
)
from preservation.catalog.queries import add_copy, start_job
from preservation.errors import NotInCatalog
from preservation.model import utcnow

JOB_KIND = "replication"
QUEUE_STATES = ("pending", "failed")
HELD_STATES = ("stored", "verified")  # a copy whose objects are on the store
UNVERIFIED_STATES = ("pending", "failed", "stored")

# (host, pid) -> whether that process still runs
Liveness = Callable[[str | None, int | None], bool]


# --- the queue --------------------------------------------------------------------


@dataclass(frozen=True)
class WorkItem:
    """One copy waiting for replication."""

    copy_id: int
    aip_id: str
    version_id: int
    version: int
    store: str
    state: str
    created_at: dt.datetime
    bytes: int


def enqueue_missing_copies(
    session: Session, stores: Sequence[str], *, aip_id: str | None = None
) -> int:
    """Add a pending copy on each of ``stores`` for every version of an active AIP that
    has no copy there yet (a replica store added after ingest). Returns how many."""
    if not stores:
        return 0
    q = (
        select(AipVersion.id, StoreRow.name)
        .join(Aip, Aip.id == AipVersion.aip_id)
        .join(StoreRow, StoreRow.name.in_(list(stores)))
        .outerjoin(Copy, and_(Copy.version_id == AipVersion.id, Copy.store_name == StoreRow.name))
        .where(Aip.state == "active", Copy.id.is_(None))
        .order_by(AipVersion.id, StoreRow.name)
    )
    if aip_id is not None:
        q = q.where(Aip.id == aip_id)
    missing = session.execute(q).all()
    for version_id, store in missing:
        add_copy(session, version_id, store, state="pending")
    return len(missing)


def queued_copies(
    session: Session, stores: Sequence[str], *, aip_id: str | None = None
) -> list[WorkItem]:
    """Copies of active AIPs in state pending or failed on ``stores``, oldest first."""
    if not stores:
        return []
    q = (
        select(
            Copy.id,
            Aip.id,
            AipVersion.id,
            AipVersion.number,
            Copy.store_name,
            Copy.state,
            Copy.created_at,
            AipVersion.byte_count,
        )
        .join(AipVersion, AipVersion.id == Copy.version_id)
        .join(Aip, Aip.id == AipVersion.aip_id)
        .where(
            Copy.state.in_(QUEUE_STATES),
            Copy.store_name.in_(list(stores)),
            Aip.state == "active",
        )
        .order_by(Copy.created_at, AipVersion.number, Copy.id)
    )
    if aip_id is not None:
        q = q.where(Aip.id == aip_id)
    return [WorkItem(*row) for row in session.execute(q).all()]


def _replication_jobs(session: Session, state: str, aip_id: str) -> list[Job]:
    return list(
        session.execute(
            select(Job).where(Job.kind == JOB_KIND, Job.state == state, Job.aip_id == aip_id)
        ).scalars()
    )


def _job_copy(job: Job) -> int | None:
    value = (job.params or {}).get("copy_id")
    return int(value) if value is not None else None


@dataclass
class Claim:
    """A copy taken for one replication attempt (journalled by ``job_id``)."""

    job_id: str
    copy_id: int
    aip_id: str
    version_id: int
    version: int
    store: str
    previous_state: str
    interrupted_jobs: list[str] = field(default_factory=list)  # dead workers' jobs
    earlier_failures: int = 0


@dataclass(frozen=True)
class NotClaimed:
    copy_id: int
    reason: str
    aip_id: str = ""
    version: int = 0
    store: str = ""


def claim_copy(
    session: Session, copy_id: int, *, alive: Liveness, params: Mapping[str, Any] | None = None
) -> Claim | NotClaimed:
    """Take a queued copy for one attempt, or say why not.

    The copy's row is written first (a no-op update), which takes the write lock on
    SQLite and the row lock on PostgreSQL: two workers never claim the same copy.
    A ``running`` job of a process that is gone is closed as interrupted.
    """
    session.execute(update(Copy).where(Copy.id == copy_id).values(state=Copy.state))
    row = session.execute(
        select(Copy, AipVersion, Aip)
        .join(AipVersion, AipVersion.id == Copy.version_id)
        .join(Aip, Aip.id == AipVersion.aip_id)
        .where(Copy.id == copy_id)
    ).one_or_none()
    if row is None:
        raise NotInCatalog(kind="copy", ident=copy_id)
    copy, version, aip = row

    def skip(reason: str) -> NotClaimed:
        return NotClaimed(copy_id, reason, aip.id, version.number, copy.store_name)

    if aip.state != "active":
        return skip(f"AIP {aip.id} is {aip.state}")
    if copy.state not in QUEUE_STATES:
        return skip(f"copy is {copy.state}")
    interrupted: list[str] = []
    now = utcnow()
    for job in _replication_jobs(session, "running", aip.id):
        if _job_copy(job) != copy_id:
            continue
        if alive(job.host, job.pid):
            return skip(f"being replicated by {job.host} pid {job.pid}")
        job.state = "failed"
        job.updated_at = now
        job.error = "interrupted: the worker process is gone"
        interrupted.append(job.id)
    failures = sum(
        1 for j in _replication_jobs(session, "failed", aip.id) if _job_copy(j) == copy_id
    )
    job_id = start_job(
        session,
        JOB_KIND,
        {
            "copy_id": copy_id,
            "version": version.number,
            "store": copy.store_name,
            **dict(params or {}),
        },
        aip_id=aip.id,
    )
    return Claim(
        job_id=job_id,
        copy_id=copy_id,
        aip_id=aip.id,
        version_id=version.id,
        version=version.number,
        store=copy.store_name,
        previous_state=copy.state,
        interrupted_jobs=interrupted,
        earlier_failures=failures,
    )


@dataclass(frozen=True)
class CopyFile:
    """One file of a version: where its bytes live (``origin_version``) and what they are."""

    path: str
    kind: str
    size: int
    sha256: str
    origin_version: int


def version_files_page(
    session: Session, version_id: int, *, after: str | None = None, limit: int = 2000
) -> list[CopyFile]:
    """Up to ``limit`` files of a version whose path sorts after ``after``, in path
    order: one page of a keyset walk over the ``(version_id, path)`` unique index, so
    that a caller walks a version of any size holding one page at a time."""
    q = (
        select(File.path, File.kind, File.size, File.sha256, File.origin_version)
        .where(File.version_id == version_id)
        .order_by(File.path)
        .limit(limit)
    )
    if after is not None:
        q = q.where(File.path > after)
    return [CopyFile(*r) for r in session.execute(q).all()]


def version_file(session: Session, version_id: int, path: str) -> CopyFile | None:
    """One file of a version by its path, if the catalogue lists it."""
    row = session.execute(
        select(File.path, File.kind, File.size, File.sha256, File.origin_version).where(
            File.version_id == version_id, File.path == path
        )
    ).one_or_none()
    return CopyFile(*row) if row is not None else None


def version_origins(session: Session, version_id: int) -> dict[int, int]:
    """``{origin version: files}`` of a version: the version prefixes its objects live
    under, and how many of its files live under each."""
    rows = session.execute(
        select(File.origin_version, func.count())
        .where(File.version_id == version_id)
        .group_by(File.origin_version)
    ).all()
    return {int(v): int(n) for v, n in rows}


def verified_sources(session: Session, version_id: int, exclude: str) -> list[str]:
    """Stores with a verified copy of the version (primary first, then by name)."""
    rows = session.execute(
        select(Copy.store_name, StoreRow.role)
        .join(StoreRow, StoreRow.name == Copy.store_name)
        .where(
            Copy.version_id == version_id,
            Copy.state == "verified",
            Copy.store_name != exclude,
            StoreRow.configured.is_(True),
        )
    ).all()
    return [name for name, _ in sorted(rows, key=lambda r: (r[1] != "primary", r[0]))]


def mark_copy_verified(session: Session, copy_id: int, when: dt.datetime) -> int:
    """The copy is verified at ``when``: its state, and every file row ``pass``.
    Returns the number of file rows updated."""
    session.execute(
        update(Copy).where(Copy.id == copy_id).values(state="verified", verified_at=when)
    )
    result = session.execute(
        update(FileCopy)
        .where(FileCopy.copy_id == copy_id)
        .values(outcome="pass", last_verified_at=when, detail=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def set_copy_state(session: Session, copy_id: int, state: str) -> None:
    session.execute(update(Copy).where(Copy.id == copy_id).values(state=state))


# --- health -----------------------------------------------------------------------


def copy_state_counts(session: Session) -> dict[str, dict[str, int]]:
    """``{store: {state: copies}}`` over the copies of active AIPs."""
    out: dict[str, dict[str, int]] = {}
    rows = session.execute(
        select(Copy.store_name, Copy.state, func.count())
        .join(AipVersion, AipVersion.id == Copy.version_id)
        .join(Aip, Aip.id == AipVersion.aip_id)
        .where(Aip.state == "active")
        .group_by(Copy.store_name, Copy.state)
    ).all()
    for store, state, n in rows:
        out.setdefault(store, {})[state] = int(n)
    return out


def store_object_totals(session: Session) -> dict[str, tuple[int, int]]:
    """``{store: (objects, bytes)}`` the catalogue expects on each store: the files of
    the stored or verified copies whose bytes live under that copy's own version (an
    object shared by later versions is counted once)."""
    rows = session.execute(
        select(FileCopy.store_name, func.count(), func.coalesce(func.sum(File.size), 0))
        .join(Copy, Copy.id == FileCopy.copy_id)
        .join(File, File.id == FileCopy.file_id)
        .join(AipVersion, AipVersion.id == Copy.version_id)
        .where(Copy.state.in_(HELD_STATES), File.origin_version == AipVersion.number)
        .group_by(FileCopy.store_name)
    ).all()
    return {store: (int(n), int(size)) for store, n, size in rows}


@dataclass(frozen=True)
class OldestUnverified:
    aip_id: str
    version: int
    state: str
    since: dt.datetime


def oldest_unverified(session: Session) -> dict[str, OldestUnverified]:
    """Per store, the oldest copy of an active AIP not yet verified (pending, failed
    or stored)."""
    ranked = (
        select(
            Copy.store_name.label("store"),
            Aip.id.label("aip_id"),
            AipVersion.number.label("version"),
            Copy.state.label("state"),
            Copy.created_at.label("since"),
            func.row_number()
            .over(partition_by=Copy.store_name, order_by=(Copy.created_at, Copy.id))
            .label("rank"),
        )
        .join(AipVersion, AipVersion.id == Copy.version_id)
        .join(Aip, Aip.id == AipVersion.aip_id)
        .where(Copy.state.in_(UNVERIFIED_STATES), Aip.state == "active")
        .subquery()
    )
    rows = session.execute(
        select(
            ranked.c.store, ranked.c.aip_id, ranked.c.version, ranked.c.state, ranked.c.since
        ).where(ranked.c.rank == 1)
    ).all()
    return {r.store: OldestUnverified(r.aip_id, r.version, r.state, r.since) for r in rows}


def audit_times(session: Session) -> dict[str, tuple[dt.datetime | None, int]]:
    """Per store: the oldest ``last_audit_at`` of its held copies (every copy has been
    audited since then) and how many held copies were never audited."""
    rows = session.execute(
        select(
            Copy.store_name,
            func.min(Copy.last_audit_at),
            func.sum(case((Copy.last_audit_at.is_(None), 1), else_=0)),
        )
        .join(AipVersion, AipVersion.id == Copy.version_id)
        .join(Aip, Aip.id == AipVersion.aip_id)
        .where(Copy.state.in_(HELD_STATES), Aip.state == "active")
        .group_by(Copy.store_name)
    ).all()
    out: dict[str, tuple[dt.datetime | None, int]] = {}
    for store, oldest, never in rows:
        out[store] = (oldest, int(never or 0))
    return out


def stale_copies(session: Session, store: str, cutoff: dt.datetime) -> set[int]:
    """Held copies on ``store`` with a file never verified or last verified before
    ``cutoff`` (an index range scan on ``(store_name, last_verified_at)``)."""
    rows = session.execute(
        select(FileCopy.copy_id)
        .join(Copy, Copy.id == FileCopy.copy_id)
        .where(
            FileCopy.store_name == store,
            or_(FileCopy.last_verified_at.is_(None), FileCopy.last_verified_at < cutoff),
            Copy.state.in_(HELD_STATES),
        )
        .distinct()
    ).scalars()
    return set(rows)


def damaged_copies(session: Session) -> set[int]:
    """Copies with a file whose last fixity outcome was a failure or a missing object
    (an audit found damage that no repair has fixed yet): not counted as verified."""
    rows = session.execute(
        select(FileCopy.copy_id).where(FileCopy.outcome.in_(("fail", "missing"))).distinct()
    ).scalars()
    return set(rows)


@dataclass(frozen=True)
class AipCopyRow:
    aip_id: str
    reference_code: str | None
    current_version: int
    version: int
    copy_id: int | None
    store: str | None
    state: str | None


def aip_copy_rows(session: Session, batch: int = 5000) -> Iterator[AipCopyRow]:
    """Every copy of every version of the active AIPs, ordered by AIP (streamed in
    batches; an AIP without copies yields one row with ``store`` None)."""
    q = (
        select(
            Aip.id,
            Aip.reference_code,
            Aip.current_version,
            AipVersion.number,
            Copy.id,
            Copy.store_name,
            Copy.state,
        )
        .join(AipVersion, AipVersion.aip_id == Aip.id)
        .outerjoin(Copy, Copy.version_id == AipVersion.id)
        .where(Aip.state == "active")
        .order_by(Aip.id, AipVersion.number, Copy.store_name)
        .execution_options(yield_per=batch)
    )
    for row in session.execute(q):
        yield AipCopyRow(*row)


def aip_counts(session: Session) -> dict[str, int]:
    """``{state: AIPs}``."""
    return {
        state: int(n)
        for state, n in session.execute(select(Aip.state, func.count()).group_by(Aip.state))
    }


def recent_replication_errors(session: Session, limit: int = 200) -> dict[str, tuple[str, str]]:
    """Per store, the newest failed replication attempt: ``(error, when ISO)``."""
    out: dict[str, tuple[str, str]] = {}
    rows = session.execute(
        select(Job)
        .where(Job.kind == JOB_KIND, Job.state == "failed")
        .order_by(Job.updated_at.desc())
        .limit(limit)
    ).scalars()
    for job in rows:
        store = str((job.params or {}).get("store") or "")
        if store and store not in out:
            out[store] = (job.error or "", job.updated_at.isoformat())
    return out


# --- controlled deletion ----------------------------------------------------------


def add_deletion_request(
    session: Session, *, request_id: str, aip_id: str, reason: str, user: str, when: dt.datetime
) -> DeletionRequest:
    request = DeletionRequest(
        id=request_id,
        aip_id=aip_id,
        reason=reason,
        requested_by=user,
        requested_at=when,
        state="requested",
        history=[history_entry(when, user, "request", reason)],
    )
    session.add(request)
    session.flush()
    return request


def history_entry(when: dt.datetime, user: str, action: str, detail: str = "") -> dict[str, str]:
    return {"at": when.isoformat(), "user": user, "action": action, "detail": detail}


def add_history(request: DeletionRequest, entry: Mapping[str, str]) -> None:
    # A new list, so that the JSON column is seen as changed.
    request.history = [*(request.history or []), dict(entry)]


def open_deletion_request(session: Session, aip_id: str) -> DeletionRequest | None:
    return session.execute(
        select(DeletionRequest)
        .where(DeletionRequest.aip_id == aip_id, DeletionRequest.state.in_(OPEN_DELETION_STATES))
        .order_by(DeletionRequest.requested_at)
        .limit(1)
    ).scalar_one_or_none()


def require_deletion_request(
    session: Session, request_id: str, *, lock: bool = False
) -> DeletionRequest:
    """The request; NotInCatalog if unknown. ``lock`` takes its row (write) lock first."""
    if lock:
        session.execute(
            update(DeletionRequest)
            .where(DeletionRequest.id == request_id)
            .values(state=DeletionRequest.state)
        )
    request = session.get(DeletionRequest, request_id)
    if request is None:
        raise NotInCatalog(kind="deletion request", ident=request_id)
    return request


def live_replication(session: Session, aip_id: str, alive: Liveness) -> Job | None:
    """A running replication job of the AIP whose process is alive, if any."""
    for job in _replication_jobs(session, "running", aip_id):
        if alive(job.host, job.pid):
            return job
    return None


def cancel_queued_copies(session: Session, aip_id: str) -> None:
    """Queued copies of every version of the AIP become ``deleted`` (no more work)."""
    versions = select(AipVersion.id).where(AipVersion.aip_id == aip_id)
    session.execute(
        update(Copy)
        .where(Copy.version_id.in_(versions), Copy.state.in_(QUEUE_STATES))
        .values(state="deleted")
    )


def mark_store_copies_deleted(session: Session, aip_id: str, store: str) -> None:
    versions = select(AipVersion.id).where(AipVersion.aip_id == aip_id)
    session.execute(
        update(Copy)
        .where(Copy.version_id.in_(versions), Copy.store_name == store)
        .values(state="deleted")
    )


def version_summaries(session: Session, aip_id: str) -> list[dict[str, Any]]:
    rows = session.execute(
        select(AipVersion).where(AipVersion.aip_id == aip_id).order_by(AipVersion.number)
    ).scalars()
    return [
        {
            "number": v.number,
            "created_at": v.created_at.isoformat(),
            "reason": v.reason,
            "file_count": v.file_count,
            "byte_count": v.byte_count,
            "bag_sha256": v.bag_sha256,
            "mets_sha256": v.mets_sha256,
        }
        for v in rows
    ]


def add_tombstone(
    session: Session,
    *,
    aip_id: str,
    request: DeletionRequest,
    when: dt.datetime,
    event_id: str,
    document: Mapping[str, Any],
) -> Tombstone:
    stone = Tombstone(
        aip_id=aip_id,
        request_id=request.id,
        deleted_at=when,
        requested_by=request.requested_by,
        approved_by=request.approved_by or "",
        reason=request.reason,
        event_id=event_id,
        document=dict(document),
    )
    session.add(stone)
    session.flush()
    return stone


def get_tombstone(session: Session, aip_id: str) -> Tombstone | None:
    return session.get(Tombstone, aip_id)


def deletion_request_dict(request: DeletionRequest) -> dict[str, Any]:
    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": request.id,
        "aip": request.aip_id,
        "state": request.state,
        "reason": request.reason,
        "requested_by": request.requested_by,
        "requested_at": iso(request.requested_at),
        "approved_by": request.approved_by,
        "approved_at": iso(request.approved_at),
        "completed_at": iso(request.completed_at),
        "detail": request.detail,
        "history": list(request.history or []),
    }


__all__ = [
    "JOB_KIND",
    "AipCopyRow",
    "Claim",
    "CopyFile",
    "NotClaimed",
    "OldestUnverified",
    "WorkItem",
    "add_deletion_request",
    "add_history",
    "add_tombstone",
    "aip_copy_rows",
    "aip_counts",
    "audit_times",
    "cancel_queued_copies",
    "claim_copy",
    "copy_state_counts",
    "deletion_request_dict",
    "enqueue_missing_copies",
    "get_tombstone",
    "history_entry",
    "live_replication",
    "mark_copy_verified",
    "mark_store_copies_deleted",
    "oldest_unverified",
    "open_deletion_request",
    "queued_copies",
    "recent_replication_errors",
    "require_deletion_request",
    "set_copy_state",
    "stale_copies",
    "store_object_totals",
    "verified_sources",
    "version_file",
    "version_files_page",
    "version_origins",
    "version_summaries",
]
