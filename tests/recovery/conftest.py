"""Repositories with a history for the recovery tests (export, rebuild, resync).

``build_history`` makes, through the real code paths: an ingest with a catalogue sheet
(three items, the second one secret and closed, the third titled like a spreadsheet
formula), version 2 by a migration (an access copy of the first file), version 3 by a
metadata correction, replication to the off-site store, a full audit of the off-site
copy, a flipped byte there found by a second audit and repaired from the primary.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from preservation.audit.repair import repair_incidents
from preservation.audit.runner import AuditRequest, run_audit
from preservation.catalog.models import AipVersion, File
from preservation.cli import main
from preservation.ingest.pipeline import IngestRequest, run_ingest
from preservation.model import Event
from preservation.repository import Repository, init_repository
from preservation.storage.replicate import replicate_pending
from preservation.versions import Changes, NewFile, default_agents, new_version
from tests.audit.builders import ACCESS_ENV, SECRET_ENV, flip_byte, make_repo, s3_store_toml
from tests.support import transfers as tr
from tests.support.seaweedfs import SeaweedFS

SECRET_FILE = "doc-002.txt"
FORMULA_TITLE = "=HYPERLINK(\"http://example.invalid\")"
ACCESS_COPY = "doc-001.access.txt"
LOCAL_PRIMARY = """
[stores.primary]
type = "local"
path = "stores/primary"
site = "site-a"
role = "primary"
"""


@dataclass
class History:
    repo: Repository
    aip: str
    server: SeaweedFS | None = None


def ingest_with_sheet(repo: Repository, work: Path) -> str:
    folder = tr.make_folder_transfer(work / "in", "T01", n=3, size=3000)
    rows = [
        tr.sheet_row(1, path="doc-001.txt"),
        tr.sheet_row(2, path=SECRET_FILE, security_level="秘密", open_status="不开放"),
        tr.sheet_row(3, path="sub/doc-003.txt", title=FORMULA_TITLE),
    ]
    sheet = tr.write_csv_sheet(work / "sheet.csv", rows)
    receipt = run_ingest(repo, IngestRequest(source=folder, sheet=sheet, submitter="tester"))
    assert receipt.aip is not None, receipt
    return receipt.aip


def file_uuid(repo: Repository, aip: str, path: str) -> str:
    with repo.catalog.session() as s:
        found = s.execute(
            select(File.file_uuid)
            .join(AipVersion, AipVersion.id == File.version_id)
            .where(AipVersion.aip_id == aip, AipVersion.number == 1, File.path == path)
        ).scalar_one()
    assert found is not None
    return str(found)


def build_history(repo: Repository, work: Path, server: SeaweedFS | None = None) -> History:
    aip = ingest_with_sheet(repo, work)
    original = file_uuid(repo, aip, "data/doc-001.txt")
    access = work / "access.txt"
    access.write_bytes(b"an access copy of the first document\n")
    agents = default_agents(repo, "tester")
    assert new_version(
        repo,
        aip,
        reason="migration",
        changes=Changes(
            add=[NewFile(ACCESS_COPY, access, role="access", derived_from=original)]
        ),
        events=[
            Event(type="migration", outcome="success", detail="access copy", objects=[original])
        ],
        agents=agents,
    ) == 2
    assert new_version(
        repo,
        aip,
        reason="metadata",
        changes=Changes(descriptive={"retention": "定期30年"}, note="retention corrected"),
        events=[Event(type="metadata modification", outcome="success", detail="retention")],
        agents=agents,
    ) == 3
    report = replicate_pending(repo)
    assert report.ok, report.to_dict()
    (first,) = run_audit(repo, AuditRequest(store="offsite", mode="full", aip=aip, ahead=True))
    assert first.outcomes.get("pass") and not first.incidents
    flip_byte(repo, "offsite", f"{aip}/v1/data/doc-001.txt", server)
    (second,) = run_audit(
        repo, AuditRequest(store="offsite", mode="full", aip=aip, ahead=True, repair=False)
    )
    # one object, three versions that hold it: one incident per version
    assert {(i["kind"], i["path"]) for i in second.incidents} == {("mismatch", "data/doc-001.txt")}
    repaired = repair_incidents(repo)
    assert repaired.ok and repaired.count("repaired") >= 1, repaired.to_dict()
    return History(repo, aip, server)


@pytest.fixture(scope="session")
def local_history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """Two local stores; shared by the rebuild and resync tests (rebuild first)."""
    root = tmp_path_factory.mktemp("local-history")
    repo = init_repository(root / "repo", organization="Test Archive")
    return build_history(repo, root / "work")


@pytest.fixture(scope="session")
def s3_history(
    tmp_path_factory: pytest.TempPathFactory, seaweedfs: SeaweedFS
) -> Iterator[History]:
    """A local primary and an off-site replica in a fresh SeaweedFS bucket (its
    credentials in the environment while the session runs)."""
    root = tmp_path_factory.mktemp("s3-history")
    bucket = seaweedfs.make_bucket(f"recovery-{uuid.uuid4().hex[:12]}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ACCESS_ENV, seaweedfs.access_key)
        mp.setenv(SECRET_ENV, seaweedfs.secret_key)
        repo = make_repo(
            root / "repo",
            LOCAL_PRIMARY + s3_store_toml("offsite", seaweedfs, bucket, site="site-b"),
        )
        yield build_history(repo, root / "work", seaweedfs)


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Done]:
    """The console script's ``main`` in this process (exit status, stdout, stderr)."""

    def run(repo: Path, *args: str) -> Done:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["preservation", "--repo", str(repo), *args])
        try:
            main()
            status = 0
        except SystemExit as e:
            status = int(e.code or 0)
        out, err = capsys.readouterr()
        return Done(status, out, err)

    return run
