"""The figures of the dashboard and of ``/metrics``: counts over the catalogue.

Every function that counts records takes ``sees_restricted`` and filters the AIPs with
:func:`preservation.catalog.visibility.aip_visible`, so that a reader's figures are
those of the public records only (issue 7: restricted records are invisible to
readers in counts too). Rows that belong to no AIP (an incident on a store, a job)
are counted only for principals who see restricted records.

Like the other query modules, every function takes an open session and never commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select, true
from sqlalchemy.orm import Session

from preservation.catalog.models import (
    Aip,
    AipVersion,
    Copy,
    EventRow,
    FileCopy,
    Incident,
    Job,
)
from preservation.catalog.visibility import aip_visible

HELD_STATES = ("stored", "verified")
INGEST_KIND = "ingest"
SCHEDULE_KIND = "schedule"
LEASE_KIND = "lease"
FIXITY_EVENT = "fixity check"


def _aware(value: Any) -> dt.datetime | None:
    """A timestamp from an aggregate: SQLite returns the stored (naive UTC) text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _current(visible: ColumnElement[bool]) -> ColumnElement[bool]:
    """Active AIPs the principal sees, at their current version (joined as AipVersion)."""
    return and_(Aip.state == "active", AipVersion.number == Aip.current_version, visible)


# --- overview ---------------------------------------------------------------------


@dataclass(frozen=True)
class Holdings:
    aips: int
    files: int  # payload files of the current versions
    bytes: int  # their bytes
    versions: int  # every version of those AIPs


def holdings(session: Session, sees_restricted: bool) -> Holdings:
    """Active AIPs the principal sees, with the payload of their current versions."""
    visible = aip_visible(sees_restricted)
    aips, files, size = session.execute(
        select(
            func.count(Aip.id),
            func.coalesce(func.sum(AipVersion.file_count), 0),
            func.coalesce(func.sum(AipVersion.byte_count), 0),
        )
        .join(AipVersion, AipVersion.aip_id == Aip.id)
        .where(_current(visible))
    ).one()
    versions = session.execute(
        select(func.count(AipVersion.id))
        .join(Aip, Aip.id == AipVersion.aip_id)
        .where(Aip.state == "active", visible)
    ).scalar_one()
    return Holdings(int(aips), int(files), int(size), int(versions))


def copy_states(session: Session, sees_restricted: bool) -> dict[str, dict[str, int]]:
    """``{store: {state: copies}}`` over every version of the active AIPs seen."""
    out: dict[str, dict[str, int]] = {}
    rows = session.execute(
        select(Copy.store_name, Copy.state, func.count(Copy.id))
        .join(AipVersion, AipVersion.id == Copy.version_id)
        .join(Aip, Aip.id == AipVersion.aip_id)
        .where(Aip.state == "active", aip_visible(sees_restricted))
        .group_by(Copy.store_name, Copy.state)
    ).all()
    for store, state, n in rows:
        out.setdefault(store, {})[state] = int(n)
    return out


@dataclass(frozen=True)
class StoreHolding:
    aips: int  # AIPs whose current version is held (stored or verified) on the store
    files: int  # payload files of those versions
    bytes: int


def store_holdings(session: Session, sees_restricted: bool) -> dict[str, StoreHolding]:
    """Per store: the current versions it holds (stored or verified) and their payload."""
    rows = session.execute(
        select(
            Copy.store_name,
            func.count(Aip.id),
            func.coalesce(func.sum(AipVersion.file_count), 0),
            func.coalesce(func.sum(AipVersion.byte_count), 0),
        )
        .join(AipVersion, AipVersion.id == Copy.version_id)
        .join(Aip, Aip.id == AipVersion.aip_id)
        .where(_current(aip_visible(sees_restricted)), Copy.state.in_(HELD_STATES))
        .group_by(Copy.store_name)
    ).all()
    return {store: StoreHolding(int(a), int(f), int(b)) for store, a, f, b in rows}


def verified_store_sets(
    session: Session, sees_restricted: bool, stores: Sequence[str]
) -> dict[frozenset[str], int]:
    """How many active AIPs seen have their current version verified on exactly each
    set of ``stores`` (copies with a file whose last check failed or found it missing
    do not count, as in :mod:`preservation.storage.health`): ``{stores: AIPs}``.

    Computed in SQL: each store is a bit, an AIP's verified copies add up to a mask,
    and the AIPs are counted per mask, so the answer has at most 2^len(stores) rows
    however many AIPs there are.
    """
    names = list(dict.fromkeys(stores))
    bits = {name: 1 << i for i, name in enumerate(names)}
    damaged = select(FileCopy.copy_id).where(FileCopy.outcome.in_(("fail", "missing")))
    bit = case(
        *((Copy.store_name == name, value) for name, value in bits.items()), else_=0
    ) if bits else literal(0)  # fmt: skip
    per_aip = (
        select(Aip.id.label("aip"), func.coalesce(func.sum(bit), 0).label("mask"))
        .join(AipVersion, AipVersion.aip_id == Aip.id)
        .outerjoin(
            Copy,
            and_(
                Copy.version_id == AipVersion.id,
                Copy.state == "verified",
                Copy.id.not_in(damaged),
            ),
        )
        .where(_current(aip_visible(sees_restricted)))
        .group_by(Aip.id)
        .subquery()
    )
    out: dict[frozenset[str], int] = {}
    for mask, n in session.execute(select(per_aip.c.mask, func.count()).group_by(per_aip.c.mask)):
        key = frozenset(name for name, value in bits.items() if int(mask) & value)
        out[key] = out.get(key, 0) + int(n)
    return out


