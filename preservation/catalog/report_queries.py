"""The catalogue queries of the statistics report, the periodic check and the drill.

Every function takes an open session and reads only (the periodic check and the
drill record their outcomes through :mod:`preservation.eventlog` and
:mod:`preservation.catalog.queries`). Periods are half-open ``[start, end)`` in UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, inspect, select
from sqlalchemy.orm import Session

from preservation.catalog.access_models import AccessLogEntry
from preservation.catalog.models import (
    Aip,
    AipVersion,
    Copy,
    EventRow,
    File,
    Incident,
    Job,
)
from preservation.catalog.queries import job_dict

# copies that hold an AIP version on a store
HELD_COPY_STATES = ("stored", "verified")


# --- statistics -------------------------------------------------------------------


def jobs_in(
    session: Session, kind: str, start: dt.datetime, end: dt.datetime
) -> list[dict[str, Any]]:
    """Journal rows of ``kind`` created in the period, oldest first."""
    rows = session.execute(
        select(Job)
        .where(Job.kind == kind, Job.created_at >= start, Job.created_at < end)
        .order_by(Job.created_at, Job.id)
    ).scalars()
    return [job_dict(j) for j in rows]


def ingest_results(session: Session, aip_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The ``result`` of the finished ingest of each AIP (the job row names the AIP)."""
    out: dict[str, dict[str, Any]] = {}
    ids = list(aip_ids)
    for i in range(0, len(ids), 500):
        rows = session.execute(
            select(Job.aip_id, Job.result).where(
                Job.kind == "ingest", Job.state == "done", Job.aip_id.in_(ids[i : i + 500])
            )
        )
        for aip_id, result in rows:
            if aip_id is not None and result:
                out[str(aip_id)] = dict(result)
    return out


def first_version_file_properties(
    session: Session, aip_ids: Iterable[str], batch: int = 2000
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """``(aip id, properties)`` of every payload file of the AIPs' version 1 (what
    ingest received), streamed; ``properties`` is None for files recorded before
    migration 0005."""
    ids = list(aip_ids)
    for i in range(0, len(ids), 500):
        rows = session.execute(
            select(AipVersion.aip_id, File.properties)
            .join(File, File.version_id == AipVersion.id)
            .where(
                AipVersion.aip_id.in_(ids[i : i + 500]),
                AipVersion.number == 1,
                File.kind == "payload",
            )
            .execution_options(yield_per=batch)
        )
        for aip_id, properties in rows:
            yield str(aip_id), properties


@dataclass(frozen=True)
class VersionRow:
    aip_id: str
    number: int
    reason: str
    created_at: dt.datetime
    file_count: int
    byte_count: int


def versions_in(session: Session, start: dt.datetime, end: dt.datetime) -> list[VersionRow]:
    """AIP versions created in the period (v1: AIPs received; later: new versions)."""
    rows = session.execute(
        select(
            AipVersion.aip_id,
            AipVersion.number,
            AipVersion.reason,
            AipVersion.created_at,
            AipVersion.file_count,
            AipVersion.byte_count,
        )
        .where(AipVersion.created_at >= start, AipVersion.created_at < end)
        .order_by(AipVersion.created_at, AipVersion.id)
    )
    return [VersionRow(*r) for r in rows]


def event_outcomes(
    session: Session, start: dt.datetime, end: dt.datetime
) -> dict[str, dict[str, int]]:
    """Post-ingest events of the period: counts per type and outcome."""
    out: dict[str, dict[str, int]] = {}
    for etype, outcome, n in session.execute(
        select(EventRow.type, EventRow.outcome, func.count(EventRow.seq))
        .where(EventRow.datetime >= start, EventRow.datetime < end)
        .group_by(EventRow.type, EventRow.outcome)
    ):
        out.setdefault(etype, {})[outcome] = int(n)
    return out


def events_of_type(
    session: Session, etype: str, start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, str, str, list[Any]]]:
    """(datetime, outcome, detail, objects) of the events of one type in the period."""
    rows = session.execute(
        select(EventRow.datetime, EventRow.outcome, EventRow.detail, EventRow.objects)
        .where(EventRow.type == etype, EventRow.datetime >= start, EventRow.datetime < end)
        .order_by(EventRow.seq)
    )
    return [(r[0], r[1], r[2], list(r[3] or [])) for r in rows]


def incidents_opened(
    session: Session, start: dt.datetime, end: dt.datetime
) -> dict[str, dict[str, int]]:
    """Incidents opened in the period: counts per kind and present state."""
    out: dict[str, dict[str, int]] = {}
    for kind, state, n in session.execute(
        select(Incident.kind, Incident.state, func.count(Incident.id))
        .where(Incident.opened_at >= start, Incident.opened_at < end)
        .group_by(Incident.kind, Incident.state)
    ):
        out.setdefault(kind, {})[state] = int(n)
    return out


def access_log_present(session: Session) -> bool:
    """Whether the access log table exists (migration 0003 applied)."""
    return bool(inspect(session.connection()).has_table(AccessLogEntry.__tablename__))


