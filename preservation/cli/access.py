"""Access commands: users and tokens, the access-log review, metadata corrections,
and the web server."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from preservation.cli.aips import aip_group
from preservation.cli.app import cli, console, emit, json_option, state

ROLES = ("admin", "archivist", "auditor", "reader")


def _operator() -> str:
    """Who runs the command (recorded in the access log)."""
    from preservation.access.accesslog import os_user

    return os_user()


def _log(repo: Any, action: str, **fields: Any) -> None:
    from preservation.access import accesslog

    accesslog.record(
        repo,
        action=action,
        status=0,
        user_name=_operator(),
        client=accesslog.cli_client(),
        **fields,
    )


# ---------------------------------------------------------------- users
@cli.group("users")
def users_group() -> None:
    """Users of the web interface and API, and their tokens."""


def _show_token(info: Any, token: str, verb: str) -> None:
    data = {**info.to_dict(), "token": token}

    def human() -> None:
        console.print(f"{verb} {info.name} ({info.role}). Token (shown once, store it now):")
        console.print(token)

    emit(data, human)


@users_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@json_option
def users_add(name: str, role: str) -> None:
    """Create a user; prints its API token once (only its hash is kept)."""
    from preservation.access.auth import add_user

    repo = state().repository()
    info, token = add_user(repo, name, role)
    _log(repo, "user_added", detail={"user": name, "role": role})
    _show_token(info, token, "Added")


@users_group.command("list")
@json_option
def users_list() -> None:
    """Users, their roles, and whether they are disabled."""
    from preservation.access.auth import list_users

    rows = [u.to_dict() for u in list_users(state().repository())]

    def human() -> None:
        t = Table("name", "role", "disabled", "created", "token issued")
        for r in rows:
            t.add_row(
                r["name"],
                r["role"],
                "yes" if r["disabled"] else "",
                r["created_at"][:19],
                (r["token_created_at"] or "")[:19],
            )
        console.print(t)

    emit(rows, human)


@users_group.command("token")
@click.argument("name")
@json_option
def users_token(name: str) -> None:
    """Issue a new token for NAME (shown once); the old token and sessions end."""
    from preservation.access.auth import rotate_token

    repo = state().repository()
    info, token = rotate_token(repo, name)
    _log(repo, "token_rotated", detail={"user": name})
    _show_token(info, token, "New token for")


@users_group.command("disable")
@click.argument("name")
@click.option("--enable", is_flag=True, help="Enable the user again instead.")
@json_option
def users_disable(name: str, enable: bool) -> None:
    """Disable NAME (its token and sessions stop working), or enable it again."""
    from preservation.access.auth import disable_user

    repo = state().repository()
    info = disable_user(repo, name, disabled=not enable)
    _log(repo, "user_disabled", detail={"user": name, "disabled": not enable})
    data = info.to_dict()
    emit(data, lambda: console.print(f"{name}: {'disabled' if info.disabled else 'enabled'}"))


# ---------------------------------------------------------------- access log
def _when(value: str | None, option: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        if len(value) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), tzinfo=dt.UTC)
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD) or an ISO date-time", param_hint=option
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


@cli.group("access-log")
def access_log_group() -> None:
    """The access log (who read restricted records, who changed what)."""


@access_log_group.command("review")
@click.option("--since", required=True, help="Start (YYYY-MM-DD or ISO date-time, UTC).")
@click.option("--until", default=None, help="End, exclusive (default: now).")
@json_option
def access_log_review(since: str, until: str | None) -> None:
    """The periodic review summary (NDSA control level 4): activity by user and
    action, restricted reads, denials and failed sign-ins, unusual activity."""
    from preservation.access.accesslog import review

    start = _when(since, "--since")
    assert start is not None
    data = review(state().repository(), start, _when(until, "--until"))

    def human() -> None:
        console.print(
            f"access log {data['since'][:19]} .. {(data['until'] or 'now')[:19]}:"
            f" {data['entries']} entries"
        )
        t = Table("user", "actions", title="By user")
        for user, actions in data["by_user"].items():
            t.add_row(user, ", ".join(f"{a} {n}" for a, n in actions.items()))
        console.print(t)
        r = Table("user", "restricted reads", "AIPs", title="Reads of restricted records")
        for user, v in data["restricted_reads"].items():
            r.add_row(user, str(v["total"]), str(len(v["aips"])))
        console.print(r)
        d = Table("kind", "user", "client", "count", title="Denials and failed sign-ins")
        for row in data["denials"]:
            d.add_row("denied", row["user"], row["client"], str(row["count"]))
        for row in data["failed_logins"]:
            d.add_row("failed sign-in", row["user"], row["client"], str(row["count"]))
        console.print(d)
        unusual = data["unusual"]
        console.print(
            f"changes: {len(data['changes'])}; off-hours actions: {len(unusual['off_hours'])};"
            f" users over {unusual['many_downloads_threshold']} downloads a day:"
            f" {len(unusual['many_downloads'])}"
        )
        for row in unusual["many_downloads"]:
            console.print(f"  {row['user']} {row['day']}: {row['downloads']} downloads")

    emit(data, human)


# ---------------------------------------------------------------- corrections
@aip_group.command("correct")
@click.argument("aip_id")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    required=True,
    metavar="KEY=VALUE",
    help="A descriptive field to change, e.g. --set open_status=开放 (repeatable).",
)
@click.option("--note", default=None, help="Why (kept with the new version).")
@click.option("--user", default=None, help="Who corrects (default: the login name).")
@json_option
def aip_correct(
    aip_id: str, assignments: tuple[str, ...], note: str | None, user: str | None
) -> None:
    """Correct descriptive metadata: a new AIP version with metadata only and a
    PREMIS metadata modification event."""
    from preservation.access.accesslog import cli_client
    from preservation.access.corrections import correct_metadata, parse_assignments
    from preservation.access.principal import Principal, Role

    repo = state().repository()
    principal = Principal(name=user or _operator(), role=Role.ARCHIVIST)
    result = correct_metadata(
        repo,
        aip_id,
        parse_assignments(assignments),
        principal=principal,
        note=note,
        client=cli_client(),
    )
    data = result.to_dict()

    def human() -> None:
        console.print(f"AIP {aip_id}: version {result.version} (public: {result.public})")
        for key, change in result.changed.items():
            console.print(f"  {key}: {change['from'] or '(none)'} -> {change['to'] or '(none)'}")

    emit(data, human)


# ---------------------------------------------------------------- server
@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--secure-cookies",
    is_flag=True,
    help="Mark session cookies Secure even on http (behind a TLS proxy).",
)
@click.option(
    "--max-upload",
    type=click.IntRange(1),
    default=None,
    help="Largest ingest upload in bytes (default 4 GiB).",
)
@click.option(
    "--forwarded-allow-ips",
    default=None,
    help="Proxies whose X-Forwarded-For/-Proto headers are trusted (uvicorn's option).",
)
def serve(
    host: str,
    port: int,
    secure_cookies: bool,
    max_upload: int | None,
    forwarded_allow_ips: str | None,
) -> None:
    """Run the web dashboard and REST API with uvicorn."""
    import uvicorn

    from preservation.access.app import DEFAULT_MAX_UPLOAD_BYTES, create_app

    repo = state().repository()
    repo.catalog.check_revision()
    app = create_app(
        repo,
        secure_cookies=secure_cookies,
        max_upload_bytes=max_upload or DEFAULT_MAX_UPLOAD_BYTES,
    )
    console.print(f"serving {Path(repo.root)} on http://{host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level="info",
    )

