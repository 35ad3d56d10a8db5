"""Which records a reader may see: one rule, one SQL condition.

A record is **public** when its security level (密级) is unclassified (非密 or 公开)
and its dissemination restriction, computed from 密级 and 开放状态 by
:attr:`preservation.metadata.descriptive.Rights.restriction`, is ``Allow`` (the open
status is 开放). A missing 密级 or 开放状态, or an AIP-level value that joins several
records' differing values with ``'; '``, is not public. ``aips.public`` stores the
answer (set at ingest, recomputed by every new version that carries descriptive
fields), so that visibility is one indexed column.

Every list, search, count, detail, download, export and metric a reader can reach adds
:func:`aip_visible` to its query; staff (``sees_restricted``) get ``true()``.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import ColumnElement, true

from preservation.catalog.models import Aip

# Security levels that are not classified at all (anything else, 内部 included, is not).
PUBLIC_SECURITY_LEVELS = frozenset({"非密", "公开", "public", "unclassified"})
MULTIPLE_VALUES = "; "


def is_public(fields: Mapping[str, str | None]) -> bool:
    """Whether an AIP with these descriptive fields may be shown to readers."""
    level = str(fields.get("security_level") or "").strip()
    status = str(fields.get("open_status") or "").strip()
    if not level or not status or MULTIPLE_VALUES in level or MULTIPLE_VALUES in status:
        return False
    if level.lower() not in PUBLIC_SECURITY_LEVELS:
        return False
    from preservation.metadata.descriptive import Rights  # not at import: the XML stack

    rights = Rights.from_fields({"security_level": level, "open_status": status})
    return rights.restriction == "Allow"


def aip_visible(sees_restricted: bool) -> ColumnElement[bool]:
    """The condition on :class:`~preservation.catalog.models.Aip` rows a principal may
    see: everything for staff, public AIPs only for readers."""
    if sees_restricted:
        return true()
    return Aip.public.is_(True)
