"""Fixtures for the version tests: a repository with one ingested AIP."""

from __future__ import annotations

from pathlib import Path

import pytest

from preservation.ingest.pipeline import IngestRequest, run_ingest
from preservation.repository import Repository, init_repository
from tests.support import transfers as tr


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return init_repository(tmp_path / "repo", organization="Test Archive")


@pytest.fixture
def aip(repo: Repository, tmp_path: Path) -> str:
    folder = tr.make_folder_transfer(tmp_path / "in", "T01", n=3)
    receipt = run_ingest(repo, IngestRequest(source=folder, submitter="tester"))
    assert receipt.aip is not None
    return receipt.aip
