"""AIP and event-log commands."""

from __future__ import annotations

import os

import click
from rich.table import Table

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


# ---------------------------------------------------------------- AIPs and events
@cli.group("aip")
def aip_group() -> None:
    """Archival information packages."""


@aip_group.command("list")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@json_option
def aip_list(limit: int) -> None:
    """The most recent AIPs: id, reference code, title, version, files, bytes."""
    from preservation.catalog.queries import list_aips

    repo = state().repository()
    with repo.catalog.session() as s:
        rows = list_aips(s, limit=limit)

    def human() -> None:
        t = Table("aip", "reference code", "title", "v", "files", "bytes", "created")
        for r in rows:
            t.add_row(
                r["id"],
                r["reference_code"] or "",
                r["title"] or "",
                str(r["version"]),
                str(r["files"]),
                human_bytes(r["bytes"] or 0),
                str(r["created_at"])[:19],
            )
        console.print(t)

    emit(rows, human)


@aip_group.command("show")
@click.argument("aip_id")
@json_option
def aip_show(aip_id: str) -> None:
    """Versions, files, copies and events of one AIP."""
    from preservation.catalog.queries import aip_summary

    repo = state().repository()
    with repo.catalog.session() as s:
        data = aip_summary(s, aip_id)
    emit(data, lambda: show_json(data))


@cli.group("events")
def events_group() -> None:
    """The tamper-evident event log."""


@events_group.command("verify")
@json_option
def events_verify() -> None:
    """Recompute the hash chain of the event log; report the first broken link."""
    from preservation.catalog.events import verify_chain

    repo = state().repository()
    with repo.catalog.session() as s:
        report = verify_chain(s, processes=os.cpu_count() or 1)
    data = report.to_dict()
    emit(data, lambda: show_json(data))
    if not report.ok:
        fail(4)
