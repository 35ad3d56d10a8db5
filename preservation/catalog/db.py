"""Engines, sessions and migrations of the catalogue.

SQLite (the embedded default) and PostgreSQL (several hosts) go through the same
code. On SQLite every new connection gets ``journal_mode=WAL`` (readers do not block
the writer), ``foreign_keys=ON``, a ``busy_timeout`` (writers queue instead of failing
at once) and ``synchronous=NORMAL`` (durable at checkpoints, safe with WAL).

Errors of the database driver never leave this package raw: a connection that
cannot be made, a lock that is not granted or a serialisation failure becomes
:class:`~preservation.errors.CatalogUnavailable` (transient, worth retrying); a
refused constraint becomes :class:`~preservation.errors.CatalogConflict`; anything
else :class:`~preservation.errors.CatalogError`.

Migrations are Alembic scripts inside the package (``migrations/``); the Alembic
configuration is built in code, so no ``alembic.ini`` is needed at run time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from preservation.catalog.canonical import canonical_json
from preservation.errors import (
    CatalogConflict,
    CatalogError,
    CatalogOutdated,
    CatalogUnavailable,
    PreservationError,
)

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

    from preservation.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_BUSY_TIMEOUT_MS = 30_000
DEFAULT_CONNECT_TIMEOUT_S = 10

# SQLite messages of OperationalError that are not about availability but about a
# wrong schema, a wrong statement, a wrong path or a damaged file: permanent,
# retrying cannot help.
_SQLITE_PERMANENT = (
    "no such table",
    "no such column",
    "has no column",
    "syntax error",
    "readonly database",
    "unable to open database file",
    "file is not a database",
    "malformed",
)


def normalise_url(url: str | URL) -> URL:
    """Parse a catalogue URL; plain ``postgresql://`` (or ``postgres://``) means psycopg 3."""
    text = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://") :]
    try:
        parsed = make_url(text)
    except exc.ArgumentError as e:
        raise CatalogError(f"not a database URL: {e}") from e
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise CatalogError(
            f"unsupported catalogue database {parsed.get_backend_name()!r}:"
            " use sqlite:/// or postgresql://"
        )
    return parsed


def make_engine(
    url: str | URL,
    *,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S,
    echo: bool = False,
) -> Engine:
    """An engine for a SQLite or PostgreSQL catalogue URL, configured for this project."""
    parsed = normalise_url(url)
    connect_args: dict[str, Any] = {}
    options: dict[str, Any] = {"echo": echo, "json_serializer": canonical_json}
    if parsed.get_backend_name() == "sqlite":
        connect_args["timeout"] = busy_timeout_ms / 1000
        # Sessions may be used from worker threads; each connection is still used
        # by one thread at a time (the pool hands it out).
        connect_args["check_same_thread"] = False
    else:
        connect_args["connect_timeout"] = connect_timeout_s
        options["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, connect_args=connect_args, **options)
    except exc.SQLAlchemyError as e:
        raise CatalogError(f"cannot create a catalogue engine: {e}") from e
    if engine.dialect.name == "sqlite":
        _install_sqlite_pragmas(engine, busy_timeout_ms)
    return engine


def _make_migration_engine(url: str | URL) -> Engine:
    """An engine whose transactions really enclose DDL, for migrations.

    Python's sqlite3 (legacy transaction control) opens a transaction only before
    INSERT/UPDATE/DELETE, so DDL would run outside it and a failed migration would
    leave half a schema. Here the driver's own transaction handling is switched off
    and every SQLAlchemy transaction starts with ``BEGIN IMMEDIATE``: a migration
    applies completely or not at all. (Ordinary sessions keep the legacy mode: a
    transaction that only reads holds no snapshot, so a later write waits for the
    lock instead of failing.)
    """
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _driver_autocommit(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _install_sqlite_pragmas(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()


def translate(e: exc.SQLAlchemyError) -> CatalogError:
    """The catalogue error for a SQLAlchemy/driver error (raise it ``from e``)."""
    if isinstance(e, exc.DBAPIError):
        reason = str(e.orig).strip() or type(e.orig).__name__
    else:
        reason = str(e).strip() or type(e).__name__
    reason = reason.splitlines()[0] if reason else reason
    if isinstance(e, exc.IntegrityError):
        return CatalogConflict(reason=reason)
    if isinstance(e, exc.OperationalError):
        if any(p in reason.lower() for p in _SQLITE_PERMANENT):
            return CatalogError(f"catalogue error: {reason}")
        return CatalogUnavailable(f"catalogue unavailable: {reason}")
    if isinstance(e, exc.DisconnectionError | exc.TimeoutError):
        return CatalogUnavailable(f"catalogue unavailable: {reason}")
    return CatalogError(f"catalogue error: {reason}")


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Translate SQLAlchemy errors raised inside the block into catalogue errors."""
    try:
        yield
    except exc.SQLAlchemyError as e:
        raise translate(e) from e


class Catalog:
    """An engine plus a session factory: the handle other packages hold."""

    def __init__(self, url: str | URL, **engine_options: Any) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, **engine_options)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_config(cls, config: Config, **engine_options: Any) -> Catalog:
        return cls(config.catalog_url, **engine_options)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block succeeds, rolled
        back when it raises. Driver errors leave as catalogue errors."""
        session = self.sessionmaker()
        try:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
        except PreservationError:
            raise
        except exc.SQLAlchemyError as e:
            raise translate(e) from e

    def check_revision(self) -> str:
        """Raise CatalogOutdated unless the schema is at the head revision."""
        found = current_revision(self.engine)
        expected = head_revision()
        if found != expected:
            raise CatalogOutdated(found=found or "(empty)", expected=expected)
        return found

    def upgrade(self, revision: str = "head") -> None:
        upgrade(self.engine, revision)

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()


def alembic_config() -> AlembicConfig:
    """The Alembic configuration of the catalogue, built in code (no ini file)."""
    # Alembic is imported only when migrations are touched: it costs CLI start-up time.
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise CatalogError("the catalogue has no migration scripts")
    return head


@contextlib.contextmanager
def _engine_for(target: str | URL | Engine, *, migrations: bool = False) -> Iterator[Engine]:
    if isinstance(target, Engine) and not migrations:
        yield target
        return
    url = target.url if isinstance(target, Engine) else target
    engine = _make_migration_engine(url) if migrations else make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def upgrade(target: str | URL | Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision`` (default: head), in one
    transaction (on SQLite too)."""
    from alembic import command

    cfg = alembic_config()
    with (
        translated(),
        _engine_for(target, migrations=True) as engine,
        engine.begin() as connection,
    ):
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(target: str | URL | Engine, revision: str) -> None:
    """Run the Alembic migrations down to ``revision`` (``"base"``: empty)."""
    from alembic import command

    cfg = alembic_config()
    with (
        translated(),
        _engine_for(target, migrations=True) as engine,
        engine.begin() as connection,
    ):
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def current_revision(target: str | URL | Engine) -> str | None:
    """The revision the database is at, or None for an empty (unmigrated) database."""
    from alembic.runtime.migration import MigrationContext

    with translated(), _engine_for(target) as engine, engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
