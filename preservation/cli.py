"""The command line: click commands only; each calls one service function.

Errors from the project's tree are printed as ``CODE: message`` on stderr and the
process exits with the error's exit status. Every command takes ``--json``.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from preservation import __version__
from preservation.errors import ConfigError, PreservationError
from preservation.logs import setup_logging

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("preservation.cli")
console = Console()
err_console = Console(stderr=True)


class State:
    """Options of the group, shared with every command; the last one made is kept so
    that ``main`` can print errors in the requested form after click has returned."""

    last: State | None = None

    def __init__(self, repo: Path | None, json_out: bool) -> None:
        self.repo_path = repo
        self.json = json_out
        State.last = self

    def repository(self) -> Any:
        from preservation.repository import open_repository

        return open_repository(self.repo_path)


def json_option(f: F) -> F:
    """Add ``--json`` to a command (the group-level flag works too)."""

    @click.option("--json", "json_out", is_flag=True, help="Machine-readable JSON output.")
    @functools.wraps(f)
    def wrapper(*args: Any, json_out: bool = False, **kwargs: Any) -> Any:
        state = click.get_current_context().find_object(State)
        if state is not None and json_out:
            state.json = True
        return f(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def state() -> State:
    s = click.get_current_context().find_object(State)
    assert s is not None
    return s


def emit(data: Any, human: Callable[[], None] | None = None) -> None:
    """Print ``data`` as JSON with --json, else call the human renderer."""
    if state().json or human is None:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        human()


def fail(exit_status: int) -> None:
    sys.exit(exit_status)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="preservation")
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    help="Repository folder (default: $PRESERVATION_HOME, then the current folder).",
)
@click.option("--json", "json_out", is_flag=True, help="Machine-readable JSON output.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="WARNING",
)
@click.pass_context
def cli(
    ctx: click.Context, repo: Path | None, json_out: bool, log_format: str, log_level: str
) -> None:
    """preservation: a long-term digital preservation repository."""
    setup_logging(log_level, log_format)
    ctx.obj = State(repo, json_out)


# ---------------------------------------------------------------- repository
@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--organization", default="Municipal Archive", show_default=True)
@json_option
def init(directory: Path, organization: str) -> None:
    """Create a repository in DIRECTORY (local stores + SQLite catalogue)."""
    from preservation.repository import init_repository

    repo = init_repository(directory, organization)
    data = {
        "root": str(repo.root),
        "config": str(repo.config.path),
        "catalog": repo.config.catalog_url,
        "stores": {n: s.site for n, s in repo.config.settings.stores.items()},
    }
    emit(data, lambda: console.print(f"Initialised repository in [bold]{repo.root}[/bold]"))


@cli.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@json_option
def config_show() -> None:
    """Print the effective configuration, secrets masked."""
    repo = state().repository()
    data = repo.config.effective(mask_secrets=True)
    emit(data, lambda: console.print_json(json.dumps(data, ensure_ascii=False)))


@cli.group("db")
def db_group() -> None:
    """Catalogue database."""


@db_group.command("upgrade")
@json_option
def db_upgrade() -> None:
    """Apply catalogue migrations (init does this too)."""
    from preservation.repository import upgrade_catalog

    repo = state().repository()
    rev = upgrade_catalog(repo)
    emit({"revision": rev}, lambda: console.print(f"catalogue at revision {rev}"))


# ---------------------------------------------------------------- stores
@cli.group("stores")
def stores_group() -> None:
    """Storage locations."""


@stores_group.command("check")
@click.option("--store", "names", multiple=True, help="Only this store (repeatable).")
@json_option
def stores_check(names: tuple[str, ...]) -> None:
    """Check every store: reachable, writable, versioning, lock, encryption, space."""
    from preservation.storage.check import check_stores

    repo = state().repository()
    results = check_stores(repo.config, list(names) or None)
    data = {"ok": all(r.ok for r in results), "stores": [r.to_dict() for r in results]}

    def human() -> None:
        t = Table("store", "ok", "reachable", "writable", "kind", "free", "problems")
        for r in results:
            caps = r.capabilities
            free = caps.free_bytes if caps else None
            t.add_row(
                r.store,
                "yes" if r.ok else "[red]NO[/red]",
                str(r.reachable),
                str(r.writable),
                caps.kind if caps else "?",
                _human_bytes(free) if free is not None else "",
                "; ".join(r.problems),
            )
        console.print(t)

    emit(data, human)
    if not data["ok"]:
        fail(1)


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

    report = validate_bag(
        path, fast=fast, completeness_only=completeness_only, processes=processes
    )
    data = report.to_dict()

    def human() -> None:
        for f in report.findings:
            colour = "red" if f.severity == "error" else "yellow"
            where = f" [{f.file}]" if f.file else ""
            console.print(f"[{colour}]{f.code}[/{colour}] {f.severity}{where}: {f.message}")
        console.print(f"{path}: {'valid' if report.valid else '[red]INVALID[/red]'}")

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
) -> None:
    """Ingest a transfer (folder, zip, tar, BagIt bag) as an AIP into the primary store."""
    from preservation.ingest.pipeline import IngestRequest, cleanup_interrupted, run_ingest
    from preservation.progress import reporter

    repo = state().repository()
    if cleanup:
        cleaned = cleanup_interrupted(repo)
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
        submitter=submitter,
        reference_code=reference_code,
    )
    with reporter(enabled=not state().json) as progress:
        receipt = run_ingest(repo, request, progress=progress)
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
    console.print(t)


# ---------------------------------------------------------------- AIPs and events
@cli.group("aip")
def aip_group() -> None:
    """Archival information packages."""


@aip_group.command("show")
@click.argument("aip_id")
@json_option
def aip_show(aip_id: str) -> None:
    """Versions, files, copies and events of one AIP."""
    from preservation.catalog.queries import aip_summary

    repo = state().repository()
    with repo.catalog.session() as s:
        data = aip_summary(s, aip_id)
    emit(data, lambda: console.print_json(json.dumps(data, ensure_ascii=False, default=str)))


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
        report = verify_chain(s)
    data = report.to_dict()
    emit(data, lambda: console.print_json(json.dumps(data, default=str)))
    if not report.ok:
        fail(4)


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} PiB"


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except PreservationError as e:
        _print_error(e)
        sys.exit(e.exit_status)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


def _print_error(e: PreservationError) -> None:
    as_json = State.last is not None and State.last.json
    if isinstance(e, ConfigError) and e.problems:
        lines = [f"{e.code}: {p}" for p in e.problems]
    else:
        lines = [f"{e.code}: {e.message}"]
    for line in lines:
        click.echo(line, err=True)
    report = getattr(e, "report", None)
    if as_json and report is not None:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2, default=str))