def _incident_scope(sees_restricted: bool) -> ColumnElement[bool]:
    if sees_restricted:
        return true()
    # readers: only incidents of AIPs they see (never one of a store or of no AIP)
    return and_(Incident.aip_id.is_not(None), aip_visible(False))


def open_incidents(session: Session, sees_restricted: bool) -> dict[tuple[str, str], int]:
    """Open incidents ``{(store or '', severity): count}``."""
    rows = session.execute(
        select(Incident.store_name, Incident.severity, func.count(Incident.id))
        .outerjoin(Aip, Aip.id == Incident.aip_id)
        .where(Incident.state == "open", _incident_scope(sees_restricted))
        .group_by(Incident.store_name, Incident.severity)
    ).all()
    return {(store or "", severity): int(n) for store, severity, n in rows}


def last_audit(session: Session) -> tuple[dt.datetime | None, str | None]:
    """When the newest audit run that finished ended, and its state."""
    row = session.execute(
        select(Job.updated_at, Job.state)
        .where(Job.kind == "audit", Job.state.in_(("done", "failed", "cancelled")))
        .order_by(Job.updated_at.desc())
        .limit(1)
    ).one_or_none()
    return (None, None) if row is None else (row[0], row[1])


# --- audits -----------------------------------------------------------------------


