"""The audit planning query's keyset pages and the bulk recording of checks, on each
backend (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from preservation.catalog.audit_queries import (
    Cursor,
    audit_candidates,
    copy_files,
    record_checks,
)
from preservation.catalog.db import Catalog
from preservation.catalog.models import FileCopy
from preservation.catalog.queries import add_copy, add_files_batched
from tests.catalog.factories import add_aip, add_store, file_rows


def _store_with_files(catalog: Catalog, n: int) -> list[int]:
    with catalog.session() as s:
        add_store(s, "primary")
        _, version = add_aip(s)
        add_files_batched(s, version.id, file_rows(n))
        copy = add_copy(s, version.id, "primary", state="verified")
        return list(
            s.execute(
                select(FileCopy.id).where(FileCopy.copy_id == copy.id).order_by(FileCopy.id)
            ).scalars()
        )


def test_pages_follow_the_order_through_ties_without_gaps(catalog: Catalog) -> None:
    ids = _store_with_files(catalog, 9)
    now = dt.datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    old, older = now - dt.timedelta(days=200), now - dt.timedelta(days=300)
    # 2 never verified, then 3 tied at `older`, 3 tied at `old`, 1 recent (not due)
    when = [None, None, older, old, older, old, older, old, now]
    with catalog.session() as s:
        record_checks(
            s,
            [
                {"id": i, "last_verified_at": w, "outcome": "pass", "detail": "seeded"}
                for i, w in zip(ids, when, strict=True)
                if w is not None
            ],
        )
    expected = [ids[0], ids[1], ids[2], ids[4], ids[6], ids[3], ids[5], ids[7]]
    cutoff = now - dt.timedelta(days=90)
    seen: list[int] = []
    after: Cursor | None = None
    with catalog.session() as s:
        while page := audit_candidates(s, "primary", verified_before=cutoff, limit=2, after=after):
            seen += [c.file_copy_id for c in page]
            after = Cursor.after(page[-1])
    assert seen == expected
    with catalog.session() as s:
        whole = audit_candidates(s, "primary", verified_before=cutoff, limit=100)
    assert [c.file_copy_id for c in whole] == expected


def test_record_checks_stores_what_reads_back(catalog: Catalog) -> None:
    ids = _store_with_files(catalog, 3)
    when = dt.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with catalog.session() as s:
        assert (
            record_checks(
                s,
                [
                    {"id": ids[0], "last_verified_at": when, "outcome": "pass", "detail": "ok"},
                    {"id": ids[2], "last_verified_at": when, "outcome": "fail", "detail": "别"},
                ],
            )
            == 2
        )
    with catalog.session() as s:
        rows = {c.file_copy_id: c for c in copy_files(s, 1)}
        stored = {
            r.id: (r.last_verified_at, r.outcome, r.detail)
            for r in s.execute(select(FileCopy)).scalars()
        }
    utc = when.astimezone(dt.UTC)
    assert stored[ids[0]] == (utc, "pass", "ok")
    assert stored[ids[1]] == (None, None, None)
    assert stored[ids[2]] == (utc, "fail", "别")
    assert rows[ids[0]].last_verified_at == utc and rows[ids[1]].last_verified_at is None
    # the stored time compares like one the ORM wrote: due before a later cutoff only
    with catalog.session() as s:
        due = audit_candidates(s, "primary", verified_before=utc, limit=10)
        assert [c.file_copy_id for c in due] == [ids[1]]
        due = audit_candidates(s, "primary", verified_before=utc + dt.timedelta(microseconds=1),
                               limit=10)  # fmt: skip
        assert [c.file_copy_id for c in due] == [ids[1], ids[0], ids[2]]
