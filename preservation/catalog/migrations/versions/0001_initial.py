"""initial catalogue schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Keep migrations self-contained: use plain SQLAlchemy types here, never import the
models (they describe the newest schema, not this revision's).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Timestamps: timestamptz on PostgreSQL, naive UTC text on SQLite (the models'
# UTCDateTime adds and strips the UTC zone).
UTC_TIME = sa.DateTime(timezone=True)
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*columns, name=op.f(f"pk_{table}"))


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        _pk("agents", "id"),
    )
    op.create_table(
        "aips",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("reference_code", sa.String(255), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("transfer_name", sa.String(255), nullable=True),
        sa.Column("fonds", sa.String(64), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("security_level", sa.String(64), nullable=True),
        sa.Column("open_status", sa.String(64), nullable=True),
        sa.Column("retention", sa.String(32), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("payload_key", sa.String(64), nullable=True),
        sa.CheckConstraint("state IN ('active', 'deleted')", name=op.f("ck_aips_state")),
        _pk("aips", "id"),
    )
    op.create_index(op.f("ix_aips_fonds_year"), "aips", ["fonds", "year"])
    op.create_index(op.f("ix_aips_payload_key"), "aips", ["payload_key"])
    op.create_index(op.f("ix_aips_reference_code"), "aips", ["reference_code"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("aip_id", sa.String(36), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("params", JSON_DOC, nullable=False),
        sa.Column("result", JSON_DOC, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('running', 'staging', 'finalising', 'done', 'failed', 'cancelled')",
            name=op.f("ck_jobs_state"),
        ),
        _pk("jobs", "id"),
    )
    op.create_index(op.f("ix_jobs_kind_state"), "jobs", ["kind", "state"])

    op.create_table(
        "stores",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("site", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("cold", sa.Boolean(), nullable=False),
        sa.Column("fixity_interval_days", sa.Integer(), nullable=True),
        sa.Column("configured", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=True),
        _pk("stores", "name"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(128), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        _pk("users", "id"),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "aip_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("aip_id", sa.String(36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("byte_count", sa.BigInteger(), nullable=False),
        sa.Column("mets_sha256", sa.String(64), nullable=True),
        sa.Column("bag_sha256", sa.String(64), nullable=True),
        sa.Column("descriptive", JSON_DOC, nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "reason IN ('ingest', 'metadata', 'migration', 'reingest')",
            name=op.f("ck_aip_versions_reason"),
        ),
        sa.CheckConstraint("number >= 1", name=op.f("ck_aip_versions_number")),
        sa.ForeignKeyConstraint(
            ["aip_id"], ["aips.id"], name=op.f("fk_aip_versions_aip_id_aips")
        ),
        _pk("aip_versions", "id"),
        sa.UniqueConstraint("aip_id", "number", name=op.f("uq_aip_versions_aip_id_number")),
    )
    op.create_table(
        "events",
        sa.Column("seq", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("aip_id", sa.String(36), nullable=True),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("store_name", sa.String(64), nullable=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("datetime", UTC_TIME, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("outcome_detail", sa.Text(), nullable=False),
        # plain JSON on PostgreSQL too: the stored text is the hashed canonical JSON
        sa.Column("agents", sa.JSON(), nullable=False),
        sa.Column("objects", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('success', 'failure', 'warning', 'not performed')",
            name=op.f("ck_events_outcome"),
        ),
        sa.ForeignKeyConstraint(["aip_id"], ["aips.id"], name=op.f("fk_events_aip_id_aips")),
        _pk("events", "seq"),
        sa.UniqueConstraint("id", name=op.f("uq_events_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_events_aip_id_seq"), "events", ["aip_id", "seq"])
    op.create_index(op.f("ix_events_store_name"), "events", ["store_name"])
    op.create_index(op.f("ix_events_type_datetime"), "events", ["type", "datetime"])

    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("aip_id", sa.String(36), nullable=True),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("store_name", sa.String(64), nullable=True),
        sa.Column("path", sa.String(1024), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("opened_at", UTC_TIME, nullable=False),
        sa.Column("closed_at", UTC_TIME, nullable=True),
        sa.Column("evidence", JSON_DOC, nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "severity IN ('warning', 'error', 'critical')", name=op.f("ck_incidents_severity")
        ),
        sa.CheckConstraint(
            "state IN ('open', 'repaired', 'closed')", name=op.f("ck_incidents_state")
        ),
        sa.ForeignKeyConstraint(
            ["aip_id"], ["aips.id"], name=op.f("fk_incidents_aip_id_aips")
        ),
        _pk("incidents", "id"),
    )
    op.create_index(op.f("ix_incidents_aip_id"), "incidents", ["aip_id"])
    op.create_index(op.f("ix_incidents_state_opened_at"), "incidents", ["state", "opened_at"])

    op.create_table(
        "copies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("store_name", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("verified_at", UTC_TIME, nullable=True),
        sa.Column("last_audit_at", UTC_TIME, nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'stored', 'verified', 'failed', 'missing', 'deleted')",
            name=op.f("ck_copies_state"),
        ),
        sa.ForeignKeyConstraint(
            ["store_name"], ["stores.name"], name=op.f("fk_copies_store_name_stores")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["aip_versions.id"], name=op.f("fk_copies_version_id_aip_versions")
        ),
        _pk("copies", "id"),
        sa.UniqueConstraint(
            "version_id", "store_name", name=op.f("uq_copies_version_id_store_name")
        ),
    )
    op.create_index(op.f("ix_copies_store_name_state"), "copies", ["store_name", "state"])

    op.create_table(
        "files",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("sha512", sa.String(128), nullable=True),
        sa.Column("puid", sa.String(64), nullable=True),
        sa.Column("mime", sa.String(255), nullable=True),
        sa.Column("format_name", sa.Text(), nullable=True),
        sa.Column("format_version", sa.String(255), nullable=True),
        sa.Column("file_uuid", sa.String(36), nullable=True),
        sa.Column("origin_version", sa.Integer(), nullable=False),
        sa.Column("record_reference_code", sa.String(255), nullable=True),
        sa.Column("original_name", sa.Text(), nullable=True),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("derived_from", sa.String(36), nullable=True),
        sa.CheckConstraint("kind IN ('payload', 'tag')", name=op.f("ck_files_kind")),
        sa.ForeignKeyConstraint(
            ["version_id"], ["aip_versions.id"], name=op.f("fk_files_version_id_aip_versions")
        ),
        _pk("files", "id"),
        sa.UniqueConstraint("version_id", "path", name=op.f("uq_files_version_id_path")),
    )
    op.create_index(op.f("ix_files_file_uuid"), "files", ["file_uuid"])
    op.create_index(op.f("ix_files_record_reference_code"), "files", ["record_reference_code"])

    op.create_table(
        "file_copies",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("copy_id", sa.Integer(), nullable=False),
        sa.Column("file_id", BIG_ID, nullable=False),
        sa.Column("store_name", sa.String(64), nullable=False),
        sa.Column("last_verified_at", UTC_TIME, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('pass', 'fail', 'missing')",
            name=op.f("ck_file_copies_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["copy_id"], ["copies.id"], name=op.f("fk_file_copies_copy_id_copies")
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_file_copies_file_id_files")
        ),
        sa.ForeignKeyConstraint(
            ["store_name"], ["stores.name"], name=op.f("fk_file_copies_store_name_stores")
        ),
        _pk("file_copies", "id"),
        sa.UniqueConstraint("copy_id", "file_id", name=op.f("uq_file_copies_copy_id_file_id")),
    )
    op.create_index(op.f("ix_file_copies_file_id"), "file_copies", ["file_id"])
    op.create_index(op.f("ix_file_copies_last_verified_at"), "file_copies", ["last_verified_at"])
    op.create_index(
        op.f("ix_file_copies_store_name_last_verified_at"),
        "file_copies",
        ["store_name", "last_verified_at"],
    )


def downgrade() -> None:
    # Indexes go with their tables; drop children before parents.
    for table in (
        "file_copies",
        "files",
        "copies",
        "incidents",
        "events",
        "aip_versions",
        "users",
        "stores",
        "jobs",
        "aips",
        "agents",
    ):
        op.drop_table(table)
