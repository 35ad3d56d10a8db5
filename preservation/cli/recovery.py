"""Export, catalogue rebuild and store resync commands."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from preservation.cli.app import cli, console, emit, err_console, fail, human_bytes, json_option
from preservation.cli.app import state as cli_state
from preservation.cli.repository import stores_group

ROLES = ("admin", "archivist", "auditor", "reader")


# ---------------------------------------------------------------- export
@cli.command("export")
@click.argument("aip_id")
@click.option("--version", "version", type=click.IntRange(1), help="Version (default: current).")
@click.option("--from", "store", metavar="STORE", help="Read from this store only.")
@click.option("--to", "to_dir", type=click.Path(path_type=Path), help="Write a folder.")
@click.option("--zip", "zip_file", type=click.Path(path_type=Path), help="Write a zip file.")
@click.option("--tar", "tar_file", type=click.Path(path_type=Path), help="Write a tar file.")
@click.option("--dip", is_flag=True, help="An access package instead of the bag.")
@click.option(
    "--as-role",
    type=click.Choice(ROLES),
    help="Export as a user of this role would (reader: restricted files are left out"
    " of a DIP). Default: the local operator, with full rights.",
)
@json_option
def export_cmd(
    aip_id: str,
    version: int | None,
    store: str | None,
    to_dir: Path | None,
    zip_file: Path | None,
    tar_file: Path | None,
    dip: bool,
    as_role: str | None,
) -> None:
    """Write AIP_ID as a complete, valid bag (or, with --dip, an access package),
    every file verified against the catalogue while it is written."""
    from preservation.access.principal import Principal, Role

    given: tuple[tuple[Path | None, Literal["dir", "zip", "tar"]], ...] = (
        (to_dir, "dir"),
        (zip_file, "zip"),
        (tar_file, "tar"),
    )
    outputs = [(p, f) for p, f in given if p is not None]
    if len(outputs) != 1:
        raise click.UsageError("give exactly one of --to DIR, --zip FILE, --tar FILE")
    target, fmt = outputs[0]
    principal = Principal(f"cli:{as_role}", Role(as_role)) if as_role else None
    repo = cli_state().repository()
    if dip:
        from preservation.access.dip import export_dip

        result = export_dip(
            repo, aip_id, target, fmt=fmt, version=version, store=store, principal=principal
        )
    else:
        from preservation.access.export import export_bag

        result = export_bag(
            repo, aip_id, target, fmt=fmt, version=version, store=store, principal=principal
        )
    data = result.to_dict()

    def human() -> None:
        what = "access package" if dip else "bag"
        console.print(
            f"{what} of {aip_id} v{result.version} written to {result.output}:"
            f" {result.files} files verified ({human_bytes(result.bytes)})"
            f" from {', '.join(result.stores)}"
        )
        if result.skipped:
            console.print(f"left out (restricted): {len(result.skipped)} files")

    emit(data, human)


# ---------------------------------------------------------------- catalogue rebuild
@cli.group("catalog")
def catalog_group() -> None:
    """The catalogue as a whole."""


@catalog_group.command("rebuild")
@click.option("--from", "source", required=True, metavar="STORE", help="The store to read.")
@click.option(
    "--into",
    metavar="URL",
    help="Catalogue database to write (default: the repository's own).",
)
@click.option("--force", is_flag=True, help="Replace the contents of a non-empty catalogue.")
@json_option
def catalog_rebuild(source: str, into: str | None, force: bool) -> None:
    """Rebuild the catalogue from one store alone (exit 1 when something could not
    be reconstructed or the event chain does not verify)."""
    from preservation.access.accesslog import cli_change
    from preservation.recovery.rebuild import rebuild_catalog

    repo = cli_state().repository()
    # logged in the repository's own catalogue (the rebuilt one when --into is not given)
    asked = {"store": source, "into": into, "force": force}
    with cli_change(repo, "rebuild", detail=asked) as logged:
        report = rebuild_catalog(repo, source=source, into=into, force=force)
        logged.update(aips=report.aips, problems=len(report.problems), chain_ok=report.chain_ok)

    def human() -> None:
        console.print(
            f"rebuilt {report.into} from {report.store}: {report.aips} AIPs"
            f" ({report.deleted_aips} deleted), {report.versions} versions, {report.files}"
            f" files, {report.copies} copies, {report.events} events; event chain"
            f" {'verifies' if report.chain_ok else 'DOES NOT VERIFY'}"
        )
        for p in report.problems:
            err_console.print(f"problem: {p}")

    emit(report.to_dict(), human)
    if report.problems or not report.chain_ok:
        fail(1)


# ---------------------------------------------------------------- store resync
@stores_group.command("resync")
@click.option("--from", "source", required=True, metavar="STORE", help="The good store.")
@click.option("--to", "target", required=True, metavar="STORE", help="The store to restore.")
@click.option("--workers", type=click.IntRange(1, 256), help="Objects copied at once.")
@json_option
def stores_resync(source: str, target: str, workers: int | None) -> None:
    """Restore a lost or emptied store from a good one, verified; a rerun resumes an
    interrupted resync (exit 1 when a copy failed)."""
    from preservation.access.accesslog import cli_change
    from preservation.progress import reporter
    from preservation.storage.resync import resync_store

    repo = cli_state().repository()
    with (
        cli_change(repo, "resync", detail={"from": source, "to": target}) as logged,
        reporter(enabled=not cli_state().json) as progress,
    ):
        report = resync_store(
            repo, source=source, target=target, workers=workers, progress=progress
        )
        logged.update(ok=report.ok, objects_copied=report.objects_copied)

    def human() -> None:
        console.print(
            f"{target} resynced from {source}{' (resumed)' if report.resumed else ''}:"
            f" {report.copies} copies, {report.verified} verified now, {report.already}"
            f" before; {report.objects_copied} objects copied"
            f" ({human_bytes(report.bytes_copied)}), {report.objects_present} already"
            f" there; {report.event_documents} event documents"
        )
        for f in report.failed:
            err_console.print(f"failed: {f}")

    emit(report.to_dict(), human)
    if not report.ok:
        fail(1)


# ``preservation store resync`` (the spelling) is the same group as ``stores``.
cli.add_command(stores_group, name="store")
