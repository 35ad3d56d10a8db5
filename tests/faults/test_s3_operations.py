"""S3 faults under replication, audit and repair: a local primary and an off-site
replica on a real SeaweedFS server reached through the fault proxy.

Whatever the fault, a copy is counted verified only when every object is on the
replica with the right bytes; an interrupted copy is finished by the next run, which
also clears the multipart upload the dead server left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from preservation.audit.repair import repair_incidents
from preservation.audit.runner import AuditRequest, run_audit
from preservation.catalog.models import FileCopy
from preservation.errors import StoreUnavailable
from preservation.repository import Repository
from preservation.storage.replicate import replicate_pending
from tests.faults.conftest import ACCESS_ENV, MIB, SEAWEEDFS, SECRET_ENV, Proxied
from tests.faults.consistency import problems
from tests.faults.proxy import Rule, is_object_get
from tests.replication.helpers import (
    aip_keys,
    copy_states,
    expected_keys,
    ingest_aip,
    local_store,
    write_repo,
)

FILES = {
    "small-1.txt": b"first record " * 300,
    "small-2.txt": b"second record " * 300,
    "big.bin": os.urandom(6 * MIB),  # a multipart upload of two parts
}


def s3_settings(proxied: Proxied, prefix: str) -> dict[str, Any]:
    s = proxied.settings(prefix)
    return {
        "type": "s3",
        "bucket": s.bucket,
        "prefix": s.prefix,
        "endpoint_url": s.endpoint_url,
        "region": "us-east-1",
        "addressing_style": "path",
        "site": "site-b",
        "role": "replica",
        "access_key_env": ACCESS_ENV,
        "secret_key_env": SECRET_ENV,
        "max_attempts": 3,
        "connect_timeout": 2,
        "read_timeout": 5,
        "multipart_threshold": 5 * MIB,
        "part_size": 5 * MIB,
    }


def make_repo(tmp_path: Path, proxied: Proxied) -> tuple[Repository, str]:
    repo = write_repo(
        tmp_path / "repo",
        {
            "primary": local_store("stores/primary", "site-a", role="primary"),
            "offsite": s3_settings(proxied, f"r-{tmp_path.name[-12:]}"),
        },
        readback="full",
    )
    aip = ingest_aip(repo, tmp_path / "in", "t", FILES)
    return repo, aip


def replicate(repo: Repository) -> Any:
    return replicate_pending(repo, store="offsite", retry_base_delay=0.01)


def offsite_file_outcomes(repo: Repository) -> set[str | None]:
    with repo.catalog.session() as s:
        return set(
            s.execute(select(FileCopy.outcome).where(FileCopy.store_name == "offsite")).scalars()
        )


def assert_replica_complete(repo: Repository, proxied: Proxied, aip: str) -> None:
    store = repo.store("offsite")
    assert aip_keys(store, aip) == expected_keys(repo, aip)
    for name, data in FILES.items():
        with store.open(f"{aip}/v1/data/{name}") as f:
            assert f.read() == data
    assert proxied.uploads(store) == []
    assert problems(repo) == []


@pytest.mark.slow
@SEAWEEDFS
def test_replication_recovers_from_transient_faults(tmp_path: Path, proxied: Proxied) -> None:
    repo, aip = make_repo(tmp_path, proxied)
    proxy = proxied.proxy
    proxy.add(Rule("status", method="PUT", code="SlowDown", times=2))
    proxy.add(Rule("reset", method="PUT", contains="partNumber=2"))
    proxy.add(Rule("lose", method="POST", contains="uploadId="))
    proxy.add(Rule("lose", method="PUT", where=lambda r: r.target.endswith("small-2.txt")))
    proxy.add(Rule("status", where=is_object_get, status=500, code="InternalError"))
    report = replicate(repo)
    assert report.ok, report.to_dict()
    assert copy_states(repo, aip) == {(1, "primary"): "verified", (1, "offsite"): "verified"}
    assert {e[2] for e in proxy.log} >= {"status 503", "reset", "lost", "status 500"}
    assert_replica_complete(repo, proxied, aip)


@pytest.mark.slow
@SEAWEEDFS
def test_server_killed_mid_upload_then_next_run_finishes(tmp_path: Path, proxied: Proxied) -> None:
    repo, aip = make_repo(tmp_path, proxied)
    store = repo.store("offsite")
    proxied.proxy.add(Rule("kill", method="PUT", contains="partNumber=2"))
    first = replicate(repo)
    assert not first.ok
    (result,) = first.results
    assert result.outcome == "waiting", result
    assert isinstance(result.error, StoreUnavailable) and result.error.transient
    assert copy_states(repo, aip)[(1, "offsite")] != "verified"
    assert offsite_file_outcomes(repo) <= {None}  # no file copy counted as verified
    proxied.proxy.revive()
    assert not store.exists(f"{aip}/v1/bagit.txt")  # never declared
    assert proxied.uploads(store) != []  # the dead server's upload is still there

    second = replicate(repo)
    assert second.ok, second.to_dict()
    assert copy_states(repo, aip)[(1, "offsite")] == "verified"
    assert offsite_file_outcomes(repo) == {"pass"}
    assert_replica_complete(repo, proxied, aip)


@pytest.mark.slow
@SEAWEEDFS
def test_wrong_bytes_on_read_back_never_verify_a_copy(tmp_path: Path, proxied: Proxied) -> None:
    """Full read-back sees corrupted bytes: the copy is not verified; the next run is."""
    repo, aip = make_repo(tmp_path, proxied)
    proxied.proxy.add(
        Rule("corrupt", where=lambda r: is_object_get(r) and r.target.endswith("small-1.txt"))
    )
    first = replicate(repo)
    assert not first.ok and copy_states(repo, aip)[(1, "offsite")] != "verified"
    assert "pass" not in offsite_file_outcomes(repo)
    proxied.proxy.clear()
    second = replicate(repo)
    assert second.ok, second.to_dict()
    assert_replica_complete(repo, proxied, aip)


@pytest.mark.slow
@SEAWEEDFS
def test_audit_and_repair_under_faults(tmp_path: Path, proxied: Proxied) -> None:
    repo, aip = make_repo(tmp_path, proxied)
    assert replicate(repo).ok
    proxy = proxied.proxy

    # transient errors: retried, every file read and passed
    proxy.add(Rule("status", where=is_object_get, code="SlowDown", times=2))
    proxy.add(Rule("reset", where=is_object_get, skip=3))
    (ok,) = run_audit(repo, AuditRequest(store="offsite", mode="full", aip=aip))
    assert ok.outcomes == {"pass": ok.checked} and not ok.incidents
    assert len(proxy.events("status 503")) == 2 and len(proxy.events("reset")) == 1
    proxy.clear()

    # the server dies midway through a download: the run fails with the transient
    # error; the file it could not read is not counted verified
    checked = select(FileCopy.id, FileCopy.last_verified_at).where(
        FileCopy.store_name == "offsite"
    )
    with repo.catalog.session() as s:
        before = dict(s.execute(checked).all())
    proxy.add(
        Rule(
            "kill",
            where=lambda r: is_object_get(r) and r.target.endswith("big.bin"),
            kill_after_bytes=MIB,
        )
    )
    with pytest.raises(StoreUnavailable):
        run_audit(repo, AuditRequest(store="offsite", mode="full", aip=aip, all_digests=True))
    assert proxy.events("killed mid-response")
    with repo.catalog.session() as s:
        after = dict(s.execute(checked).all())
    assert after == before
    proxy.revive()
    proxy.clear()

    # wrong bytes from the server: a mismatch incident, never a pass; repair re-reads,
    # finds the object intact and closes it without changing anything
    proxy.add(
        Rule("corrupt", where=lambda r: is_object_get(r) and r.target.endswith("small-2.txt"))
    )
    (bad,) = run_audit(repo, AuditRequest(store="offsite", mode="full", aip=aip))
    assert bad.outcomes.get("mismatch") == 1
    assert [i["path"] for i in bad.incidents] == ["data/small-2.txt"]
    proxy.clear()
    report = repair_incidents(repo)
    assert [r.state for r in report.results] == ["closed"]
    (again,) = run_audit(repo, AuditRequest(store="offsite", mode="full", aip=aip))
    assert again.outcomes == {"pass": again.checked}
    assert problems(repo) == []  # the failed run's job is closed, nothing half-done


def cli(repo: Repository, *args: str, status: int = 0) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process (the fault proxy stays in this one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")}
    proc = subprocess.run(
        [sys.executable, "-m", "preservation", "--repo", str(repo.root), "--json", *args],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == status, proc.stderr
    return proc


def s3_primary_repo(tmp_path: Path, proxied: Proxied) -> Repository:
    settings = {**s3_settings(proxied, f"p-{tmp_path.name[-12:]}"), "role": "primary"}
    settings["site"] = "site-a"
    return write_repo(
        tmp_path / "repo",
        {"primary": settings, "offsite": local_store("stores/offsite", "site-b")},
    )


@pytest.mark.slow
@SEAWEEDFS
def test_ingest_into_s3_killed_mid_upload_leaves_no_aip(tmp_path: Path, proxied: Proxied) -> None:
    """The S3 primary dies during an ingest's multipart upload: the ingest fails with
    the transient error, no AIP is catalogued or declared, and the next ingest of the
    same transfer succeeds."""
    from preservation.catalog.models import Aip
    from tests.support import transfers as tr

    repo = s3_primary_repo(tmp_path, proxied)
    source = tr.write_files(tmp_path / "in" / "t", FILES)
    proxied.proxy.add(Rule("kill", method="PUT", contains="partNumber=2"))
    failed = cli(repo, "ingest", str(source), "--no-replicate", status=5)
    assert "STO003: primary: unavailable" in failed.stderr, failed.stderr
    proxied.proxy.revive()
    with repo.catalog.session() as s:
        assert s.execute(select(Aip.id)).all() == []
    assert not [k for k in proxied.keys(repo.primary) if k.endswith("/bagit.txt")]
    # the next ingest cleans up what the failed one could not remove (the server was
    # down) and stores the AIP
    receipt = json.loads(cli(repo, "ingest", str(source), "--no-replicate").stdout)
    store = repo.primary
    for name, data in FILES.items():
        with store.open(f"{receipt['aip']}/v1/data/{name}") as f:
            assert f.read() == data
    assert [k for k in proxied.keys(store) if "/.staging/" in k] == []
    assert problems(repo) == []


@pytest.mark.slow
@SEAWEEDFS
def test_ingest_cleanup_aborts_the_dead_servers_upload(tmp_path: Path, proxied: Proxied) -> None:
    from tests.support import transfers as tr

    repo = s3_primary_repo(tmp_path, proxied)
    source = tr.write_files(tmp_path / "in" / "t", FILES)
    proxied.proxy.add(Rule("kill", method="PUT", contains="partNumber=2"))
    cli(repo, "ingest", str(source), "--no-replicate", status=5)
    proxied.proxy.revive()
    cli(repo, "ingest", "--cleanup")
    assert proxied.uploads(repo.primary) == []
