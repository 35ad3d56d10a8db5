"""Insert-or-update of one row, portable between SQLite and PostgreSQL.

Both dialects speak ``INSERT … ON CONFLICT (key) DO UPDATE``; doing it in one
statement avoids the read-then-write race of two processes adding the same row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session

from preservation.errors import CatalogError


def upsert(
    session: Session,
    model: type[DeclarativeBase],
    values: Mapping[str, Any],
    key: Sequence[str],
    update: Sequence[str] | None = None,
) -> None:
    """Insert ``values``; on a conflict on ``key`` update the ``update`` columns
    (default: every given column that is not part of the key)."""
    columns = [c for c in values if c not in key] if update is None else list(update)
    changed = {c: values[c] for c in columns}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        pg = postgresql.insert(model).values(dict(values))
        stmt = (
            pg.on_conflict_do_update(index_elements=list(key), set_=changed)
            if changed
            else pg.on_conflict_do_nothing(index_elements=list(key))
        )
        session.execute(stmt)
    elif dialect == "sqlite":
        lite = sqlite.insert(model).values(dict(values))
        stmt2 = (
            lite.on_conflict_do_update(index_elements=list(key), set_=changed)
            if changed
            else lite.on_conflict_do_nothing(index_elements=list(key))
        )
        session.execute(stmt2)
    else:
        raise CatalogError(f"catalogue database {dialect!r} is not supported")
