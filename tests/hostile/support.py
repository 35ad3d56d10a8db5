"""The real entry points as a user reaches them: the CLI in-process, and a fresh repository."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from preservation.catalog.models import Aip
from preservation.cli import cli
from preservation.errors import PreservationError
from preservation.repository import Repository, init_repository, open_repository


@dataclass
class Outcome:
    status: int
    stdout: str
    error: PreservationError | None

    @property
    def data(self) -> Any:
        return json.loads(self.stdout)


def run_cli(*args: str) -> Outcome:
    """Run ``preservation ARGS`` in-process; the exit status is what ``main`` would give.

    Anything other than a PreservationError or a click exit (a crash) fails the test.
    """
    result = CliRunner().invoke(cli, list(args), standalone_mode=False)
    exc = result.exception
    if exc is None:
        return Outcome(0, result.stdout, None)
    if isinstance(exc, PreservationError):
        return Outcome(exc.exit_status, result.stdout, exc)
    if isinstance(exc, SystemExit):
        return Outcome(int(exc.code or 0), result.stdout, None)
    raise AssertionError(f"preservation {' '.join(args)} crashed: {exc!r}") from exc


def new_repository(root: Path, **settings: object) -> Repository:
    """A repository on the embedded default; ``settings`` go into ``[ingest]``."""
    init_repository(root)
    if settings:
        cfg = root / "preservation.toml"
        lines = "".join(f"\n{k} = {v!r}" for k, v in settings.items())
        text = cfg.read_text(encoding="utf-8")
        text = text.replace('virus_scanner = "none"', 'virus_scanner = "none"' + lines, 1)
        cfg.write_text(text, encoding="utf-8")
    return open_repository(root)


def nothing_stored(repo: Repository) -> bool:
    """True when no AIP reached the primary store or the catalogue."""
    with repo.catalog.session() as s:
        aips = s.query(Aip).count()
    return aips == 0 and not [i for i in repo.primary.list("") if not i.key.startswith(".staging/")]


def finding_files(outcome: Outcome) -> dict[str, set[str]]:
    """code -> files named by the findings of an ingest; '<code> message' -> messages."""
    found: dict[str, set[str]] = {}
    err = outcome.error
    if err is not None:
        report = getattr(err, "report", None)
        items = report.findings if report is not None else getattr(err, "findings", [])
        for f in items:
            found.setdefault(f.code, set()).add(str(f.file))
            found.setdefault(f"{f.code} message", set()).add(f.message)
    else:
        for f in outcome.data.get("findings", []):
            found.setdefault(f["code"], set()).add(str(f.get("file")))
            found.setdefault(f"{f['code']} message", set()).add(f["message"])
    return found


def remove_nested(root: Path, name: str = "d") -> None:
    """Remove a ``name/name/...`` chain of any depth under ``root`` (shutil.rmtree
    recurses and fails): down with relative opens to the bottom, then up through '..'
    removing one level at a time."""
    if not (root / name).is_dir():
        return
    fd = os.open(root, os.O_RDONLY)
    depth = 0
    try:
        while True:  # down
            try:
                nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            except FileNotFoundError:
                break
            os.close(fd)
            fd, depth = nxt, depth + 1
        for _ in range(depth):  # up
            for entry in os.listdir(fd):  # noqa: PTH208 - a descriptor, beyond PATH_MAX
                os.unlink(entry, dir_fd=fd)
            parent = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)