def access_counts(
    session: Session, start: dt.datetime, end: dt.datetime
) -> list[tuple[str, str, bool, bool, int]]:
    """(role, action, restricted, succeeded, count) of the access log in the period; a
    row succeeded when its status is below 400 (an HTTP status) or 0 (a CLI exit)."""
    rows = session.execute(
        select(
            AccessLogEntry.role,
            AccessLogEntry.action,
            AccessLogEntry.restricted,
            AccessLogEntry.status,
            func.count(AccessLogEntry.id),
        )
        .where(AccessLogEntry.at >= start, AccessLogEntry.at < end)
        .group_by(
            AccessLogEntry.role,
            AccessLogEntry.action,
            AccessLogEntry.restricted,
            AccessLogEntry.status,
        )
    )
    out: dict[tuple[str, str, bool, bool], int] = {}
    for role, action, restricted, status, n in rows:
        key = (role or "", str(action), bool(restricted), status == 0 or 100 <= status < 400)
        out[key] = out.get(key, 0) + int(n)
    return [(*k, n) for k, n in sorted(out.items())]


# --- the periodic check -------------------------------------------------------------


@dataclass(frozen=True)
class CheckedAip:
    id: str
    reference_code: str | None
    transfer_name: str | None
    public: bool
    current_version: int
    version_id: int
    file_count: int
    byte_count: int
    mets_sha256: str | None


def checked_aip(session: Session, aip_id: str) -> CheckedAip | None:
    row = session.execute(
        select(
            Aip.id,
            Aip.reference_code,
            Aip.transfer_name,
            Aip.public,
            Aip.current_version,
            AipVersion.id,
            AipVersion.file_count,
            AipVersion.byte_count,
            AipVersion.mets_sha256,
        )
        .join(
            AipVersion, (AipVersion.aip_id == Aip.id) & (AipVersion.number == Aip.current_version)
        )
        .where(Aip.id == aip_id, Aip.state == "active")
    ).one_or_none()
    return None if row is None else CheckedAip(*row)


@dataclass(frozen=True)
class CatalogFile:
    path: str  # inside the bag
    kind: str  # payload | tag
    size: int
    sha256: str
    sha512: str | None
    origin_version: int
    puid: str | None
    mime: str | None
    format_name: str | None
    file_uuid: str | None
    role: str | None
    derived_from: str | None


def version_files(session: Session, version_id: int) -> Iterator[CatalogFile]:
    """Every file of a version (payload, then tag files), in path order."""
    rows = session.execute(
        select(
            File.path,
            File.kind,
            File.size,
            File.sha256,
            File.sha512,
            File.origin_version,
            File.puid,
            File.mime,
            File.format_name,
            File.file_uuid,
            File.role,
            File.derived_from,
        )
        .where(File.version_id == version_id)
        .order_by(File.kind, File.path)
    )
    for r in rows:
        yield CatalogFile(**r._mapping)


def aip_object_keys(session: Session, aip_id: str) -> set[str]:
    """The keys the catalogue expects under ``<aip>/`` on a store holding every version:
    each version's tag files and the payload files whose bytes it holds."""
    keys: set[str] = set()
    rows = session.execute(
        select(AipVersion.number, File.path, File.kind, File.origin_version)
        .join(File, File.version_id == AipVersion.id)
        .where(AipVersion.aip_id == aip_id)
    )
    for number, path, kind, origin in rows:
        if kind == "tag" or origin == number:
            keys.add(f"{aip_id}/v{number}/{path}")
    return keys


def held_versions(session: Session, aip_id: str, store: str) -> list[int]:
    """The versions of an AIP whose copy on ``store`` is stored or verified."""
    return list(
        session.execute(
            select(AipVersion.number)
            .join(Copy, Copy.version_id == AipVersion.id)
            .where(
                AipVersion.aip_id == aip_id,
                Copy.store_name == store,
                Copy.state.in_(HELD_COPY_STATES),
            )
            .order_by(AipVersion.number)
        ).scalars()
    )


def aip_event_ids(session: Session, aip_id: str) -> list[str]:
    return list(session.execute(select(EventRow.id).where(EventRow.aip_id == aip_id)).scalars())


def access_entries_of(session: Session, aip_id: str) -> tuple[int, int]:
    """(entries of the access log naming this AIP, those not flagged restricted)."""
    row = session.execute(
        select(
            func.count(AccessLogEntry.id),
            func.coalesce(func.sum(case((AccessLogEntry.restricted.is_(False), 1), else_=0)), 0),
        ).where(AccessLogEntry.aip_id == aip_id)
    ).one()
    return int(row[0]), int(row[1])


def active_aip_ids(session: Session) -> list[str]:
    return list(
        session.execute(select(Aip.id).where(Aip.state == "active").order_by(Aip.id)).scalars()
    )


def aips_held_on(session: Session, store: str) -> list[tuple[str, int]]:
    """(AIP, current version) of active AIPs whose current version is held on ``store``."""
    rows = session.execute(
        select(Aip.id, Aip.current_version)
        .join(
            AipVersion, (AipVersion.aip_id == Aip.id) & (AipVersion.number == Aip.current_version)
        )
        .join(Copy, Copy.version_id == AipVersion.id)
        .where(Aip.state == "active", Copy.store_name == store, Copy.state.in_(HELD_COPY_STATES))
        .order_by(Aip.id)
    )
    return [(r[0], int(r[1])) for r in rows]
