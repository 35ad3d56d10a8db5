"""Incidents: every failed check opens one (with its evidence), or adds to the open one.

An incident is keyed by (AIP version, store, path, kind): a file found bad by three
runs in a row is one incident seen three times, not three incidents. Severity:

- ``critical``: no other copy of the file is known to be good (every other copy
  failed its last check, or there is none): a repair would have nothing to copy from;
- ``warning``: an unexpected object (nothing was lost);
- ``error``: everything else.

The alert state lives in the evidence too (``alerted_severity``, ``alerted_at``), so
alerts repeat only when the situation changes (see :mod:`preservation.audit.alerts`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from preservation.audit.codes import code_of


@dataclass(frozen=True)
class IncidentNote:
    """What a run did to one incident."""

    incident: int
    new: bool
    kind: str
    severity: str
    aip: str | None
    version: int | None
    store: str | None
    path: str | None
    detail: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "new": self.new,
            "kind": self.kind,
            "severity": self.severity,
            "aip": self.aip,
            "version": self.version,
            "store": self.store,
            "path": self.path,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Finding:
    """A failed check, as plain data (a file check or an unexpected object)."""

    kind: str
    aip_id: str
    version_id: int
    version: int
    store: str
    path: str
    key: str
    detail: str
    file_id: int | None = None
    evidence: dict[str, Any] | None = None


def severity_for(session: Session, finding: Finding) -> str:
    from preservation.catalog import audit_queries as aq

    if finding.kind == "unexpected":
        return "warning"
    if finding.file_id is None:
        return "error"
    others = [
        c
        for c in aq.copies_of_file(session, finding.file_id)
        if c.store_name != finding.store and c.copy_state in ("stored", "verified")
    ]
    if not any(c.outcome in ("pass", None) for c in others):
        return "critical"
    return "error"


def record_findings(
    session: Session, findings: Iterable[Finding], *, run_id: str | None, when: dt.datetime
) -> list[IncidentNote]:
    """Open an incident per new problem, or note the problem again on the open one."""
    from preservation.catalog import audit_queries as aq

    notes: list[IncidentNote] = []
    for f in findings:
        seen = {
            "last_seen": when.isoformat(),
            "last_run": run_id,
            "last_detail": f.detail,
        }
        found = aq.find_open_incident(
            session,
            aip_id=f.aip_id,
            version_id=f.version_id,
            store_name=f.store,
            path=f.path,
            kind=f.kind,
        )
        severity = severity_for(session, f)
        if found is not None:
            escalate = severity == "critical" and found["severity"] != "critical"
            updated = aq.update_incident(
                session,
                found["id"],
                evidence={**seen, "seen": int(found["evidence"].get("seen", 1)) + 1},
                severity="critical" if escalate else None,
            )
            notes.append(_note(updated, f, new=False))
            continue
        evidence = {
            "code": code_of(f.kind),
            "key": f.key,
            "detail": f.detail,
            "run": run_id,
            "found_at": when.isoformat(),
            "seen": 1,
            **seen,
            **(f.evidence or {}),
        }
        incident_id = aq.add_incident(
            session,
            aip_id=f.aip_id,
            version_id=f.version_id,
            store_name=f.store,
            path=f.path,
            kind=f.kind,
            severity=severity,
            evidence=evidence,
            when=when,
            note=_note_text(f, severity),
        )
        notes.append(_note(aq.get_incident(session, incident_id), f, new=True))
    return notes


def _note_text(f: Finding, severity: str) -> str:
    text = f"{code_of(f.kind)} {f.kind}: {f.detail}"
    if severity == "critical":
        text += " -- NO OTHER GOOD COPY IS KNOWN"
    return text


def _note(incident: dict[str, Any], f: Finding, *, new: bool) -> IncidentNote:
    return IncidentNote(
        incident=incident["id"],
        new=new,
        kind=incident["kind"],
        severity=incident["severity"],
        aip=incident["aip_id"],
        version=f.version,
        store=incident["store"],
        path=incident["path"],
        detail=f.detail,
        evidence=incident["evidence"],
    )
