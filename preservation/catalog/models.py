"""The catalogue's tables: SQLAlchemy 2 typed declarative models.

Only :mod:`preservation.catalog` speaks SQL; other packages call its query
functions and receive these objects (or plain dicts) back.

Conventions:

- every timestamp is a timezone-aware UTC ``datetime`` (:class:`UTCDateTime` stores
  UTC and hands back aware values on SQLite too; naive values are refused);
- identifiers of AIPs, events and jobs are UUID strings; row counters that can grow
  without bound (files, file copies, events) are 64-bit on PostgreSQL;
- closed value sets (states, kinds, outcomes) are CHECK constraints, listed in the
  ``*_STATES``/``*_KINDS`` tuples below so callers can validate before writing;
- constraints and indexes are named by :data:`NAMING_CONVENTION`, so Alembic batch
  migrations on SQLite can address them.

The Alembic migrations in ``migrations/versions`` must describe exactly these tables;
``tests/catalog/test_migrations.py`` fails when they drift apart.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from preservation.catalog.upsert import upsert
from preservation.model import utcnow

if TYPE_CHECKING:
    from preservation.config import Config

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

AIP_STATES = ("active", "deleted")
VERSION_REASONS = ("ingest", "metadata", "migration", "reingest")
FILE_KINDS = ("payload", "tag")
COPY_STATES = ("pending", "stored", "verified", "failed", "missing", "deleted")
FIXITY_OUTCOMES = ("pass", "fail", "missing")
EVENT_OUTCOMES = ("success", "failure", "warning", "not performed")
INCIDENT_SEVERITIES = ("warning", "error", "critical")
INCIDENT_STATES = ("open", "repaired", "closed")
JOB_STATES = ("running", "staging", "finalising", "done", "failed", "cancelled")
JOB_FINISHED_STATES = ("done", "failed", "cancelled")

# The value of ``prev_hash`` on the first event of the chain.
GENESIS_HASH = "0" * 64


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always returned timezone-aware (UTC).

    PostgreSQL keeps it as ``timestamp with time zone``; SQLite has no time zones,
    so the value is stored as naive UTC text and tagged as UTC when read back.
    A naive ``datetime`` is refused: its meaning would depend on the host.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: use an aware UTC time")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# JSON documents: JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")
# Row ids of tables that grow without bound: 64-bit on PostgreSQL; on SQLite only
# INTEGER PRIMARY KEY is the (already 64-bit) rowid alias that autoincrements.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _in(column: str, values: tuple[str, ...], *, nullable: bool = False) -> str:
    listed = ", ".join(f"'{v}'" for v in values)
    expr = f"{column} IN ({listed})"
    return f"{column} IS NULL OR {expr}" if nullable else expr


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
    }


class Aip(Base):
    """One archival information package; its versions hold the content."""

    __tablename__ = "aips"
    __table_args__ = (
        CheckConstraint(_in("state", AIP_STATES), name="state"),
        Index(None, "fonds", "year"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    reference_code: Mapped[str | None] = mapped_column(String(255), index=True)
    title: Mapped[str | None] = mapped_column(Text)
    transfer_name: Mapped[str | None] = mapped_column(String(255))
    fonds: Mapped[str | None] = mapped_column(String(64))
    year: Mapped[int | None] = mapped_column(Integer)
    security_level: Mapped[str | None] = mapped_column(String(64))
    open_status: Mapped[str | None] = mapped_column(String(64))
    retention: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="active")
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    # sha256 over the sorted payload digests: the same transfer ingested twice has
    # the same key (duplicate detection).
    payload_key: Mapped[str | None] = mapped_column(String(64), index=True)
    # Visible to readers: unclassified (非密/公开) and open (开放), computed from the
    # descriptive fields at ingest and on every metadata correction
    # (preservation.catalog.visibility.is_public). Missing values: not public.
    public: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class AipVersion(Base):
    """An immutable version of an AIP (v1 from ingest, v2.. from later changes)."""

    __tablename__ = "aip_versions"
    __table_args__ = (
        UniqueConstraint("aip_id", "number"),
        CheckConstraint(_in("reason", VERSION_REASONS), name="reason"),
        CheckConstraint("number >= 1", name="number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    aip_id: Mapped[str] = mapped_column(ForeignKey("aips.id"))
    number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(String(16))
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    byte_count: Mapped[int] = mapped_column(BigInteger, default=0)
    mets_sha256: Mapped[str | None] = mapped_column(String(64))
    bag_sha256: Mapped[str | None] = mapped_column(String(64))  # tagmanifest digest
    descriptive: Mapped[dict[str, Any]] = mapped_column(default=dict)
    note: Mapped[str | None] = mapped_column(Text)


class File(Base):
    """One file of one AIP version: a payload file or a tag file of the bag."""

    __tablename__ = "files"
    __table_args__ = (
        UniqueConstraint("version_id", "path"),
        CheckConstraint(_in("kind", FILE_KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("aip_versions.id"))
    path: Mapped[str] = mapped_column(String(1024))  # inside the bag: 'data/…', 'metadata/…'
    kind: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    sha512: Mapped[str | None] = mapped_column(String(128))
    puid: Mapped[str | None] = mapped_column(String(64))
    mime: Mapped[str | None] = mapped_column(String(255))
    format_name: Mapped[str | None] = mapped_column(Text)
    format_version: Mapped[str | None] = mapped_column(String(255))
    file_uuid: Mapped[str | None] = mapped_column(String(36), index=True)
    # The version whose stored objects hold these bytes (a later version that reuses
    # unchanged payload points at the earlier one).
    origin_version: Mapped[int] = mapped_column(Integer)
    record_reference_code: Mapped[str | None] = mapped_column(String(255), index=True)
    original_name: Mapped[str | None] = mapped_column(Text)  # as received, if it differed
    role: Mapped[str | None] = mapped_column(String(16))  # original | migrated | access
    derived_from: Mapped[str | None] = mapped_column(String(36))  # source file uuid
    # What opening the file found (FileEntry.properties: pages, pixel size, dpi,
    # colour mode, compression, ...), also in the METS (PREMIS
    # objectCharacteristicsExtension) so that a rebuild restores it; None for tag
    # files and for files recorded before migration 0005.
    properties: Mapped[dict[str, Any] | None] = mapped_column()


class StoreRow(Base):
    """A configured store, mirrored from ``preservation.toml`` by ``sync_stores``.

    Rows are never deleted (copies refer to them); a store dropped from the
    configuration keeps its row with ``configured = False``.
    """

    __tablename__ = "stores"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))  # 'local' | 's3'
    cold: Mapped[bool] = mapped_column(Boolean, default=False)
    fixity_interval_days: Mapped[int | None] = mapped_column(Integer)
    configured: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column()


def sync_stores(session: Session, config: Config) -> list[str]:
    """Mirror the configured stores into ``stores``; returns the configured names.

    One upsert per store (safe when two processes sync at once). Stores no longer
    configured keep their row (copies refer to it), marked ``configured = False``.
    """
    now = utcnow()
    names = sorted(config.settings.stores)
    for name in names:
        s = config.settings.stores[name]
        values = {
            "name": name,
            "site": s.site,
            "role": s.role,
            "kind": s.type,
            "cold": s.cold,
            "fixity_interval_days": s.fixity_interval_days,
            "configured": True,
            "created_at": now,
            "updated_at": now,
        }
        changed = [c for c in values if c not in ("name", "created_at")]
        upsert(session, StoreRow, values, key=["name"], update=changed)
    session.execute(
        update(StoreRow)
        .where(StoreRow.name.not_in(names), StoreRow.configured.is_(True))
        .values(configured=False, updated_at=now)
    )
    return names


class Copy(Base):
    """One AIP version on one store. Create with ``queries.add_copy`` so that its
    per-file rows (:class:`FileCopy`) exist too."""

    __tablename__ = "copies"
    __table_args__ = (
        UniqueConstraint("version_id", "store_name"),
        CheckConstraint(_in("state", COPY_STATES), name="state"),
        Index(None, "store_name", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("aip_versions.id"))
    store_name: Mapped[str] = mapped_column(ForeignKey("stores.name"))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    verified_at: Mapped[dt.datetime | None] = mapped_column()
    last_audit_at: Mapped[dt.datetime | None] = mapped_column()


class FileCopy(Base):
    """The fixity state of one file in one copy.

    ``store_name`` repeats the copy's store so that "the files of store S due for a
    fixity check, least recently verified first" is one index range scan.
    """

    __tablename__ = "file_copies"
    __table_args__ = (
        UniqueConstraint("copy_id", "file_id"),
        CheckConstraint(_in("outcome", FIXITY_OUTCOMES, nullable=True), name="outcome"),
        Index(None, "store_name", "last_verified_at"),
        Index(None, "file_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    copy_id: Mapped[int] = mapped_column(ForeignKey("copies.id"))
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"))
    store_name: Mapped[str] = mapped_column(ForeignKey("stores.name"))
    last_verified_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    outcome: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)


class AgentRow(Base):
    """A PREMIS agent (software, organisation or person)."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(32))
    version: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)


