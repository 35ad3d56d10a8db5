"""Ingest and bag commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from preservation.cli.app import cli, console, emit, fail, json_option, state


# ---------------------------------------------------------------- bags
@cli.group("bag")
def bag_group() -> None:
    """BagIt bags."""


@bag_group.command("validate")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--fast", is_flag=True, help="Payload-Oxum only, no digests.")
@click.option("--completeness-only", is_flag=True, help="Every file present; no digests.")
@click.option("--processes", type=click.IntRange(1, 64), default=2, show_default=True)
@json_option
def bag_validate(path: Path, fast: bool, completeness_only: bool, processes: int) -> None:
    """Validate any BagIt bag and list every problem with its file."""
    from preservation.bags.validate import validate_bag

    report = validate_bag(path, fast=fast, completeness_only=completeness_only, processes=processes)
    data = report.to_dict()

    def human() -> None:
        for f in report.findings:
            colour = "red" if f.severity == "error" else "yellow"
            where = f" [{f.file}]" if f.file else ""
            console.print(Text.assemble((f.code, colour), f" {f.severity}{where}: {f.message}"))
        verdict = ("valid", "green") if report.valid else ("INVALID", "red")
        console.print(Text.assemble(f"{path}: ", verdict))

    emit(data, human)
    if not report.valid:
        fail(3)


# ---------------------------------------------------------------- ingest
@cli.command()
@click.argument("path", type=click.Path(path_type=Path), required=False)
@click.option("--metadata", "sheet", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--register", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Run every check; write nothing to any store.")
@click.option("--allow-duplicate", is_flag=True, help="Ingest a transfer seen before.")
@click.option("--submitter", default=None, help="Person submitting (default: $USER).")
@click.option("--reference-code", default=None, help="Reference code (档号) of the transfer.")
@click.option("--cleanup", is_flag=True, help="Remove leftovers of interrupted ingests.")
@click.option("--user", default=None, help="Who ingests, for the access log (default: login name).")
@click.option(
    "--replicate/--no-replicate",
    default=True,
    show_default=True,
    help="Replicate the new AIP to the replica stores at once (else it waits in the queue).",
)
@json_option
def ingest(
    path: Path | None,
    sheet: Path | None,
    register: Path | None,
    dry_run: bool,
    allow_duplicate: bool,
    submitter: str | None,
    reference_code: str | None,
    cleanup: bool,
    user: str | None,
    replicate: bool,
) -> None:
    """Ingest a transfer (folder, zip, tar, BagIt bag) as an AIP into the primary store."""
    from preservation.access.accesslog import cli_change
    from preservation.ingest.pipeline import (
        IngestRequest,
        cleanup_interrupted,
        ingest_and_replicate,
        run_ingest,
    )
    from preservation.progress import reporter

    repo = state().repository()
    if cleanup:
        with cli_change(repo, "ingest_cleanup", user=user) as logged:
            cleaned = cleanup_interrupted(repo)
            logged["jobs"] = [c["job"] for c in cleaned]
        emit(cleaned, lambda: console.print(f"removed leftovers of {len(cleaned)} ingest(s)"))
        if path is None:
            return
    if path is None:
        raise click.UsageError("PATH is required (unless --cleanup is given alone)")
    request = IngestRequest(
        source=path,
        sheet=sheet,
        register=register,
        dry_run=dry_run,
        allow_duplicate=allow_duplicate,
        submitter=submitter or user,
        reference_code=reference_code,
    )
    detail = {"source": str(path), "dry_run": dry_run}
    with (
        cli_change(repo, "ingest", user=user, detail=detail) as logged,
        reporter(enabled=not state().json) as progress,
    ):
        run = ingest_and_replicate if replicate and not dry_run else run_ingest
        receipt = run(repo, request, progress=progress)
        logged["aip"] = receipt.aip
    emit(receipt.to_dict(), lambda: _print_receipt(receipt))


def _print_receipt(receipt: Any) -> None:
    d = receipt.to_dict()
    title = "Dry run: nothing was written" if d.get("dry_run") else "Ingested"
    t = Table(title=title, show_header=False)
    for key in (
        "aip",
        "reference_code",
        "transfer",
        "items",
        "volumes",
        "files",
        "bytes",
        "store",
        "report",
    ):
        if d.get(key) not in (None, ""):
            t.add_row(key, str(d[key]))
    summary = d.get("checks", {})
    t.add_row("checks", ", ".join(f"{k}: {v}" for k, v in summary.items()))
    rep = d.get("replication")
    if rep is not None:
        text = f"{rep['verified']} verified, {rep['waiting']} waiting, {rep['failed']} failed"
        if rep["stores_down"]:
            text += f" (down: {', '.join(rep['stores_down'])}; run 'replicate --pending' later)"
        t.add_row("replication", text)
    console.print(t)