def fixity_checks_per_day(
    session: Session, sees_restricted: bool, since: dt.datetime
) -> dict[dt.date, dict[str, int]]:
    """``{day (UTC): {outcome: fixity check events}}`` since ``since``: one event per
    AIP copy and audit run (see :mod:`preservation.audit.events`)."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":  # the UTC day, whatever the server's TimeZone
        day = func.date(func.timezone("UTC", EventRow.datetime))
    else:  # SQLite keeps naive UTC text
        day = func.date(EventRow.datetime)
    rows = session.execute(
        select(day, EventRow.outcome, func.count(EventRow.seq))
        .join(Aip, Aip.id == EventRow.aip_id)
        .where(
            EventRow.type == FIXITY_EVENT,
            EventRow.datetime >= since,
            aip_visible(sees_restricted),
        )
        .group_by(day, EventRow.outcome)
    ).all()
    out: dict[dt.date, dict[str, int]] = {}
    for value, outcome, n in rows:
        key = dt.date.fromisoformat(value) if isinstance(value, str) else value
        out.setdefault(key, {})[outcome] = int(n)
    return out


@dataclass(frozen=True)
class StoreCoverage:
    file_copies: int
    verified_in_interval: int  # last check passed at or after the cutoff
    overdue: int  # never checked, or last checked before the cutoff
    failing: int  # last check failed or found the object missing


def coverage(
    session: Session, sees_restricted: bool, store: str, cutoff: dt.datetime
) -> StoreCoverage:
    """Fixity coverage of the held copies on ``store`` of the AIPs seen."""
    overdue = or_(FileCopy.last_verified_at.is_(None), FileCopy.last_verified_at < cutoff)
    recent = and_(FileCopy.outcome == "pass", FileCopy.last_verified_at >= cutoff)
    failing = FileCopy.outcome.in_(("fail", "missing"))
    row = session.execute(
        select(
            func.count(FileCopy.id),
            func.coalesce(func.sum(case((recent, 1), else_=0)), 0),
            func.coalesce(func.sum(case((overdue, 1), else_=0)), 0),
            func.coalesce(func.sum(case((failing, 1), else_=0)), 0),
        )
        .join(Copy, Copy.id == FileCopy.copy_id)
        .join(AipVersion, AipVersion.id == Copy.version_id)
        .join(Aip, Aip.id == AipVersion.aip_id)
        .where(
            FileCopy.store_name == store,
            Copy.state.in_(HELD_STATES),
            Aip.state == "active",
            aip_visible(sees_restricted),
        )
    ).one()
    return StoreCoverage(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


# --- jobs -------------------------------------------------------------------------


def last_successes(session: Session) -> dict[str, dt.datetime]:
    """The end of the newest successful run per job: the job kind (``ingest``,
    ``audit``, ``replication``, ``version``) or, for scheduled runs, the scheduler's
    job name (``audit:primary``, ``format-risk``...). Says nothing about records."""
    out: dict[str, dt.datetime] = {}
    for kind, when in session.execute(
        select(Job.kind, func.max(Job.updated_at))
        .where(Job.state == "done", Job.kind.not_in((SCHEDULE_KIND, LEASE_KIND)))
        .group_by(Job.kind)
    ):
        stamp = _aware(when)
        if stamp is not None:
            out[str(kind)] = stamp
    name = Job.params["job"].as_string()
    for job, when in session.execute(
        select(name, func.max(Job.updated_at))
        .where(Job.kind == SCHEDULE_KIND, Job.state == "done")
        .group_by(name)
    ):
        stamp = _aware(when)
        if job and stamp is not None:
            out[f"{SCHEDULE_KIND}:{job}"] = stamp
    return out


def run_durations(
    session: Session, kinds: Sequence[str], batch: int = 5000
) -> Iterator[tuple[str, str, float]]:
    """``(kind, state, seconds)`` of every finished run of ``kinds`` (journal start to
    last update)."""
    q = (
        select(Job.kind, Job.state, Job.created_at, Job.updated_at)
        .where(Job.kind.in_(list(kinds)), Job.state.in_(("done", "failed", "cancelled")))
        .execution_options(yield_per=batch)
    )
    for kind, state, start, end in session.execute(q):
        yield kind, state, max(0.0, (end - start).total_seconds())


@dataclass(frozen=True)
class IngestRow:
    job_id: str
    state: str
    started: dt.datetime
    finished: dt.datetime | None
    source: str | None
    error: str | None
    aip_id: str | None
    reference_code: str | None
    title: str | None
    files: int | None
    bytes: int | None
    public: bool | None


def _job_aip() -> ColumnElement[Any]:
    """The AIP of an ingest job: ``jobs.aip_id``, else the id the pipeline chose up
    front and journalled in ``params.aip``."""
    return func.coalesce(Job.aip_id, Job.params["aip"].as_string())


def _ingest_query(sees_restricted: bool) -> Any:
    q = (
        select(
            Job.id,
            Job.state,
            Job.created_at,
            Job.updated_at,
            Job.params,
            Job.error,
            Aip.id,
            Aip.reference_code,
            Aip.title,
            AipVersion.file_count,
            AipVersion.byte_count,
            Aip.public,
        )
        .select_from(Job)
        .outerjoin(Aip, Aip.id == _job_aip())
        .outerjoin(AipVersion, and_(AipVersion.aip_id == Aip.id, AipVersion.number == 1))
        .where(Job.kind == INGEST_KIND)
    )
    if not sees_restricted:
        # readers: only ingests that made an AIP they see (a failed or refused ingest
        # may name a restricted transfer)
        q = q.where(Aip.id.is_not(None), aip_visible(False))
    return q


def _ingest_row(row: Any) -> IngestRow:
    job_id, state, started, updated, params, error, aip, ref, title, files, size, public = row
    source = (params or {}).get("source")
    return IngestRow(
        job_id=job_id,
        state=state,
        started=started,
        finished=updated if state in ("done", "failed", "cancelled") else None,
        source=str(source).rstrip("/").rsplit("/", 1)[-1] if source else None,
        error=error,
        aip_id=aip,
        reference_code=ref,
        title=title,
        files=files,
        bytes=size,
        public=public,
    )


def ingest_history(
    session: Session, sees_restricted: bool, *, limit: int, offset: int = 0
) -> tuple[int, list[IngestRow]]:
    """Ingest jobs seen, newest first: ``(total, one page of rows)``."""
    base = _ingest_query(sees_restricted)
    total = session.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    rows = session.execute(
        base.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    ).all()
    return int(total), [_ingest_row(r) for r in rows]


def ingest_job(session: Session, sees_restricted: bool, job_id: str) -> IngestRow | None:
    """One ingest job, or None when unknown or not seen by the principal."""
    row = session.execute(_ingest_query(sees_restricted).where(Job.id == job_id)).one_or_none()
    return None if row is None else _ingest_row(row)


def ingest_states(session: Session, sees_restricted: bool) -> dict[str, int]:
    """``{state: ingest jobs}`` seen by the principal."""
    sub = _ingest_query(sees_restricted).subquery()
    rows = session.execute(select(sub.c.state, func.count()).group_by(sub.c.state)).all()
    return {str(state): int(n) for state, n in rows}


__all__ = [
    "Holdings",
    "IngestRow",
    "StoreCoverage",
    "StoreHolding",
    "copy_states",
    "coverage",
    "fixity_checks_per_day",
    "holdings",
    "ingest_history",
    "ingest_job",
    "ingest_states",
    "last_audit",
    "last_successes",
    "open_incidents",
    "run_durations",
    "store_holdings",
    "verified_store_sets",
]
