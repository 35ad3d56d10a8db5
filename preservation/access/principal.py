"""Who is asking: a signed-in user's name and role, and what that role may do.

Roles (issue 7, NDSA control level 1: who may read, write, move, delete):

========== ==================================================================
admin      everything, including users and tokens
archivist  reads everything, ingests, corrects metadata, exports
auditor    reads everything (restricted records too), changes nothing
reader     open records only (:func:`preservation.catalog.visibility.aip_visible`)
========== ==================================================================

Every route asks ``principal.can(action)`` for the action it performs; visibility of
restricted records is a separate question (:attr:`Principal.sees_restricted`) that
every query a reader can reach answers through ``aip_visible``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    ARCHIVIST = "archivist"
    AUDITOR = "auditor"
    READER = "reader"


# Actions and the roles allowed to perform them.
READ = "read"  # lists, search, detail, download, export of records the role may see
READ_OPERATIONS = "read_operations"  # health, audits, incidents, formats, jobs, events
EXPORT = "export"
INGEST = "ingest"
EDIT_METADATA = "edit_metadata"
MANAGE_USERS = "manage_users"
READ_ACCESS_LOG = "read_access_log"

_STAFF = frozenset({Role.ADMIN, Role.ARCHIVIST, Role.AUDITOR})
PERMISSIONS: dict[str, frozenset[Role]] = {
    READ: frozenset(Role),
    EXPORT: frozenset(Role),
    READ_OPERATIONS: _STAFF,
    READ_ACCESS_LOG: frozenset({Role.ADMIN, Role.AUDITOR}),
    INGEST: frozenset({Role.ADMIN, Role.ARCHIVIST}),
    EDIT_METADATA: frozenset({Role.ADMIN, Role.ARCHIVIST}),
    MANAGE_USERS: frozenset({Role.ADMIN}),
}
ACTIONS = tuple(PERMISSIONS)


@dataclass(frozen=True)
class Principal:
    """A signed-in user (``user_id`` None for a principal made outside the catalogue,
    such as the CLI acting as the local operator)."""

    name: str
    role: Role
    user_id: int | None = None

    @property
    def sees_restricted(self) -> bool:
        """Whether records that are not public are visible (everyone but readers)."""
        return self.role is not Role.READER

    def can(self, action: str) -> bool:
        """Whether this role may perform ``action`` (an unknown action: never)."""
        allowed = PERMISSIONS.get(action)
        return allowed is not None and self.role in allowed