class EventRow(Base):
    """A PREMIS event recorded after ingest, one link of the tamper-evident chain.

    ``seq`` orders the chain; ``hash`` is sha256 over the canonical JSON of the
    event's fields and ``prev_hash`` (see :mod:`preservation.catalog.events`).
    """

    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint(_in("outcome", EVENT_OUTCOMES), name="outcome"),
        Index(None, "aip_id", "seq"),
        Index(None, "type", "datetime"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    aip_id: Mapped[str | None] = mapped_column(ForeignKey("aips.id"))
    version_id: Mapped[int | None] = mapped_column(Integer)
    store_name: Mapped[str | None] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(64))
    datetime: Mapped[dt.datetime] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    outcome_detail: Mapped[str] = mapped_column(Text, default="")
    # Plain JSON (not JSONB) on both backends: the stored text is the canonical JSON
    # that was hashed, byte for byte (see preservation.catalog.canonical).
    agents: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [[agent id, role], …]
    objects: Mapped[list[Any]] = mapped_column(JSON, default=list)  # object identifiers
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class Incident(Base):
    """A problem found on a copy (mismatch, missing object, …) and its handling."""

    __tablename__ = "incidents"
    __table_args__ = (
        CheckConstraint(_in("severity", INCIDENT_SEVERITIES), name="severity"),
        CheckConstraint(_in("state", INCIDENT_STATES), name="state"),
        Index(None, "state", "opened_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    aip_id: Mapped[str | None] = mapped_column(ForeignKey("aips.id"), index=True)
    version_id: Mapped[int | None] = mapped_column(Integer)
    store_name: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str | None] = mapped_column(String(1024))
    kind: Mapped[str] = mapped_column(String(32))  # mismatch | missing | unreadable | …
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column()
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    note: Mapped[str | None] = mapped_column(Text)


class Job(Base):
    """A journal entry for long work (ingest, replication, audit): what was started,
    where, and how far it got, so that a killed run can be cleaned up."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("state", JOB_STATES), name="state"),
        Index(None, "kind", "state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="running")
    aip_id: Mapped[str | None] = mapped_column(String(36))  # may precede the AIP row
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    # sha256 (hex) of the API token; see preservation.access.auth for why not a slow KDF.
    token_hash: Mapped[str | None] = mapped_column(String(128), index=True, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    token_created_at: Mapped[dt.datetime | None] = mapped_column()
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


# Tables of later migrations, defined in their own modules, join Base.metadata here.
from preservation.catalog import access_models as _access_models  # noqa: E402, F401
from preservation.catalog import deletion_models as _deletion_models  # noqa: E402, F401
