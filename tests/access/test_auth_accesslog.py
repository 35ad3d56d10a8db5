"""The access-log review (NDSA control L4) and migration 0003's public flag."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from preservation.access.accesslog import MANY_DOWNLOADS, off_hours, review
from preservation.catalog import access_queries as aq
from preservation.catalog.db import downgrade, make_engine, upgrade
from preservation.repository import init_repository

UTC = dt.UTC


def test_review_summarises_a_period(tmp_path: Path) -> None:
    repo = init_repository(tmp_path / "repo")
    monday = dt.datetime(2026, 11, 23, tzinfo=UTC)
    with repo.catalog.session() as s:
        add = aq.add_access
        add(s, action="view", status=200, user_name="li", role="auditor", aip_id="A",
            restricted=True, at=monday.replace(hour=10))  # fmt: skip
        add(s, action="download", status=200, user_name="li", role="auditor", aip_id="A",
            restricted=True, at=monday.replace(hour=23))  # fmt: skip
        add(s, action="download", status=404, user_name="li", role="auditor", aip_id="B",
            restricted=True, at=monday.replace(hour=11))  # fmt: skip
        for i in range(MANY_DOWNLOADS + 1):
            add(s, action="download", status=200, user_name="wu", role="reader", aip_id="P",
                at=monday.replace(hour=9, minute=i % 60))  # fmt: skip
        add(s, action="denied", status=403, user_name="wu", role="reader", client="10.0.0.9",
            at=monday.replace(hour=12))  # fmt: skip
        add(s, action="login_failed", status=401, user_name="zhao", client="10.0.0.7",
            at=monday.replace(hour=12))  # fmt: skip
        add(s, action="correct", status=200, user_name="li", role="archivist", aip_id="A",
            at=monday.replace(hour=14))  # fmt: skip
        add(s, action="view", status=200, user_name="old", at=monday - dt.timedelta(days=30))
    data = review(repo, monday, monday + dt.timedelta(days=1))
    assert data["entries"] == 3 + MANY_DOWNLOADS + 1 + 3
    assert data["restricted_reads"] == {"li": {"total": 2, "aips": {"A": 2}}}
    assert data["by_user"]["wu"] == {"denied": 1, "download": MANY_DOWNLOADS + 1}
    assert data["denials"] == [{"user": "wu", "client": "10.0.0.9", "count": 1}]
    assert data["failed_logins"] == [{"user": "zhao", "client": "10.0.0.7", "count": 1}]
    assert [c["action"] for c in data["changes"]] == ["correct"]
    unusual = data["unusual"]
    assert [(o["user"], o["action"]) for o in unusual["off_hours"]] == [("li", "download")]
    assert unusual["many_downloads"] == [
        {"user": "wu", "day": "2026-11-23", "downloads": MANY_DOWNLOADS + 1}
    ]
    assert "old" not in data["by_user"]
    assert off_hours(dt.datetime(2026, 11, 28, 10, tzinfo=UTC))  # a Saturday
    assert not off_hours(dt.datetime(2026, 11, 27, 10, tzinfo=UTC))


def test_migration_0003_sets_public_for_existing_aips(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    upgrade(url, "0002")
    engine = make_engine(url)
    now = "2026-01-01 00:00:00.000000"  # naive UTC text, as SQLite holds it
    rows = [
        ("a1", "公开", "开放"),
        ("a2", " 非密 ", "开放"),
        ("a3", "秘密", "开放"),
        ("a4", "公开", "控制"),
        ("a5", None, None),
    ]
    with engine.begin() as conn:
        for ident, level, status in rows:
            conn.execute(
                sa.text(
                    "INSERT INTO aips (id, security_level, open_status, created_at, state,"
                    " current_version) VALUES (:i, :l, :s, :t, 'active', 1)"
                ),
                {"i": ident, "l": level, "s": status, "t": now},
            )
    upgrade(url)
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT id, public FROM aips ORDER BY id")).all()
        public: dict[str, int] = {str(r[0]): int(r[1]) for r in found}
    assert public == {"a1": 1, "a2": 1, "a3": 0, "a4": 0, "a5": 0}
    downgrade(url, "0002")
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("aips")}
    assert "public" not in columns
    engine.dispose()
