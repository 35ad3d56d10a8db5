"""Read queries of export (:mod:`preservation.access.export`): what one AIP version's
complete bag holds, where each file's bytes live, and which stores have good copies.

Files are read page by page (keyset pagination on the path), so an export of a
version with a million files holds one page in memory, never the whole list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, aliased

from preservation.catalog.models import Aip, AipVersion, Copy, File, StoreRow
from preservation.catalog.queries import get_version, require_aip

PAGE_SIZE = 1000
GOOD_COPY_STATES = ("verified", "stored")


@dataclass(frozen=True)
class VersionInfo:
    """The AIP version an export is about."""

    aip_id: str
    version_id: int
    version: int
    state: str
    public: bool
    descriptive: dict[str, str]
    reference_code: str | None
    title: str | None
    file_count: int
    byte_count: int


@dataclass(frozen=True)
class ExportFile:
    """One file of a version's complete bag and the object that holds its bytes."""

    path: str  # inside the bag: 'data/…', 'metadata/…', 'bagit.txt'
    kind: str  # payload | tag
    size: int
    sha256: str
    sha512: str | None
    origin_version: int  # the version whose objects hold the bytes
    origin_version_id: int
    origin_file_id: int  # the files row of the origin version (for incidents)
    file_uuid: str | None
    role: str | None
    derived_from: str | None
    record_reference_code: str | None
    mime: str | None


def version_info(session: Session, aip_id: str, number: int | None = None) -> VersionInfo:
    """The version (default: current); NotInCatalog for an unknown AIP or version."""
    aip = require_aip(session, aip_id)
    v = get_version(session, aip_id, number)
    return VersionInfo(
        aip_id=aip.id,
        version_id=v.id,
        version=v.number,
        state=aip.state,
        public=bool(getattr(aip, "public", False)),
        descriptive={str(k): str(val) for k, val in (v.descriptive or {}).items()},
        reference_code=aip.reference_code,
        title=aip.title,
        file_count=v.file_count,
        byte_count=v.byte_count,
    )


def _export_select(version_id: int) -> tuple[Any, Any]:
    this = aliased(File)
    origin_file = aliased(File)
    this_version = aliased(AipVersion)
    origin_version = aliased(AipVersion)
    query = (
        select(
            this.path,
            this.kind,
            this.size,
            this.sha256,
            this.sha512,
            this.origin_version,
            origin_version.id,
            origin_file.id,
            this.file_uuid,
            this.role,
            this.derived_from,
            this.record_reference_code,
            this.mime,
        )
        .join(this_version, this_version.id == this.version_id)
        .join(
            origin_version,
            and_(
                origin_version.aip_id == this_version.aip_id,
                origin_version.number == this.origin_version,
            ),
        )
        .join(
            origin_file,
            and_(origin_file.version_id == origin_version.id, origin_file.path == this.path),
        )
        .where(this.version_id == version_id)
    )
    return query, this


def export_files_page(
    session: Session, version_id: int, *, after: str | None = None, page_size: int = PAGE_SIZE
) -> list[ExportFile]:
    """One page of the version's files in path order (those after path ``after``),
    each with its origin object's row. Callers page with a short session per page."""
    query, this = _export_select(version_id)
    query = query.order_by(this.path).limit(page_size)
    if after is not None:
        query = query.where(this.path > after)
    return [ExportFile(*row) for row in session.execute(query).all()]


def export_file(session: Session, version_id: int, path: str) -> ExportFile | None:
    """One file of the version by its path in the bag, or None."""
    query, this = _export_select(version_id)
    row = session.execute(query.where(this.path == path)).one_or_none()
    return ExportFile(*row) if row is not None else None


def good_copy_stores(session: Session, aip_id: str, versions: set[int]) -> list[str]:
    """Configured stores holding a stored or verified copy of every one of the given
    versions, primary first, then by name."""
    rows = session.execute(
        select(Copy.store_name, StoreRow.role, AipVersion.number)
        .join(AipVersion, AipVersion.id == Copy.version_id)
        .join(StoreRow, StoreRow.name == Copy.store_name)
        .where(
            AipVersion.aip_id == aip_id,
            AipVersion.number.in_(sorted(versions)),
            Copy.state.in_(GOOD_COPY_STATES),
            StoreRow.configured.is_(True),
        )
    ).all()
    held: dict[str, set[int]] = {}
    role: dict[str, str] = {}
    for name, r, number in rows:
        held.setdefault(name, set()).add(number)
        role[name] = r
    names = [n for n, got in held.items() if versions <= got]
    return sorted(names, key=lambda n: (role[n] != "primary", n))


def origin_versions(session: Session, version_id: int) -> set[int]:
    """The versions whose objects hold the files of this version."""
    return set(
        session.execute(
            select(File.origin_version).where(File.version_id == version_id).distinct()
        ).scalars()
    )


def aip_is_public(session: Session, aip_id: str) -> bool:
    aip = session.get(Aip, aip_id)
    return bool(aip is not None and getattr(aip, "public", False))
