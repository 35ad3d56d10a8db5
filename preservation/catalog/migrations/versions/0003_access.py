"""access: public flag of AIPs, user tokens and sessions, the access log

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

Self-contained like 0001: plain SQLAlchemy types, no model imports.

AIPs recorded before this revision get ``public`` from their catalogue columns with
the same rule as ``preservation.catalog.visibility.is_public``: an unclassified
security level (非密, 公开) and an open status (开放, 公开, open); anything else,
including a missing value, stays invisible to readers.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_PUBLIC_LEVELS = ("非密", "公开", "public", "unclassified")
_OPEN = ("开放", "公开", "open")


def upgrade() -> None:
    op.add_column(
        "aips", sa.Column("public", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.create_index(op.f("ix_aips_public"), "aips", ["public"])
    aips = sa.table(
        "aips",
        sa.column("public", sa.Boolean()),
        sa.column("security_level", sa.String()),
        sa.column("open_status", sa.String()),
    )
    op.execute(
        aips.update()
        .where(
            sa.func.lower(sa.func.trim(aips.c.security_level)).in_(_PUBLIC_LEVELS),
            sa.func.lower(sa.func.trim(aips.c.open_status)).in_(_OPEN),
        )
        .values(public=True)
    )

    op.add_column("users", sa.Column("token_created_at", UTC_TIME, nullable=True))
    op.add_column(
        "users", sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.create_index(op.f("ix_users_token_hash"), "users", ["token_hash"], unique=True)

    op.create_table(
        "access_log",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("user_name", sa.String(255), nullable=True),
        sa.Column("role", sa.String(32), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("aip_id", sa.String(36), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("client", sa.String(255), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("restricted", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_log")),
    )
    op.create_index(op.f("ix_access_log_at"), "access_log", ["at"])
    op.create_index(op.f("ix_access_log_aip_id"), "access_log", ["aip_id"])

    op.create_table(
        "user_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
        sa.Column("client", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_sessions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_user_sessions")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_user_sessions_user_id"), table_name="user_sessions")
    op.drop_table("user_sessions")
    op.drop_index(op.f("ix_access_log_aip_id"), table_name="access_log")
    op.drop_index(op.f("ix_access_log_at"), table_name="access_log")
    op.drop_table("access_log")
    op.drop_index(op.f("ix_users_token_hash"), table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled")
        batch.drop_column("token_created_at")
    op.drop_index(op.f("ix_aips_public"), table_name="aips")
    with op.batch_alter_table("aips") as batch:
        batch.drop_column("public")
