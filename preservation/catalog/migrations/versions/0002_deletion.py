"""controlled deletion: deletion requests and tombstones

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Self-contained like 0001: plain SQLAlchemy types, no model imports.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "deletion_requests",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("aip_id", sa.String(36), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("requested_at", UTC_TIME, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("approved_by", sa.String(255), nullable=True),
        sa.Column("approved_at", UTC_TIME, nullable=True),
        sa.Column("completed_at", UTC_TIME, nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("history", JSON_DOC, nullable=False),
        sa.CheckConstraint(
            "state IN ('requested', 'approved', 'blocked', 'completed')",
            name=op.f("ck_deletion_requests_state"),
        ),
        sa.ForeignKeyConstraint(
            ["aip_id"], ["aips.id"], name=op.f("fk_deletion_requests_aip_id_aips")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deletion_requests")),
    )
    op.create_index(
        op.f("ix_deletion_requests_aip_id_state"), "deletion_requests", ["aip_id", "state"]
    )
    op.create_table(
        "tombstones",
        sa.Column("aip_id", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("deleted_at", UTC_TIME, nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("approved_by", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("document", JSON_DOC, nullable=False),
        sa.ForeignKeyConstraint(["aip_id"], ["aips.id"], name=op.f("fk_tombstones_aip_id_aips")),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["deletion_requests.id"],
            name=op.f("fk_tombstones_request_id_deletion_requests"),
        ),
        sa.PrimaryKeyConstraint("aip_id", name=op.f("pk_tombstones")),
    )


def downgrade() -> None:
    op.drop_table("tombstones")
    op.drop_table("deletion_requests")
