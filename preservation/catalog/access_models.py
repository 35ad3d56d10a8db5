"""Tables of access control (migration 0003): the access log and browser sessions.

:class:`AccessLogEntry` is the evidence NDSA control levels 3 and 4 ask for (who did
what, when, from where; reviewed periodically): every read of restricted content,
every change, every sign-in, failed sign-in and denial. Rows are only ever added.

:class:`UserSession` is a signed-in browser: the cookie carries a random 32-byte
session token, the table only its sha256 (like API tokens: see
:mod:`preservation.access.auth`). Signing out, rotating the user's token or
disabling the user deletes the user's sessions.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from preservation.catalog.models import Base
from preservation.model import utcnow

# What an access-log row records (``action``).
ACCESS_ACTIONS = (
    "list",
    "search",
    "view",
    "download",
    "export",
    "ingest",
    "correct",
    "login",
    "login_failed",
    "logout",
    "denied",
    "token_rotated",
    "user_added",
    "user_disabled",
)


class AccessLogEntry(Base):
    """One access: who (``user_name``, ``role``), what (``action``, ``aip_id``,
    ``path``), when (``at``), from where (``client``), the outcome (``status``: the
    HTTP status, or the CLI's exit status) and whether a record that is not public
    was touched (``restricted``)."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    user_name: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    aip_id: Mapped[str | None] = mapped_column(String(36), index=True)
    path: Mapped[str | None] = mapped_column(Text)
    client: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[int] = mapped_column(Integer)
    restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class UserSession(Base):
    """A signed-in browser session (the cookie's token, hashed)."""

    __tablename__ = "user_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    client: Mapped[str | None] = mapped_column(String(255))
