"""Replication, health and controlled-deletion commands."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table
from rich.text import Text

from preservation.cli.aips import aip_group
from preservation.cli.app import (
    cli,
    console,
    emit,
    fail,
    human_bytes,
    json_option,
    show_json,
    state,
)


# ---------------------------------------------------------------- replication
@cli.command()
@click.option("--pending", is_flag=True, help="Work through the whole replication queue.")
@click.option("--aip", "aip_id", default=None, help="Only the queued copies of this AIP.")
@click.option("--store", default=None, help="Only copies onto this replica store.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Objects copied at once (default: policy.replication_workers).",
)
@json_option
def replicate(pending: bool, aip_id: str | None, store: str | None, workers: int | None) -> None:
    """Replicate queued AIP copies to the replica stores, verifying every object.

    Exit status 0 when every copy taken is verified, else the status of the first
    error (5 for a store that is down: the copies stay queued for the next run).
    """
    from preservation.progress import reporter
    from preservation.storage.replicate import replicate_pending

    if not pending and aip_id is None:
        raise click.UsageError("give --pending (the whole queue) or --aip ID")
    repo = state().repository()
    with reporter(enabled=not state().json) as progress:
        report = replicate_pending(
            repo, aip=aip_id, store=store, workers=workers, progress=progress
        )
    data = report.to_dict()

    def human() -> None:
        if not report.results:
            console.print("nothing to replicate")
            return
        t = Table("aip", "v", "store", "outcome", "objects", "copied", "bytes", "error")
        for r in report.results:
            colour = {"verified": "green", "skipped": "yellow"}.get(r.outcome, "red")
            t.add_row(
                r.aip,
                str(r.version),
                r.store,
                Text(r.outcome, style=colour),
                str(r.objects),
                str(r.copied),
                human_bytes(r.bytes_copied),
                f"{r.error.code}: {r.error.message}" if r.error else r.note,
            )
        console.print(t)
        c = data["copies"]
        console.print(
            f"{c['verified']} verified, {c['waiting']} waiting, {c['failed']} failed,"
            f" {c['skipped']} skipped; {human_bytes(report.bytes_copied)} copied"
        )

    emit(data, human)
    if report.exit_status:
        fail(report.exit_status)


# ---------------------------------------------------------------- health
@cli.command()
@click.option("--all", "include_all", is_flag=True, help="List every AIP, not only those lagging.")
@click.option("--limit", type=click.IntRange(1, 10_000_000), default=1000, show_default=True)
@json_option
def health(include_all: bool, limit: int) -> None:
    """Copies per store, site and AIP; NDSA storage level.

    Exit status 0: policy met; 1: some AIP below policy; 2: a store is unreachable.
    """
    from preservation.storage.health import health as health_report

    repo = state().repository()
    report = health_report(repo, include_all=include_all, limit=limit)
    data = report.to_dict()
    emit(data, lambda: _print_health(data))
    if report.exit_status:
        fail(report.exit_status)


def _print_health(data: dict[str, Any]) -> None:
    t = Table(
        "store", "site", "reachable", "objects", "bytes", "pending", "failed", "stale",
        "oldest unverified", "last full audit", title="Stores",
    )  # fmt: skip
    for s in data["stores"]:
        old = s["oldest_unverified"]
        t.add_row(
            s["name"],
            s["site"],
            Text("yes") if s["reachable"] else Text(f"NO {s['error'] or ''}", style="red"),
            str(s["objects"]),
            human_bytes(s["bytes"]),
            str(s["copies_pending"]),
            str(s["copies_failed"]),
            str(s["stale_copies"]),
            f"{old['aip']} v{old['version']} since {old['since'][:19]}" if old else "",
            (s["last_full_audit"] or "never")[:19],
        )
    console.print(t)
    totals = data["aip_totals"]
    console.print(
        f"AIPs: {totals['active']} active, {totals['meeting_policy']} meet the policy"
        f" ({data['policy']['copies']} copies on {data['policy']['sites']} sites),"
        f" {totals['below_policy']} below it"
    )
    if data["aips"]:
        a = Table("aip", "v", "copies", "sites", "stale", "missing", "queued", "level")
        for aip in data["aips"]:
            colour = "green" if aip["meets_policy"] else "red"
            a.add_row(
                aip["id"],
                str(aip["version"]),
                Text(str(aip["verified_copies"]), style=colour),
                ", ".join(aip["sites"]),
                ", ".join(aip["stale_copies"]),
                ", ".join(aip["missing_copies"]),
                ", ".join(aip["queued_copies"]),
                str(aip["ndsa_level"]),
            )
        console.print(a)
    n = data["ndsa"]
    line = f"NDSA storage level {n['level']} (the configured stores allow {n['ceiling']})"
    if n["blocked_by_configuration"] and n["ceiling_needs"]:
        line += f"; {n['ceiling_needs']}"
    elif n["blocking_total"]:
        line += f"; {n['blocking_total']} AIP(s) keep it from level {n['next_level']}"
    console.print(line)
    status = data["status"]
    colour = "green" if status == "ok" else "red"
    console.print(Text.assemble("status: ", (status, colour)))


# ---------------------------------------------------------------- deletion
@aip_group.command("delete-request")
@click.argument("aip_id")
@click.option("--reason", required=True, help="Why the AIP is to be deleted.")
@click.option("--user", required=True, help="Who requests it.")
@json_option
def aip_delete_request(aip_id: str, reason: str, user: str) -> None:
    """Request the deletion of an AIP; a different person must approve it."""
    from preservation.access.accesslog import cli_change
    from preservation.storage.deletion import request_deletion

    repo = state().repository()
    with cli_change(repo, "delete_request", user=user, aip_id=aip_id) as logged:
        data = request_deletion(repo, aip_id, reason=reason, user=user)
        logged["request"] = data["id"]
    emit(
        data,
        lambda: console.print(
            f"deletion request [bold]{data['id']}[/bold] for AIP {aip_id} recorded;"
            f" approve it as another user: preservation aip delete-approve {data['id']}"
            " --user NAME"
        ),
    )


@aip_group.command("delete-approve")
@click.argument("request_id")
@click.option("--user", required=True, help="Who approves it (not the requester).")
@json_option
def aip_delete_approve(request_id: str, user: str) -> None:
    """Approve a deletion request and delete the AIP from every store."""
    from preservation.access.accesslog import cli_change
    from preservation.storage.deletion import approve_deletion

    repo = state().repository()
    with cli_change(repo, "delete_approve", user=user, detail={"request": request_id}) as logged:
        result = approve_deletion(repo, request_id, user=user)
        data = result.to_dict()
        logged["aip"] = data.get("aip")
    emit(data, lambda: show_json(data))
