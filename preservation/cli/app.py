"""The command-line application: the group, its shared options and error handling.

Commands live beside this module, one module per area (``repository``, ``ingest``,
``aips``, ...); each command calls one service function.

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

from preservation import __version__
from preservation.errors import ConfigError, PreservationError
from preservation.logs import setup_logging

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("preservation.cli")
# Markup is off: file names, titles and messages come from users and may contain
# brackets; styles are given as arguments (Text, style=...) instead.
console = Console(markup=False, highlight=False)
err_console = Console(stderr=True, markup=False, highlight=False)


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


def show_json(data: Any) -> None:
    """Pretty JSON for people (the human rendering of nested data)."""
    console.print_json(json.dumps(data, ensure_ascii=False, default=str))


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


def human_bytes(n: int) -> str:
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
