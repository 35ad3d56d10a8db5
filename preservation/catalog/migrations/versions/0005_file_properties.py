"""file properties: what opening each payload file found (dpi, colour mode, pages …)

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-26

Self-contained like 0001: plain SQLAlchemy types, no model imports.

Files recorded before this revision keep ``properties`` NULL; the statistics report
counts their AIPs from the ingest job's ``result["received"]`` where it has one.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("files", sa.Column("properties", JSON_DOC, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("properties")
