"""Catalogue fixtures: every test runs on SQLite, and on PostgreSQL too when
PRESERVATION_TEST_POSTGRES_URL names a server (a fresh database per test)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from preservation.catalog.db import Catalog, normalise_url, upgrade

# Read once at import, before tests/conftest.py's autouse fixture clears PRESERVATION_*.
POSTGRES_URL = os.environ.get("PRESERVATION_TEST_POSTGRES_URL", "")

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not POSTGRES_URL, reason="PRESERVATION_TEST_POSTGRES_URL not set"),
        ],
    ),
]


def _drop(admin: Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')


@contextlib.contextmanager
def fresh_postgres_database(server_url: str, template: str | None = None) -> Iterator[str]:
    """Create a uniquely named database on the server (a copy of ``template`` when
    given); terminate its connections and drop it afterwards."""
    base = normalise_url(server_url)
    name = f"prs_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            copy = f' TEMPLATE "{template}"' if template else ""
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"{copy}')
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            _drop(admin, name)
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A database migrated to head once per run; tests get copies of it."""
    with fresh_postgres_database(POSTGRES_URL) as url:
        upgrade(url)
        name = normalise_url(url).database
        assert name is not None
        yield name


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_db_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of an empty database (nothing migrated) on each backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('catalog') / 'catalog.sqlite'}"
    else:
        with fresh_postgres_database(POSTGRES_URL) as url:
            yield url


@pytest.fixture
def db_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The URL of a database migrated to head, on each backend."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('catalog') / 'catalog.sqlite'}"
        upgrade(url)
        yield url
    else:
        template = request.getfixturevalue("postgres_template")
        with fresh_postgres_database(POSTGRES_URL, template=template) as url:
            yield url


@pytest.fixture
def catalog(db_url: str) -> Iterator[Catalog]:
    cat = Catalog(db_url)
    try:
        yield cat
    finally:
        cat.dispose()
