"""Tables of controlled deletion: deletion requests and tombstones (migration 0002).

Deleting an AIP takes two people: one requests it (with a reason), a different one
approves it (see :mod:`preservation.storage.deletion`). A request moves through

    requested ──approve──▶ approved ──objects removed──▶ completed
                               │
                               └─ retention holds ──▶ blocked ──approve again──▶ …

``history`` keeps every step with its user (request, refused approval, approval,
block, completion) as ``{"at", "user", "action", "detail"}`` objects, so the
catalogue itself shows who tried what. A completed deletion leaves one
:class:`Tombstone` per AIP; the AIP row stays (state ``deleted``) so that its events
still point at it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from preservation.catalog.models import Base
from preservation.model import utcnow

DELETION_STATES = ("requested", "approved", "blocked", "completed")
# Requests that still hold an AIP (a second request for it is refused).
OPEN_DELETION_STATES = ("requested", "approved", "blocked")
_STATE_CHECK = "state IN ({})".format(", ".join(f"'{s}'" for s in DELETION_STATES))


class DeletionRequest(Base):
    """A request to delete one AIP, and what became of it."""

    __tablename__ = "deletion_requests"
    __table_args__ = (
        CheckConstraint(_STATE_CHECK, name="state"),
        Index(None, "aip_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    aip_id: Mapped[str] = mapped_column(ForeignKey("aips.id"))
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(255))
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="requested")
    approved_by: Mapped[str | None] = mapped_column(String(255))
    approved_at: Mapped[dt.datetime | None] = mapped_column()
    completed_at: Mapped[dt.datetime | None] = mapped_column()
    detail: Mapped[str | None] = mapped_column(Text)  # why blocked or unfinished
    history: Mapped[list[Any]] = mapped_column(default=list)


class Tombstone(Base):
    """What remains of a deleted AIP: who deleted it, why, when, and what it was.

    ``document`` is the JSON written as ``<aip>/tombstone.json`` on every store.
    """

    __tablename__ = "tombstones"

    aip_id: Mapped[str] = mapped_column(ForeignKey("aips.id"), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("deletion_requests.id"))
    deleted_at: Mapped[dt.datetime] = mapped_column()
    requested_by: Mapped[str] = mapped_column(String(255))
    approved_by: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(String(36))
    document: Mapped[dict[str, Any]] = mapped_column()
