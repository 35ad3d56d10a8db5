"""Fixtures for the format tests: a repository and an ingest helper."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from preservation.ingest.pipeline import IngestRequest, run_ingest
from preservation.repository import Repository, init_repository

Ingest = Callable[[Mapping[str, Path]], str]


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return init_repository(tmp_path / "repo", organization="Test Archive")


@pytest.fixture
def ingest(repo: Repository, tmp_path: Path) -> Ingest:
    """Ingest ``{payload path: local file}`` as one transfer; returns the AIP id."""
    counter = [0]

    def run(files: Mapping[str, Path]) -> str:
        counter[0] += 1
        folder = tmp_path / f"transfer-{counter[0]}"
        for rel, src in files.items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
        receipt = run_ingest(repo, IngestRequest(source=folder, submitter="tester"))
        assert receipt.aip is not None
        return receipt.aip

    return run


def with_formats_toml(repo: Repository, toml: str) -> Repository:
    """The repository reopened with ``toml`` (``[formats...]`` tables) appended to its
    configuration."""
    from preservation.config import CONFIG_NAME
    from preservation.repository import open_repository

    path = repo.root / CONFIG_NAME
    path.write_text(path.read_text(encoding="utf-8") + "\n" + toml, encoding="utf-8")
    return open_repository(repo.root)
