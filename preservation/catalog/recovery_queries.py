"""Catalogue queries of recovery: rebuilding the catalogue from a store
(:mod:`preservation.recovery.rebuild`) and resynchronising a store
(:mod:`preservation.storage.resync`), and the event rows the event log publishes.

Rebuild writes rows exactly as they were: AIP versions keep their original ids where
the store's event documents name them (the event hash covers ``version_id``), and
events are inserted with their recorded ``prev_hash`` and ``hash`` in chain order, so
:func:`preservation.catalog.events.verify_chain` verifies the rebuilt log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from preservation.catalog.models import (
    Aip,
    AipVersion,
    Copy,
    EventRow,
    File,
    FileCopy,
    Incident,
    Job,
    StoreRow,
)
from preservation.catalog.queries import add_copy
from preservation.model import Event

# --- the event log ----------------------------------------------------------------


@dataclass(frozen=True)
class RecordedEvent:
    """An event as the chain holds it."""

    event: Event
    aip_id: str | None
    version_id: int | None
    store_name: str | None
    prev_hash: str
    hash: str


def _recorded(row: EventRow) -> RecordedEvent:
    return RecordedEvent(
        event=Event(
            type=row.type,
            outcome=row.outcome,  # type: ignore[arg-type]
            detail=row.detail,
            outcome_detail=row.outcome_detail,
            datetime=row.datetime,
            identifier=row.id,
            agents=[(a[0], a[1]) for a in row.agents],
            objects=list(row.objects),
        ),
        aip_id=row.aip_id,
        version_id=row.version_id,
        store_name=row.store_name,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def version_events(session: Session, aip_id: str, version: int) -> list[RecordedEvent]:
    """The chain's events of one AIP version, in chain order."""
    version_id = session.execute(
        select(AipVersion.id).where(AipVersion.aip_id == aip_id, AipVersion.number == version)
    ).scalar_one_or_none()
    if version_id is None:
        return []
    rows = session.execute(
        select(EventRow)
        .where(EventRow.aip_id == aip_id, EventRow.version_id == version_id)
        .order_by(EventRow.seq)
    ).scalars()
    return [_recorded(r) for r in rows]


# --- rebuild ----------------------------------------------------------------------


def catalog_row_counts(session: Session) -> dict[str, int]:
    """Rows of the tables a rebuild writes (all zero: an empty catalogue)."""
    return {
        "aips": session.execute(select(func.count()).select_from(Aip)).scalar_one(),
        "events": session.execute(select(func.count()).select_from(EventRow)).scalar_one(),
        "incidents": session.execute(select(func.count()).select_from(Incident)).scalar_one(),
    }


def clear_catalog(session: Session) -> None:
    """Delete what a rebuild writes (AIPs, versions, files, copies, events,
    incidents, journal rows); stores, agents and users stay."""
    from sqlalchemy import delete

    for model in (FileCopy, Copy, File, Incident, EventRow, AipVersion, Job):
        session.execute(delete(model))
    # tables of later migrations that refer to AIPs (deletion requests, access log)
    for table in Aip.metadata.sorted_tables[::-1]:
        if table.name in {"aips", "stores", "agents", "users"}:
            continue
        if any(fk.column.table.name == "aips" for fk in table.foreign_keys):
            session.execute(table.delete())
    session.execute(delete(Aip))


def add_rebuilt_aip(session: Session, values: Mapping[str, Any]) -> None:
    session.execute(insert(Aip), [dict(values)])


def add_rebuilt_version(session: Session, values: Mapping[str, Any]) -> int:
    """Insert a version (with its original ``id`` when given); returns its id."""
    row = AipVersion(**dict(values))
    session.add(row)
    session.flush()
    return row.id


def set_version_totals(session: Session, version_id: int, files: int, size: int) -> None:
    session.execute(
        update(AipVersion)
        .where(AipVersion.id == version_id)
        .values(file_count=files, byte_count=size)
    )


