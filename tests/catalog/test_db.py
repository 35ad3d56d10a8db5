"""Engines, sessions and the translation of driver errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from preservation.catalog.db import Catalog, make_engine, normalise_url, upgrade
from preservation.catalog.models import Job
from preservation.catalog.queries import start_job
from preservation.errors import (
    CatalogConflict,
    CatalogError,
    CatalogUnavailable,
    UsageError,
)


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p%40ss@127.0.0.1:5432/db", "postgresql+psycopg"),
        ("postgres://u@127.0.0.1/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@127.0.0.1/db", "postgresql+psycopg"),
        ("sqlite:///x.sqlite", "sqlite"),
    ],
)
def test_urls_map_to_psycopg3(given: str, driver: str) -> None:
    url = normalise_url(given)
    assert url.drivername == driver
    if "p%40ss" in given:
        assert url.password == "p@ss"  # escaping survives the rewrite


@pytest.mark.parametrize("bad", ["mysql://u@127.0.0.1/db", "not a url"])
def test_other_databases_are_refused(bad: str) -> None:
    with pytest.raises(CatalogError):
        normalise_url(bad)


def test_sqlite_pragmas_on_every_connection(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite'}", busy_timeout_ms=1234)
    try:
        conns = [engine.connect() for _ in range(3)]  # three distinct pool connections
        for conn in conns:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        for conn in conns:
            conn.close()
    finally:
        engine.dispose()


def test_session_commits_on_success_and_rolls_back_on_error(catalog: Catalog) -> None:
    with catalog.session() as s:
        start_job(s, "audit", {"store": "primary"})
    with pytest.raises(RuntimeError), catalog.session() as s:
        start_job(s, "audit", {"store": "offsite"})
        raise RuntimeError("boom")
    with catalog.session() as s:
        jobs = s.execute(select(Job.params)).scalars().all()
    assert jobs == [{"store": "primary"}]


def test_constraint_violation_becomes_catalog_conflict(catalog: Catalog) -> None:
    with catalog.session() as s:
        start_job(s, "ingest", job_id="11111111-1111-1111-1111-111111111111")
    with pytest.raises(CatalogConflict) as info, catalog.session() as s:
        start_job(s, "ingest", job_id="11111111-1111-1111-1111-111111111111")
    assert info.value.code == "CAT004"
    assert isinstance(info.value.__cause__, Exception)  # raised from the driver error
    with catalog.session() as s:
        assert s.execute(select(func.count()).select_from(Job)).scalar_one() == 1


def test_preservation_errors_pass_through_unchanged(catalog: Catalog) -> None:
    with pytest.raises(UsageError), catalog.session() as s:
        start_job(s, "ingest", state="sleeping")


def test_locked_sqlite_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    url = f"sqlite:///{path}"
    upgrade(url)
    holder = sqlite3.connect(path)
    holder.execute("BEGIN IMMEDIATE")  # holds the write lock
    try:
        with Catalog(url, busy_timeout_ms=50) as cat:
            with pytest.raises(CatalogUnavailable) as info, cat.session() as s:
                start_job(s, "ingest")
            assert info.value.transient
            assert info.value.code == "CAT001"
            assert "locked" in info.value.message
    finally:
        holder.rollback()
        holder.close()


def test_refused_postgres_connection_is_unavailable() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    cat = Catalog("postgresql://postgres@127.0.0.1:1/none", connect_timeout_s=2)
    with cat, pytest.raises(CatalogUnavailable) as info, cat.session() as s:
        s.execute(text("SELECT 1"))
    assert info.value.transient


def test_missing_schema_is_a_permanent_error(tmp_path: Path) -> None:
    cat = Catalog(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    with cat, pytest.raises(CatalogError) as info, cat.session() as s:
        start_job(s, "ingest")
    assert not isinstance(info.value, CatalogUnavailable)
    assert not info.value.transient


def test_unopenable_sqlite_file_is_a_permanent_error(tmp_path: Path) -> None:
    cat = Catalog(f"sqlite:///{tmp_path / 'no-such-dir' / 'c.sqlite'}")
    with cat, pytest.raises(CatalogError) as info, cat.session() as s:
        s.execute(text("SELECT 1"))
    assert not info.value.transient
    assert "unable to open" in info.value.message
