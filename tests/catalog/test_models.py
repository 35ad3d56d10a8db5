"""Models on both backends: aware UTC timestamps, constraints that refuse bad rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from preservation.catalog.db import Catalog
from preservation.catalog.models import (
    Aip,
    AipVersion,
    Copy,
    EventRow,
    File,
    FileCopy,
    Incident,
    User,
)
from preservation.errors import CatalogConflict, CatalogError
from tests.catalog.factories import add_aip, add_store, sha256_hex

BEIJING = dt.timezone(dt.timedelta(hours=8))


def test_timestamps_round_trip_as_aware_utc(catalog: Catalog) -> None:
    local = dt.datetime(2024, 2, 29, 23, 30, 15, 123456, tzinfo=BEIJING)
    with catalog.session() as s:
        aip, _ = add_aip(s)
        aip.created_at = local
        aip_id = aip.id
    with catalog.session() as s:
        back = s.get(Aip, aip_id)
        assert back is not None
        got = back.created_at
        raw = s.execute(text("SELECT created_at FROM aips")).scalar_one()
    assert got == local  # the same instant …
    assert got.tzinfo == dt.UTC  # … handed back in UTC
    assert (got.hour, got.microsecond) == (15, 123456)
    if catalog.dialect == "sqlite":
        assert str(raw).startswith("2024-02-29 15:30:15.123456")  # stored as UTC


def test_defaults_are_aware_utc(catalog: Catalog) -> None:
    before = dt.datetime.now(dt.UTC)
    with catalog.session() as s:
        aip, version = add_aip(s)
        ids = (aip.id, version.id)
    with catalog.session() as s:
        aip_back = s.get(Aip, ids[0])
        version_back = s.get(AipVersion, ids[1])
        assert aip_back is not None and version_back is not None
        for value in (aip_back.created_at, version_back.created_at):
            assert value.tzinfo == dt.UTC
            assert before - dt.timedelta(seconds=1) <= value <= dt.datetime.now(dt.UTC)


def test_naive_timestamps_are_refused(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="naive"), catalog.session() as s:
        aip, _ = add_aip(s)
        aip.created_at = dt.datetime(2024, 1, 1, 12, 0)  # noqa: DTZ001 - the point of the test
        s.flush()


def _version_twice(s: Session) -> None:
    aip, _ = add_aip(s)
    s.add(AipVersion(aip_id=aip.id, number=1, reason="metadata", descriptive={}))


def _file_path_twice(s: Session) -> None:
    _, version = add_aip(s)
    for _ in range(2):
        s.add(
            File(
                version_id=version.id,
                path="data/a.pdf",
                kind="payload",
                size=1,
                sha256=sha256_hex("a"),
                origin_version=1,
            )
        )


def _copy_twice(s: Session) -> None:
    add_store(s)
    _, version = add_aip(s)
    s.add(Copy(version_id=version.id, store_name="primary", state="stored"))
    s.flush()
    s.add(Copy(version_id=version.id, store_name="primary", state="pending"))


def _file_copy_twice(s: Session) -> None:
    add_store(s)
    _, version = add_aip(s)
    f = File(
        version_id=version.id,
        path="data/a",
        kind="payload",
        size=1,
        sha256="0" * 64,
        origin_version=1,
    )
    c = Copy(version_id=version.id, store_name="primary", state="stored")
    s.add_all([f, c])
    s.flush()
    for _ in range(2):
        s.add(FileCopy(copy_id=c.id, file_id=f.id, store_name="primary"))


def _user_twice(s: Session) -> None:
    s.add(User(name="zhang", role="admin"))
    s.flush()
    s.add(User(name="zhang", role="reader"))


def _event_id_twice(s: Session) -> None:
    when = dt.datetime.now(dt.UTC)
    for n in range(2):
        s.add(
            EventRow(
                id="dup-id",
                type="fixity check",
                datetime=when,
                outcome="success",
                prev_hash=str(n) * 64,
                hash=str(n + 1) * 64,
            )
        )
        s.flush()


@pytest.mark.parametrize(
    "make_duplicate",
    [_version_twice, _file_path_twice, _copy_twice, _file_copy_twice, _user_twice, _event_id_twice],
)
def test_unique_constraints(catalog: Catalog, make_duplicate: Callable[[Session], None]) -> None:
    with pytest.raises(CatalogConflict), catalog.session() as s:
        make_duplicate(s)
        s.flush()


def test_foreign_keys_are_enforced(catalog: Catalog) -> None:
    with pytest.raises(CatalogConflict), catalog.session() as s:
        s.add(AipVersion(aip_id="no-such-aip", number=1, reason="ingest", descriptive={}))
        s.flush()


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (Incident, {"kind": "mismatch", "severity": "bad", "state": "open"}),
        (Incident, {"kind": "mismatch", "severity": "error", "state": "gone"}),
    ],
)
def test_check_constraints_refuse_unknown_values(
    catalog: Catalog, model: type[Incident], values: dict[str, str]
) -> None:
    with pytest.raises(CatalogConflict), catalog.session() as s:
        s.add(model(evidence={}, **values))
        s.flush()


def test_aip_state_is_checked(catalog: Catalog) -> None:
    with pytest.raises(CatalogConflict), catalog.session() as s:
        add_aip(s, state="archived")


def test_json_documents_round_trip(catalog: Catalog) -> None:
    evidence = {"expected": "ab" * 32, "found": None, "paths": ["data/文件.pdf"], "n": 3}
    with catalog.session() as s:
        s.add(Incident(kind="mismatch", severity="error", evidence=evidence))
    with catalog.session() as s:
        got = s.execute(select(Incident.evidence)).scalar_one()
    assert got == evidence
