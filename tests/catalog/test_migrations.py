"""Migrations apply from empty, reach head, and describe exactly the models."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, Table, event, inspect

from preservation.catalog.db import (
    Catalog,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    upgrade,
)
from preservation.catalog.models import Base
from preservation.errors import CatalogError, CatalogOutdated

EXPECTED_TABLES = {
    "aips",
    "aip_versions",
    "files",
    "stores",
    "copies",
    "file_copies",
    "agents",
    "events",
    "incidents",
    "jobs",
    "users",
}


def _diff(url: str, metadata: MetaData) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(ctx, metadata))
    finally:
        engine.dispose()


def test_upgrade_from_empty_reaches_head(empty_db_url: str) -> None:
    assert current_revision(empty_db_url) is None
    upgrade(empty_db_url)
    assert current_revision(empty_db_url) == head_revision()
    engine = make_engine(empty_db_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert tables >= EXPECTED_TABLES
    upgrade(empty_db_url)  # a second run is a no-op
    assert current_revision(empty_db_url) == head_revision()


def test_models_and_migrations_do_not_drift(db_url: str) -> None:
    assert _diff(db_url, Base.metadata) == []


def test_drift_check_sees_a_difference(db_url: str) -> None:
    """The comparison above is not vacuous: an extra model column is reported."""
    extra = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(extra)
    Table("jobs", extra, Column("priority", Integer), extend_existing=True)
    diff = _diff(db_url, extra)
    assert any(
        d[0] == "add_column" and d[3].name == "priority" for d in diff if isinstance(d, tuple)
    )


def test_downgrade_to_base_and_back(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    downgrade(empty_db_url, "base")
    assert current_revision(empty_db_url) is None
    engine = make_engine(empty_db_url)
    try:
        assert not EXPECTED_TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    upgrade(empty_db_url)
    assert current_revision(empty_db_url) == head_revision()


def test_check_revision_refuses_an_unmigrated_catalogue(empty_db_url: str) -> None:
    with Catalog(empty_db_url) as cat:
        with pytest.raises(CatalogOutdated) as info:
            cat.check_revision()
        assert info.value.code == "CAT003"
        cat.upgrade()
        assert cat.check_revision() == head_revision()


def test_a_failed_migration_leaves_nothing_behind(empty_db_url: str) -> None:
    """Migrations run in one transaction, DDL included (on SQLite too)."""

    def fail_late(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("CREATE TABLE FILE_COPIES"):
            raise RuntimeError("simulated crash in the middle of a migration")

    event.listen(Engine, "before_cursor_execute", fail_late)
    try:
        with pytest.raises((CatalogError, RuntimeError)):
            upgrade(empty_db_url)
    finally:
        event.remove(Engine, "before_cursor_execute", fail_late)
    assert current_revision(empty_db_url) is None
    engine = make_engine(empty_db_url)
    try:
        assert set(inspect(engine).get_table_names()) == set()
    finally:
        engine.dispose()
    upgrade(empty_db_url)
    assert current_revision(empty_db_url) == head_revision()
