"""Event-chain verification split over worker processes gives the one-pass result."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import text

from preservation.catalog import events
from preservation.catalog.canonical import canonical_json
from preservation.catalog.db import Catalog, upgrade
from preservation.catalog.models import GENESIS_HASH


def _fill(catalog: Catalog, n: int) -> None:
    """``n`` chained events written straight to the table (fast)."""
    prev = GENESIS_HASH
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = []
    for i in range(1, n + 1):
        when = start + dt.timedelta(seconds=i, microseconds=i)
        ident, agents, objects = f"{i:08x}-2222-4000-8000-{i:012x}", [["p", "x"]], [f"o{i}"]
        digest = events.event_hash(
            events.canonical_event_bytes(
                identifier=ident,
                type="fixity check",
                datetime=when,
                outcome="success",
                detail=f"check {i}",
                outcome_detail="",
                agents=agents,
                objects=objects,
                aip_id=None,
                version_id=None,
                store_name="primary",
                prev_hash=prev,
            )
        )
        rows.append(
            {
                "id": ident,
                "type": "fixity check",
                "datetime": when.replace(tzinfo=None).isoformat(sep=" "),
                "outcome": "success",
                "detail": f"check {i}",
                "od": "",
                "agents": canonical_json(agents),
                "objects": canonical_json(objects),
                "prev": prev,
                "hash": digest,
            }
        )
        prev = digest
    with catalog.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO events (id, type, datetime, outcome, detail, outcome_detail, agents,"
                " objects, store_name, prev_hash, hash) VALUES (:id, :type, :datetime, :outcome,"
                " :detail, :od, :agents, :objects, 'primary', :prev, :hash)"
            ),
            rows,
        )


def test_parallel_verification_agrees_with_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    upgrade(url)
    catalog = Catalog(url)
    try:
        _fill(catalog, 1_000)
        with catalog.session() as s:
            one = events.verify_chain(s, batch=97)
            assert events._split(s, 0, 2) is None  # a short log stays in this process
            assert events.verify_chain(s, batch=97, processes=2) == one
        assert one.ok and one.count == 1_000 and one.last_seq == 1_000
        with catalog.engine.begin() as conn:  # tamper in the later ranges, cut at a bound
            conn.execute(text("UPDATE events SET detail = 'changed' WHERE seq = 900"))
            conn.execute(text("DELETE FROM events WHERE seq = 501"))
        monkeypatch.setattr(events, "PARALLEL_MIN_EVENTS", 100)
        with catalog.session() as s:
            assert events._split(s, 0, 3) == [0, 333, 667, 1_000]
            one = events.verify_chain(s, batch=97)
            three = events.verify_chain(s, batch=97, processes=3)
        assert not three.ok and one == three and three.count == 999 and three.breaks == 2
        assert three.first_break is not None and three.first_break.seq == 502
        assert three.first_break.kind == "link" and three.last_seq == 1_000
    finally:
        catalog.dispose()
