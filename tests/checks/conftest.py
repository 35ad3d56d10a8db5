"""A repository with three replicated AIPs (scanned pages, text files), for the
periodic check and the restore drill."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from preservation.ingest.pipeline import IngestRequest, ingest_and_replicate
from preservation.repository import Repository, init_repository
from tests.support import transfers as tr


def ingest(repo: Repository, folder: Path, sheet: Path | None = None) -> str:
    receipt = ingest_and_replicate(repo, IngestRequest(source=folder, sheet=sheet, submitter="t"))
    assert receipt.aip is not None and receipt.replication and receipt.replication["ok"]
    return receipt.aip


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return init_repository(tmp_path / "repo", organization="Test Archive")


@pytest.fixture
def aips(repo: Repository, tmp_path: Path) -> list[str]:
    scanned, sheet, _ = tr.make_scanned_transfer(tmp_path / "in", "T01", items=2, pages=1)
    return [
        ingest(repo, scanned, sheet),  # public (公开, 开放)
        ingest(repo, tr.make_folder_transfer(tmp_path / "in", "T02", n=3)),  # not public
        ingest(repo, tr.make_folder_transfer(tmp_path / "in", "T03", n=2, size=80)),
    ]


class Cli:
    """The console entry point in this process: exit status and JSON output."""

    def __init__(self, repo: Repository, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
        self.repo, self.capsys, self.monkeypatch = repo, capsys, monkeypatch

    def __call__(self, *args: str) -> tuple[int, Any]:
        import json

        from preservation.cli import main

        self.capsys.readouterr()
        self.monkeypatch.setattr(sys, "argv", ["preservation", "--repo", str(self.repo.root),
                                               "--json", *args])  # fmt: skip
        code = 0
        try:
            main()
        except SystemExit as e:
            code = int(e.code or 0)
        out = self.capsys.readouterr()
        try:
            return code, json.loads(out.out) if out.out.strip() else out.err
        except json.JSONDecodeError:
            return code, out.out


@pytest.fixture
def cli(repo: Repository, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Cli:  # fmt: skip
    return Cli(repo, capsys, monkeypatch)
