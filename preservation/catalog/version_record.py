"""Recording a new version of an AIP (v2, v3, ...) in the catalogue, in one transaction.

:func:`record_new_version` is called by :mod:`preservation.versions` after the new
version's objects are final in the primary store (all but ``bagit.txt``): the version
row, its payload files (each with the version whose objects hold its bytes,
``origin_version``), its tag files, the copies (the primary one verified, one pending
copy per replica store: the replication queue) and the AIP's new current version.
Events are appended by the caller in the same session (``preservation.eventlog``).

Format work (``preservation.formats``) reads the payload files of current versions
with :func:`current_payload_files` and records re-identifications with
:func:`set_file_format`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from preservation.catalog.models import VERSION_REASONS, AipVersion, StoreRow
from preservation.catalog.queries import (
    DEFAULT_BATCH_SIZE,
    require_aip,
)
from preservation.catalog.record import (
    METS_PATH,
    TAGMANIFEST,
    TagDigests,
    _year,
    add_version_files_and_copies,
    payload_row,
)
from preservation.catalog.visibility import is_public
from preservation.errors import CatalogConflict, NotInCatalog, UsageError
from preservation.model import FileEntry, utcnow

# AIP columns a metadata correction may change, by their descriptive keys.
_AIP_FIELDS = ("title", "fonds", "security_level", "open_status", "retention")


def _rows(entries: Iterable[tuple[FileEntry, int]], totals: list[int]) -> Iterator[dict[str, Any]]:
    for e, origin in entries:
        yield payload_row(e, totals, origin_version=origin)


def record_codes_of(session: Session, version_id: int) -> dict[str, str]:
    """Payload path ('data/...') -> the record reference code of a version's files."""
    from preservation.catalog.models import File

    rows = session.execute(
        select(File.path, File.record_reference_code).where(
            File.version_id == version_id,
            File.kind == "payload",
            File.record_reference_code.is_not(None),
        )
    )
    return {path: code for path, code in rows if code is not None}


def record_new_version(
    session: Session,
    *,
    aip_id: str,
    number: int,
    reason: str,
    descriptive: Mapping[str, str],
    entries: Iterable[tuple[FileEntry, int]],
    tag_files: Mapping[str, TagDigests],
    primary_store: str,
    replica_stores: Sequence[str] = (),
    note: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> AipVersion:
    """Record version ``number`` of AIP ``aip_id``; the caller's session commits it.

    ``entries`` are (payload file, origin version) pairs; a file whose bytes are in
    this version has origin ``number``. The AIP's current version must be
    ``number - 1`` (else CatalogConflict: another version was made meanwhile).
    Record reference codes of files carried over keep their values.
    """
    if reason not in VERSION_REASONS or reason == "ingest":
        raise UsageError(f"version reason {reason!r} is not one of metadata, migration, reingest")
    aip = require_aip(session, aip_id)
    if aip.current_version != number - 1:
        raise CatalogConflict(
            f"AIP {aip_id} is at version {aip.current_version}; cannot record v{number}"
        )
    stores = [primary_store, *[s for s in replica_stores if s != primary_store]]
    known = set(session.execute(select(StoreRow.name).where(StoreRow.name.in_(stores))).scalars())
    for name in stores:
        if name not in known:
            raise NotInCatalog(kind="store", ident=name)
    previous = session.execute(
        select(AipVersion).where(AipVersion.aip_id == aip_id, AipVersion.number == number - 1)
    ).scalar_one()
    codes = record_codes_of(session, previous.id)

    now = utcnow()
    mets = tag_files.get(METS_PATH)
    tagmanifest = tag_files.get(TAGMANIFEST)
    version = AipVersion(
        aip_id=aip_id,
        number=number,
        created_at=now,
        reason=reason,
        mets_sha256=mets[0].get("sha256") if mets else None,
        bag_sha256=tagmanifest[0].get("sha256") if tagmanifest else None,
        descriptive=dict(descriptive),
        note=note,
    )
    session.add(version)
    session.flush()

    totals = [0, 0]

    def with_codes() -> Iterator[dict[str, Any]]:
        for row in _rows(entries, totals):
            code = codes.get(row["path"])
            if code is not None:
                row["record_reference_code"] = code
            yield row

    add_version_files_and_copies(
        session, version, with_codes(), totals, tag_files, stores, now, batch_size
    )

    aip.current_version = number
    for key in _AIP_FIELDS:
        if key in descriptive:
            setattr(aip, key, descriptive[key] or None)
    if "year" in descriptive:
        aip.year = _year(descriptive["year"])
    if descriptive:
        aip.public = is_public(descriptive)
    session.flush()
    return version


# ------------------------------------------------------------------ current files
# What format work reads: the payload files of every active AIP's current version.


@dataclass(frozen=True)
class CurrentFile:
    aip_id: str
    version: int
    version_id: int
    file_id: int
    origin_version: int
    path: str  # inside the bag: 'data/...'
    size: int
    sha256: str
    puid: str | None
    mime: str | None
    format_name: str | None
    format_version: str | None
    file_uuid: str | None
    role: str | None
    derived_from: str | None

    @property
    def payload_path(self) -> str:
        return self.path.removeprefix("data/")


def current_payload_files(
    session: Session,
    *,
    aip_id: str | None = None,
    puids: Sequence[str] | None = None,
    batch: int = 1000,
    public_only: bool = False,
) -> Iterator[CurrentFile]:
    """Payload files of the current version of every active AIP (or of one AIP, or of
    some PUIDs; only of public AIPs with ``public_only``), by AIP and path; streamed
    in batches of ``batch`` rows."""
    from preservation.catalog.models import Aip, File

    q = (
        select(
            AipVersion.aip_id,
            AipVersion.number,
            AipVersion.id,
            File.id,
            File.origin_version,
            File.path,
            File.size,
            File.sha256,
            File.puid,
            File.mime,
            File.format_name,
            File.format_version,
            File.file_uuid,
            File.role,
            File.derived_from,
        )
        .join(Aip, Aip.id == AipVersion.aip_id)
        .join(File, File.version_id == AipVersion.id)
        .where(
            Aip.state == "active",
            AipVersion.number == Aip.current_version,
            File.kind == "payload",
        )
        .order_by(AipVersion.aip_id, File.path)
        .execution_options(yield_per=batch)
    )
    if aip_id is not None:
        q = q.where(Aip.id == aip_id)
    if puids is not None:
        q = q.where(File.puid.in_(list(puids)))
    if public_only:
        from preservation.catalog.visibility import aip_visible

        q = q.where(aip_visible(False))
    for row in session.execute(q):
        yield CurrentFile(*row)  # type: ignore[call-arg]


def set_file_format(
    session: Session,
    file_id: int,
    *,
    puid: str | None,
    mime: str | None,
    name: str | None,
    version: str | None,
) -> None:
    """Record a file's current identification (after re-identification). The METS of
    its version keeps the identification made then; the change is a PREMIS event."""
    from preservation.catalog.models import File

    row = session.get(File, file_id)
    if row is None:
        raise NotInCatalog(kind="file", ident=file_id)
    row.puid, row.mime, row.format_name, row.format_version = puid, mime, name, version


def active_aip_ids(session: Session) -> list[str]:
    """Ids of every active AIP, sorted (format work goes AIP by AIP)."""
    from preservation.catalog.models import Aip

    return list(
        session.execute(select(Aip.id).where(Aip.state == "active").order_by(Aip.id)).scalars()
    )