def add_rebuilt_copy(
    session: Session,
    version_id: int,
    store_name: str,
    *,
    state: str,
    created_at: dt.datetime | None,
    verified_at: dt.datetime | None,
    last_audit_at: dt.datetime | None,
) -> int:
    """A copy with its per-file rows; every file row takes the copy's last successful
    verification time (outcome ``pass``) when there was one."""
    copy = add_copy(session, version_id, store_name, state="pending")
    copy.state = state
    copy.verified_at = verified_at
    copy.last_audit_at = last_audit_at
    if created_at is not None:
        copy.created_at = created_at
    if verified_at is not None:
        session.execute(
            update(FileCopy)
            .where(FileCopy.copy_id == copy.id)
            .values(outcome="pass", last_verified_at=verified_at)
        )
    session.flush()
    return copy.id


def add_rebuilt_events(session: Session, events: Iterable[Mapping[str, Any]]) -> int:
    """Insert event rows as they were (ids, hashes and links kept), in the order
    given (the chain order); returns how many."""
    n = 0
    for values in events:
        session.add(EventRow(**dict(values)))
        n += 1
        if n % 500 == 0:
            session.flush()
    session.flush()
    return n


def advance_sequences(session: Session) -> None:
    """After rows were inserted with explicit ids (versions keep their original ids),
    move PostgreSQL's id sequence past them so later inserts do not collide (SQLite
    takes the next id from the table itself)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    from sqlalchemy import text

    session.execute(
        text(
            "SELECT setval(pg_get_serial_sequence('aip_versions', 'id'),"
            " (SELECT COALESCE(MAX(id), 0) + 1 FROM aip_versions), false)"
        )
    )


def known_stores(session: Session) -> set[str]:
    return set(session.execute(select(StoreRow.name)).scalars())


def max_version_id(session: Session) -> int:
    return int(session.execute(select(func.max(AipVersion.id))).scalar_one() or 0)


# --- resync -----------------------------------------------------------------------


@dataclass(frozen=True)
class StoreCopy:
    copy_id: int
    aip_id: str
    version: int
    state: str


def copies_on_store(session: Session, store_name: str) -> list[StoreCopy]:
    """Copies the catalogue places on a store (active AIPs, not deleted copies), by
    AIP and version."""
    rows = session.execute(
        select(Copy.id, AipVersion.aip_id, AipVersion.number, Copy.state)
        .join(AipVersion, AipVersion.id == Copy.version_id)
        .join(Aip, Aip.id == AipVersion.aip_id)
        .where(Copy.store_name == store_name, Aip.state == "active", Copy.state != "deleted")
        .order_by(AipVersion.aip_id, AipVersion.number)
    ).all()
    return [StoreCopy(*r) for r in rows]


def requeue_copies(session: Session, copy_ids: Sequence[int]) -> None:
    """Put copies back in the replication queue (``pending``): their store lost them."""
    if copy_ids:
        session.execute(update(Copy).where(Copy.id.in_(list(copy_ids))).values(state="pending"))


def copy_state(session: Session, copy_id: int) -> str | None:
    return session.execute(select(Copy.state).where(Copy.id == copy_id)).scalar_one_or_none()


def aip_ids(session: Session) -> list[tuple[str, str]]:
    """Every AIP of the catalogue, active and deleted: ``(id, state)`` by id."""
    return [(a, st) for a, st in session.execute(select(Aip.id, Aip.state).order_by(Aip.id))]


def take_over_job(session: Session, job_id: str, *, host: str, pid: int) -> None:
    """This process continues an interrupted job (its process is gone)."""
    from preservation.model import utcnow

    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(host=host, pid=pid, state="running", updated_at=utcnow(), error=None)
    )


__all__ = [
    "RecordedEvent",
    "StoreCopy",
    "add_rebuilt_aip",
    "add_rebuilt_copy",
    "add_rebuilt_events",
    "add_rebuilt_version",
    "advance_sequences",
    "aip_ids",
    "catalog_row_counts",
    "clear_catalog",
    "copies_on_store",
    "copy_state",
    "known_stores",
    "max_version_id",
    "requeue_copies",
    "set_version_totals",
    "take_over_job",
    "version_events",
]
