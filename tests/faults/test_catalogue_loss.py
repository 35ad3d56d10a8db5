"""Catalogue loss: the SQLite file is deleted; ``preservation catalog rebuild --from
primary`` rebuilds it from the primary store alone. The AIPs, their versions and files
come back as they were, the event chain verifies, and the rebuilt catalogue agrees
with the stores (a full audit of the primary passes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from preservation.catalog.models import Aip, AipVersion, Copy, File
from preservation.ingest.pipeline import IngestRequest, run_ingest
from preservation.repository import Repository, init_repository, open_repository
from preservation.storage.replicate import replicate_pending
from tests.faults.consistency import problems
from tests.support import transfers as tr


def cli(repo: Repository, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")}
    return subprocess.run(
        [sys.executable, "-m", "preservation", "--repo", str(repo.root), "--json", *args],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def snapshot(repo: Repository) -> dict[str, Any]:
    """AIPs, files and copies as the catalogue has them (ids left out)."""
    queries = {
        "aips": select(Aip.id, Aip.state, Aip.current_version, Aip.reference_code),
        "files": select(
            AipVersion.aip_id, AipVersion.number, File.path, File.size, File.sha256,
            File.origin_version,
        ).join(File, File.version_id == AipVersion.id),
        "copies": select(AipVersion.aip_id, AipVersion.number, Copy.store_name, Copy.state)
        .join(Copy, Copy.version_id == AipVersion.id),
    }  # fmt: skip
    with repo.catalog.session() as s:
        return {name: sorted(tuple(r) for r in s.execute(q).all()) for name, q in queries.items()}


@pytest.mark.slow
def test_catalogue_deleted_then_rebuilt_from_the_store(tmp_path: Path) -> None:
    repo = init_repository(tmp_path / "repo", organization="Test Archive")
    for i in range(2):
        source = tr.write_files(
            tmp_path / "in" / f"t{i}",
            {f"doc-{j}.txt": f"record {i}.{j}\n".encode() * 40 for j in range(3)},
        )
        run_ingest(repo, IngestRequest(source=source, submitter="tester"))
    assert replicate_pending(repo).ok
    before = snapshot(repo)
    assert len(before["copies"]) == 4  # two AIPs, each verified on both stores
    repo.catalog.engine.dispose()
    catalogue = repo.root / "catalog.sqlite"
    assert catalogue.is_file()
    catalogue.unlink()

    rebuilt = cli(repo, "catalog", "rebuild", "--from", "primary")
    assert rebuilt.returncode == 0, rebuilt.stderr
    repo = open_repository(repo.root)
    assert snapshot(repo) == before
    verify = cli(repo, "events", "verify")
    assert verify.returncode == 0, verify.stderr
    audit = cli(repo, "audit", "run", "--store", "primary", "--mode", "full", "--ahead")
    assert audit.returncode == 0, audit.stderr
    assert problems(repo) == []
