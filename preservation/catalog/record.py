"""Recording a finished ingest in the catalogue, in one transaction.

Ingest calls :func:`record_ingest` last, after the AIP is final in the primary
store: the AIP, its first version, every payload and tag file, the copies (the
primary one stored, one pending copy per replica store: the replication queue),
the agents and events, and the journal row marked ``done`` all commit together or
not at all.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from preservation.catalog.events import append_event, upsert_agent
from preservation.catalog.models import Aip, AipVersion, StoreRow
from preservation.catalog.queries import (
    DEFAULT_BATCH_SIZE,
    add_copy,
    add_files_batched,
    set_job_state,
)
from preservation.catalog.visibility import is_public
from preservation.errors import NotInCatalog
from preservation.model import Agent, Event, FileEntry, stored_properties, utcnow

# Digests and size of one tag file, as preservation.hashing.hash_file returns them.
TagDigests = tuple[Mapping[str, str], int]

METS_PATH = "metadata/mets.xml"
TAGMANIFEST = "tagmanifest-sha256.txt"


def _year(value: str | None) -> int | None:
    if value and re.fullmatch(r"\d{4}", value.strip()):
        return int(value.strip())
    return None


def payload_row(e: FileEntry, totals: list[int], **extra: Any) -> dict[str, Any]:
    """The ``files`` row of one payload file; counts it into ``totals`` (files, bytes)."""
    totals[0] += 1
    totals[1] += e.size
    fmt = e.format
    return {
        "path": e.bag_path,
        "kind": "payload",
        "size": e.size,
        "sha256": e.digests["sha256"],
        "sha512": e.digests.get("sha512"),
        "puid": fmt.puid if fmt else None,
        "mime": fmt.mime if fmt else None,
        "format_name": fmt.name if fmt else None,
        "format_version": fmt.version if fmt else None,
        "file_uuid": e.uuid,
        "original_name": e.original_name,
        "role": e.role,
        "derived_from": e.derived_from,
        "properties": stored_properties(e.properties),
        **extra,
    }


def _payload_rows(
    entries: Iterable[FileEntry], totals: list[int], record_codes: Mapping[int, str]
) -> Iterator[dict[str, Any]]:
    for e in entries:
        code = record_codes.get(e.record_row) if e.record_row is not None else None
        yield payload_row(e, totals, record_reference_code=code)


def add_version_files_and_copies(
    session: Session,
    version: AipVersion,
    payload_rows: Iterable[dict[str, Any]],
    totals: list[int],
    tag_files: Mapping[str, TagDigests],
    stores: Sequence[str],
    now: dt.datetime,
    batch_size: int,
) -> None:
    """The files of a new version (payload rows streamed in batches, counted into
    ``totals``; then the tag files) and its copies: the primary (``stores[0]``)
    verified, every other store pending (the replication queue).

    Every object of the primary copy was verified end to end as it was written
    (digests computed by the store from the bytes it received) and checked again in
    staging before it became final: the copy starts verified. Objects of earlier
    versions that a new version reuses are covered by those versions' audits.
    """
    add_files_batched(session, version.id, payload_rows, batch_size)
    version.file_count, version.byte_count = totals
    add_files_batched(
        session,
        version.id,
        (
            {
                "path": path,
                "kind": "tag",
                "size": size,
                "sha256": digests["sha256"],
                "sha512": digests.get("sha512"),
            }
            for path, (digests, size) in sorted(tag_files.items())
        ),
        batch_size,
    )
    add_copy(session, version.id, stores[0], verified_at=now)
    for name in stores[1:]:
        add_copy(session, version.id, name, state="pending")


def record_ingest(
    session: Session,
    *,
    aip_id: str,
    job_id: str | None,
    reference_code: str | None,
    transfer_name: str,
    descriptive: Mapping[str, str],
    payload_key: str,
    entries: Iterable[FileEntry],
    tag_files: Mapping[str, TagDigests],
    primary_store: str,
    replica_stores: Sequence[str] = (),
    events: Sequence[Event] = (),
    agents: Sequence[Agent] = (),
    batch_size: int = DEFAULT_BATCH_SIZE,
    record_codes: Mapping[int, str] | None = None,
) -> Aip:
    """Record AIP ``aip_id`` version 1; the caller's session commits it.

    ``entries`` (payload files, paths relative to ``data/``) are streamed into the
    catalogue in batches; ``tag_files`` maps a tag file's path inside the bag to its
    digests and size. ``record_codes`` maps a sheet row (``FileEntry.record_row``)
    to the reference code of its item, stored per file. Every named store must
    already be in the catalogue (``sync_stores``).
    """
    stores = [primary_store, *[s for s in replica_stores if s != primary_store]]
    known = set(session.execute(select(StoreRow.name).where(StoreRow.name.in_(stores))).scalars())
    for name in stores:
        if name not in known:
            raise NotInCatalog(kind="store", ident=name)

    now = utcnow()
    aip = Aip(
        id=aip_id,
        reference_code=reference_code,
        title=descriptive.get("title"),
        transfer_name=transfer_name,
        fonds=descriptive.get("fonds"),
        year=_year(descriptive.get("year")),
        security_level=descriptive.get("security_level"),
        open_status=descriptive.get("open_status"),
        retention=descriptive.get("retention"),
        created_at=now,
        state="active",
        current_version=1,
        payload_key=payload_key,
        public=is_public(descriptive),
    )
    mets = tag_files.get(METS_PATH)
    tagmanifest = tag_files.get(TAGMANIFEST)
    version = AipVersion(
        aip_id=aip_id,
        number=1,
        created_at=now,
        reason="ingest",
        mets_sha256=mets[0].get("sha256") if mets else None,
        bag_sha256=tagmanifest[0].get("sha256") if tagmanifest else None,
        descriptive=dict(descriptive),
    )
    session.add(aip)
    session.flush()
    session.add(version)
    session.flush()

    totals = [0, 0]
    add_version_files_and_copies(
        session,
        version,
        _payload_rows(entries, totals, record_codes or {}),
        totals,
        tag_files,
        stores,
        now,
        batch_size,
    )

    for agent in agents:
        upsert_agent(session, agent)
    for event in events:
        append_event(session, event, aip_id=aip_id, version_id=version.id)

    if job_id is not None:
        set_job_state(session, job_id, "done", result={"aip": aip_id, "version": 1})
    session.flush()
    return aip
