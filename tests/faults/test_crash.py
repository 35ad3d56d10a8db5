"""SIGKILL at the named crash points of replication, audit, repair, migration and the
version/catalogue commit, through the CLI in a subprocess (``preservation.faults``).

After each kill the catalogue and the stores agree (:mod:`tests.faults.consistency`):
nothing is counted verified that is not there, nothing partial is declared. The next
ordinary command finishes the interrupted work. The ingest kill points are covered
by ``tests/ingest/test_pipeline.py``; here an ingest killed after its commit is
finished by the next ingest (not only by ``ingest --cleanup``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from preservation.audit.runner import AuditRequest, run_audit
from preservation.catalog.models import Aip, Copy, FileCopy, Incident
from preservation.ingest.pipeline import IngestRequest, run_ingest
from preservation.repository import Repository, init_repository, open_repository
from preservation.storage.replicate import replicate_pending
from tests.audit.builders import flip_byte
from tests.faults.consistency import problems
from tests.support import transfers as tr

KILLED = -9


def cli(repo: Repository, *args: str, kill: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")}
    if kill:
        env["PRESERVATION_FAULT_KILL_AT"] = kill
    return subprocess.run(
        [sys.executable, "-m", "preservation", "--repo", str(repo.root), "--json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def killed(repo: Repository, point: str, *args: str) -> None:
    proc = cli(repo, *args, kill=point)
    assert proc.returncode == KILLED, f"{point} was not reached: {proc.returncode} {proc.stderr}"


def ok(repo: Repository, *args: str) -> subprocess.CompletedProcess[str]:
    proc = cli(repo, *args)
    assert proc.returncode == 0, proc.stderr
    return proc


def after_kill(repo: Repository, *allowed: str) -> None:
    """What a kill may leave until the next run: its unfinished job, and the
    ``allowed`` kinds of problem (see tests.faults.consistency)."""
    kinds = ("[job]", *(f"[{a}]" for a in allowed))
    left = [p for p in problems(repo) if not p.startswith(kinds)]
    assert left == []


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    r = init_repository(tmp_path / "repo", organization="Test Archive")
    config = r.root / "preservation.toml"
    config.write_text(
        config.read_text(encoding="utf-8") + "\n[audit]\nbatch_size = 4\n", encoding="utf-8"
    )
    return open_repository(r.root)


def ingest(repo: Repository, tmp_path: Path, name: str, files: dict[str, bytes]) -> str:
    source = tr.write_files(tmp_path / "in" / name, files)
    receipt = run_ingest(repo, IngestRequest(source=source, submitter="tester"))
    assert receipt.aip is not None
    return receipt.aip


def files(tag: str, n: int = 5) -> dict[str, bytes]:
    return {f"doc-{i}.txt": f"{tag} record {i}\n".encode() * 50 for i in range(n)}


def states(repo: Repository) -> dict[str, int]:
    with repo.catalog.session() as s:
        out: dict[str, int] = {}
        for (state,) in s.execute(select(Copy.state)):
            out[state] = out.get(state, 0) + 1
        return out


@pytest.mark.slow
def test_replication_killed_at_every_point(repo: Repository, tmp_path: Path) -> None:
    for i in range(2):
        ingest(repo, tmp_path, f"t{i}", files(f"aip {i}"))
    assert states(repo) == {"verified": 2, "pending": 2}
    for point in (
        "replicate:after-claim",
        "replicate:mid-copy",
        "replicate:before-declare",
        "replicate:before-commit",
    ):
        killed(repo, point, "replicate", "--pending")
        # a kill after the declaration and before the commit leaves a declared copy
        # that the catalogue does not count yet: the next run verifies and counts it
        after_kill(repo, "declared-unverified", "temporary")
    report = json.loads(ok(repo, "replicate", "--pending").stdout)
    assert states(repo) == {"verified": 4}, report
    assert problems(repo) == []


@pytest.mark.slow
def test_audit_killed_then_resumed(repo: Repository, tmp_path: Path) -> None:
    for i in range(2):
        ingest(repo, tmp_path, f"t{i}", files(f"aip {i}"))
    assert replicate_pending(repo).ok
    with repo.catalog.session() as s:
        before = dict(s.execute(select(FileCopy.id, FileCopy.last_verified_at)).all())
    for point in ("audit:after-batch", "audit:before-commit"):
        killed(repo, point, "audit", "run", "--store", "offsite", "--mode", "full", "--ahead")
        after_kill(repo)
    ok(repo, "audit", "run", "--store", "offsite", "--mode", "full", "--ahead")
    assert problems(repo) == []
    with repo.catalog.session() as s:
        rows = s.execute(
            select(FileCopy.id, FileCopy.last_verified_at, FileCopy.outcome).where(
                FileCopy.store_name == "offsite"
            )
        ).all()
    # every file copy of the store was checked once the interrupted work finished
    for i, when, outcome in rows:
        old = before[i]
        assert when is not None and old is not None and when > old and outcome == "pass"
    assert rows


@pytest.mark.slow
def test_repair_killed_then_finished(repo: Repository, tmp_path: Path) -> None:
    aip = ingest(repo, tmp_path, "t", files("repair"))
    assert replicate_pending(repo).ok
    for name in ("doc-1.txt", "doc-3.txt"):
        flip_byte(repo, "primary", f"{aip}/v1/data/{name}")
    (run,) = run_audit(repo, AuditRequest(store="primary", mode="full", aip=aip))
    assert len(run.incidents) == 2
    killed(repo, "repair:after-quarantine", "repair", "--all")
    after_kill(repo)
    killed(repo, "repair:before-record", "repair", "--all")
    after_kill(repo)
    ok(repo, "repair", "--all")
    with repo.catalog.session() as s:
        assert set(s.execute(select(Incident.state)).scalars()) <= {"closed", "repaired"}
    assert problems(repo) == []
    (again,) = run_audit(repo, AuditRequest(store="primary", mode="full", aip=aip))
    assert again.outcomes == {"pass": again.checked}


@pytest.mark.slow
def test_migration_killed_at_every_point(repo: Repository, tmp_path: Path) -> None:
    """One at-risk BMP; the migration is killed at each point in turn (each run first
    cleans up what the previous one left), then a last run finishes it."""
    from tests.formats import builders as b

    bmp = b.make_image(tmp_path / "page.bmp", "BMP").read_bytes()
    aip = ingest(repo, tmp_path, "scan", {"page.bmp": bmp, "note.txt": b"a scanned page\n"})
    assert replicate_pending(repo).ok
    # (version:before-finalise leaves what version:before-commit leaves, minus the
    # moved objects: the latter covers it)
    for point in ("migrate:before-version", "version:before-commit", "version:after-commit"):
        killed(repo, point, "migrate", "--aip", aip)
        # objects moved to v2/ before the catalogue commit are undeclared (no
        # bagit.txt), a committed v2 waits for its bagit.txt: the next run finishes
        after_kill(repo, "staging", "undeclared", "no-declaration")
        with repo.catalog.session() as s:
            current = s.get(Aip, aip)
            assert current is not None
            assert current.current_version == (2 if point == "version:after-commit" else 1)
    # regression: the next migrate finished the version the killed run had committed
    # (it used to stay undeclared, and replication then found no source: REP001)
    ok(repo, "migrate", "--aip", aip)
    ok(repo, "replicate", "--pending")
    with repo.catalog.session() as s:
        current = s.get(Aip, aip)
        assert current is not None and current.current_version == 2
    assert repo.primary.exists(f"{aip}/v2/bagit.txt")
    assert repo.primary.exists(f"{aip}/v2/data/page.tif")
    assert problems(repo) == []


@pytest.mark.slow
def test_ingest_killed_after_commit_is_finished_by_the_next_ingest(
    repo: Repository, tmp_path: Path
) -> None:
    first = tr.write_files(tmp_path / "in" / "first", files("first"))
    killed(repo, "ingest:after-commit", "ingest", str(first), "--no-replicate")
    after_kill(repo, "staging", "no-declaration")
    second = tr.write_files(tmp_path / "in" / "second", files("second"))
    ok(repo, "ingest", str(second), "--no-replicate")
    assert problems(repo) == []
    assert states(repo) == {"verified": 2, "pending": 2}


@pytest.mark.slow
def test_deletion_killed_then_finished(repo: Repository, tmp_path: Path) -> None:
    """Two-person deletion killed before any object is removed and after the first
    store: approving again finishes it; only the event log and the tombstone remain."""
    aip = ingest(repo, tmp_path, "t", files("to be deleted"))
    keep = ingest(repo, tmp_path, "k", files("to be kept"))
    assert replicate_pending(repo).ok
    asked = ok(repo, "aip", "delete-request", aip, "--reason", "duplicate", "--user", "alice")
    request = str(json.loads(asked.stdout)["id"])
    for point in ("delete:before-objects", "delete:after-store"):
        killed(repo, point, "aip", "delete-approve", request, "--user", "bob")
        after_kill(repo)
    ok(repo, "aip", "delete-approve", request, "--user", "bob")
    assert problems(repo) == []
    for name in ("primary", "offsite"):
        left = {i.key.removeprefix(f"{aip}/") for i in repo.store(name).list(f"{aip}/")}
        assert "tombstone.json" in left
        assert {k for k in left if not k.startswith("events/")} == {"tombstone.json"}
        assert repo.store(name).exists(f"{keep}/v1/bagit.txt")
    with repo.catalog.session() as s:
        gone = s.get(Aip, aip)
        assert gone is not None and gone.state == "deleted"

