"""The access log: writing entries, and the periodic review (NDSA control level 4).

What is written (``access_log``): every read of a record that is not public (detail,
download, export, by staff), every change (ingest, metadata correction, user
management, and the CLI's changing commands), every sign-in, failed sign-in and
sign-out, every denial (HTTP 401 and 403) and every refused request (413, 422).
Reads of public records are not logged one by one: they are open to every reader
and the HTTP metrics count them.

:func:`review` summarises a period for the periodic review the NDSA level asks for:
entries per user and per action, reads of restricted records per user, denials and
failed sign-ins per user and per client address, and what looks unusual: activity
outside office hours (before :data:`OFFICE_START` or from :data:`OFFICE_END` UTC
hours, or on a weekend) and users who downloaded or exported more than
:data:`MANY_DOWNLOADS` times in one day.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import logging
import socket
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from preservation.access.principal import Principal
from preservation.catalog import access_queries as aq
from preservation.errors import PreservationError
from preservation.repository import Repository

log = logging.getLogger(__name__)

OFFICE_START = 8  # UTC hour
OFFICE_END = 19
MANY_DOWNLOADS = 50
_READS = ("download", "export", "view", "list", "search")
CLI_CLIENT = "cli"
# actions that change something (the review lists each one)
CHANGES = (
    "ingest",
    "ingest_cleanup",
    "correct",
    "user_added",
    "token_rotated",
    "user_disabled",
    "migrate",
    "reidentify",
    "repair",
    "delete_request",
    "delete_approve",
    "resync",
    "rebuild",
)


def record(
    repo: Repository,
    *,
    action: str,
    status: int,
    principal: Principal | None = None,
    user_name: str | None = None,
    aip_id: str | None = None,
    path: str | None = None,
    client: str | None = None,
    restricted: bool = False,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Write one access-log entry in its own transaction."""
    with repo.catalog.session() as s:
        aq.add_access(
            s,
            action=action,
            status=status,
            user_name=principal.name if principal is not None else user_name,
            role=principal.role.value if principal is not None else None,
            aip_id=aip_id,
            path=path,
            client=client,
            restricted=restricted,
            detail=detail,
        )


def record_quietly(repo: Repository, **fields: Any) -> None:
    """:func:`record` for paths where the catalogue may itself be the problem (an
    error handler): a failure to log is logged, never raised over the real error."""
    try:
        record(repo, **fields)
    except PreservationError:
        log.exception("could not write the access log entry %s", fields.get("action"))


def os_user() -> str:
    """The login name of whoever runs a command (``operator`` when unknown)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def cli_client() -> str:
    """Where a command-line change comes from: ``cli@<hostname>``."""
    return f"{CLI_CLIENT}@{socket.gethostname()}"


@contextlib.contextmanager
def cli_change(
    repo: Repository,
    action: str,
    *,
    user: str | None = None,
    aip_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Log one change made from the command line, however it ends.

    Who: ``user`` (a command's ``--user``), else the OS user; where from:
    :func:`cli_client`; the outcome: the exit status (0, the error's status, or
    the status a command exits with). The block may add to the yielded dict:
    ``aip`` names the AIP, everything else joins ``detail``. The entry is written
    after the block and never raised over the block's own error.
    """
    extra: dict[str, Any] = {}
    status = 0
    try:
        yield extra
    except PreservationError as e:
        status = e.exit_status
        extra["error"] = e.code
        raise
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        raise
    except BaseException as e:
        status = 1
        extra["error"] = type(e).__name__
        raise
    finally:
        aip = extra.pop("aip", None) or aip_id
        record_quietly(
            repo,
            action=action,
            status=status,
            user_name=user or os_user(),
            aip_id=aip,
            client=cli_client(),
            detail={**(detail or {}), **extra} or None,
        )


def off_hours(at: dt.datetime) -> bool:
    at = at.astimezone(dt.UTC)
    return at.weekday() >= 5 or at.hour < OFFICE_START or at.hour >= OFFICE_END


def review(
    repo: Repository, since: dt.datetime, until: dt.datetime | None = None
) -> dict[str, Any]:
    """The periodic review summary of ``[since, until)``; see the module doc."""
    total = 0
    by_user: dict[str, Counter[str]] = defaultdict(Counter)
    by_action: Counter[str] = Counter()
    restricted_reads: dict[str, Counter[str]] = defaultdict(Counter)  # user -> aip -> n
    denials: Counter[tuple[str, str]] = Counter()  # (user or '-', client or '-')
    failed_logins: Counter[tuple[str, str]] = Counter()
    off: list[dict[str, Any]] = []
    downloads_per_day: Counter[tuple[str, str]] = Counter()
    changes: list[dict[str, Any]] = []
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    with repo.catalog.session() as s:
        for e in aq.access_entries(s, since, until):
            total += 1
            at: dt.datetime = e["at"]
            first = first or at
            last = at
            user = e["user_name"] or "-"
            action = e["action"]
            by_user[user][action] += 1
            by_action[action] += 1
            if e["restricted"] and action in _READS and e["status"] < 400:
                restricted_reads[user][e["aip_id"] or "-"] += 1
            if action == "denied":
                denials[(user, e["client"] or "-")] += 1
            if action == "login_failed":
                failed_logins[(user, e["client"] or "-")] += 1
            if action in ("download", "export") and e["status"] < 400:
                downloads_per_day[(user, at.date().isoformat())] += 1
            if action in CHANGES:
                changes.append(_brief(e))
            if e["user_name"] and off_hours(at) and action not in ("denied", "login_failed"):
                off.append(_brief(e))
    many = [
        {"user": u, "day": day, "downloads": n}
        for (u, day), n in sorted(downloads_per_day.items())
        if n > MANY_DOWNLOADS
    ]
    return {
        "since": since.isoformat(),
        "until": until.isoformat() if until is not None else None,
        "entries": total,
        "first": first.isoformat() if first else None,
        "last": last.isoformat() if last else None,
        "by_user": {u: dict(sorted(c.items())) for u, c in sorted(by_user.items())},
        "by_action": dict(sorted(by_action.items())),
        "restricted_reads": {
            u: {"total": sum(c.values()), "aips": dict(sorted(c.items()))}
            for u, c in sorted(restricted_reads.items())
        },
        "denials": [{"user": u, "client": c, "count": n} for (u, c), n in sorted(denials.items())],
        "failed_logins": [
            {"user": u, "client": c, "count": n} for (u, c), n in sorted(failed_logins.items())
        ],
        "changes": changes,
        "unusual": {
            "off_hours": off,
            "many_downloads": many,
            "office_hours_utc": [OFFICE_START, OFFICE_END],
            "many_downloads_threshold": MANY_DOWNLOADS,
        },
    }


def _brief(e: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "at": e["at"].isoformat(),
        "user": e["user_name"],
        "action": e["action"],
        "aip": e["aip_id"],
        "status": e["status"],
        "client": e["client"],
    }
