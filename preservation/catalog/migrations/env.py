"""Alembic environment of the catalogue.

Run through :func:`preservation.catalog.db.upgrade`, which hands over an open
connection in ``config.attributes["connection"]`` (so the SQLite pragmas of
:func:`~preservation.catalog.db.make_engine` apply). Without one, the URL in the
``sqlalchemy.url`` option is used. SQLite gets batch mode (copy-and-move table
rebuilds), since it cannot alter most constraints in place.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from preservation.catalog.db import make_engine
from preservation.catalog.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=bool(url and url.startswith("sqlite")),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url given to the migrations")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _configure(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
