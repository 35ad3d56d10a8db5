"""Metadata corrections: an archivist changes AIP-level descriptive fields.

A correction (for example a revised 开放状态 or 密级) makes the next AIP version with
metadata only (:func:`preservation.versions.build_version`, reason ``metadata``):
no payload is uploaded again, the new METS carries the changed fields and rights
rebuilt from them, and a PREMIS ``metadata modification`` event records who changed
what from which value to which. The catalogue's AIP columns, ``public`` included, are
updated in the same commit, so a record that becomes restricted disappears for
readers at once. The access log records the change (action ``correct``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from preservation.access import accesslog
from preservation.access.principal import EDIT_METADATA, Principal
from preservation.catalog import access_queries as aq
from preservation.catalog import queries as q
from preservation.catalog.visibility import is_public
from preservation.errors import NotInCatalog, PermissionDenied, UsageError
from preservation.metadata.descriptive import checked, date_fields
from preservation.model import ARCHIVAL_FIELDS, Event
from preservation.repository import Repository

# AIP-level fields a correction may change (not the structural columns that tie
# sheet rows to files).
CORRECTABLE = tuple(
    k for k in ARCHIVAL_FIELDS if k not in ("path", "level", "volume", "item_number")
)
MAX_VALUE = 2000


@dataclass
class Correction:
    aip: str
    version: int
    changed: dict[str, dict[str, str | None]]  # key -> {"from", "to"}
    public: bool
    event: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parse_assignments(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` strings (the CLI's ``--set``) as a mapping; UsageError otherwise."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: use KEY=VALUE, e.g. open_status=开放")
        out[key.strip()] = value
    return out


def _validate(fields: Mapping[str, str]) -> dict[str, str]:
    if not fields:
        raise UsageError("no field to change")
    unknown = sorted(k for k in fields if k not in CORRECTABLE)
    if unknown:
        raise UsageError(
            f"cannot correct {', '.join(unknown)}: fields are {', '.join(CORRECTABLE)}"
        )
    clean: dict[str, str] = {}
    for key, value in fields.items():
        if not isinstance(value, str):
            raise UsageError(f"{key}: the value must be text")
        value = value.strip()
        if len(value) > MAX_VALUE:
            raise UsageError(f"{key}: longer than {MAX_VALUE} characters")
        if key == "year" and value and not (len(value) == 4 and value.isdigit()):
            raise UsageError(f"year {value!r} is not a four-digit year")
        clean[key] = checked(value, f"field {key}")
    return clean


def correct_metadata(
    repo: Repository,
    aip_id: str,
    fields: Mapping[str, str],
    *,
    principal: Principal,
    note: str | None = None,
    client: str | None = None,
    status: int = 0,
) -> Correction:
    """Apply a correction; see the module doc. Raises PermissionDenied unless the
    principal may edit metadata, NotInCatalog for an unknown AIP, UsageError for
    unknown fields or when nothing would change."""
    from preservation.versions import Changes, build_version, default_agents

    if not principal.can(EDIT_METADATA):
        raise PermissionDenied(user=principal.name, role=principal.role.value, action=EDIT_METADATA)
    values = _validate(fields)
    with repo.catalog.session() as s:
        if aq.visible_aip(s, aip_id, sees_restricted=principal.sees_restricted) is None:
            raise NotInCatalog(kind="AIP", ident=aip_id)
        current = dict(q.get_version(s, aip_id).descriptive or {})
        was_public = bool(aq.aip_is_public(s, aip_id))
    changed = {
        k: {"from": current.get(k), "to": v} for k, v in values.items() if current.get(k) != v
    }
    if not changed:
        raise UsageError(f"AIP {aip_id} already has these values; nothing to change")
    if "date" in values:  # the span the date search uses follows the corrected 日期
        span = date_fields([values["date"]])
        values["date_from"] = span.get("date_from", "")
        values["date_to"] = span.get("date_to", "")
    merged = {**current, **values}
    agents = default_agents(repo, principal.name)
    person = f"person:{principal.name}"
    summary = "; ".join(
        f"{ARCHIVAL_FIELDS.get(k, k)} ({k}): {c['from'] or '(none)'} -> {c['to'] or '(none)'}"
        for k, c in sorted(changed.items())
    )
    event = Event(
        type="metadata modification",
        outcome="success",
        detail=f"descriptive metadata corrected by {principal.name}: {summary}"
        + (f"; note: {note}" if note else ""),
        outcome_detail=f"public: {was_public} -> {is_public(merged)}",
        agents=[
            (a.identifier, "implementer" if a.identifier == person else "executing program")
            for a in agents
            if a.type != "organization"
        ],
    )
    result = build_version(
        repo,
        aip_id,
        reason="metadata",
        changes=Changes(descriptive=values, note=note or f"metadata correction: {summary}"),
        events=[event],
        agents=agents,
    )
    correction = Correction(
        aip=aip_id,
        version=result.version,
        changed=changed,
        public=is_public(merged),
        event=event.identifier,
    )
    accesslog.record(
        repo,
        action="correct",
        status=status,
        principal=principal,
        aip_id=aip_id,
        client=client,
        restricted=not (was_public and correction.public),
        detail={"version": result.version, "changed": changed},
    )
    return correction
