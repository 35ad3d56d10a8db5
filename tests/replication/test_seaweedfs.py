"""Replication between two real SeaweedFS servers standing for two sites: verified
copies, a replica server stopped in the middle of a batch and restarted, and a worker
killed with SIGKILL."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from preservation.repository import Repository
from preservation.storage.health import health
from preservation.storage.replicate import replicate_pending
from preservation.storage.s3 import S3Store
from tests.replication.conftest import Site
from tests.replication.helpers import (
    aip_keys,
    copy_states,
    events_of,
    expected_keys,
    ingest_aip,
    local_store,
    replication_jobs,
    small_files,
    uploads,
    write_repo,
)

pytestmark = [pytest.mark.seaweedfs, pytest.mark.slow]

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "health.schema.json").read_text()
)
MiB = 1024 * 1024


def big_file(tag: str, size: int) -> bytes:
    block = hashlib.sha256(tag.encode()).digest() * (MiB // 32)
    return (block * (size // len(block) + 1))[:size]


def cli(repo: Repository, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "preservation", "--repo", str(repo.root), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )


def assert_replica_complete(repo: Repository, aips: list[str], replica: str) -> None:
    """Every AIP's copy verified, exactly the expected objects, byte-identical digests,
    one replication event each, no unfinished upload."""
    store = repo.store(replica)
    for aip in aips:
        assert copy_states(repo, aip)[(1, replica)] == "verified"
        assert aip_keys(store, aip) == expected_keys(repo, aip)  # no extra, no partial
        for key in expected_keys(repo, aip):
            assert store.head(key).size == repo.primary.head(key).size
        events = events_of(repo, aip, "replication")
        assert [(e.outcome, e.store_name) for e in events] == [("success", replica)]
    if isinstance(store, S3Store):
        assert uploads(store) == []


def test_two_sites_replicate_and_verify(sites: dict[str, Site], tmp_path: Path) -> None:
    a, b = sites["a"], sites["b"]
    repo = write_repo(
        tmp_path / "repo",
        {
            "primary": a.store(a.bucket("primary"), role="primary"),
            "replica": b.store(b.bucket("replica")),
        },
        readback="full",
    )
    files = small_files("two")
    files["scan.bin"] = big_file("two", 7 * MiB)  # multipart on both stores
    aips = [
        ingest_aip(repo, tmp_path / "in", "T1", files),
        ingest_aip(repo, tmp_path / "in", "T2", small_files("second")),
    ]
    assert health(repo).exit_status == 1  # replicas pending

    report = replicate_pending(repo, workers=3)

    assert report.ok, [r.to_dict() for r in report.results]
    assert report.bytes_copied >= 7 * MiB
    assert_replica_complete(repo, aips, "replica")
    replica = repo.store("replica")
    key = f"{aips[0]}/v1/data/scan.bin"
    with replica.open(key) as f:
        assert hashlib.sha256(f.read()).hexdigest() == hashlib.sha256(files["scan.bin"]).hexdigest()
    assert replica.head(key).sha256 == hashlib.sha256(files["scan.bin"]).hexdigest()
    [event] = events_of(repo, aips[0], "replication")
    assert "source store primary (site-a)" in event.detail
    assert "target store replica (site-b)" in event.detail
    assert "ChecksumSHA256" in event.outcome_detail and "read-back full" in event.outcome_detail

    data = health(repo).to_dict()
    jsonschema.validate(data, SCHEMA)
    assert data["exit_status"] == 0
    assert data["ndsa"]["level"] == 1 and data["ndsa"]["ceiling"] == 1
    assert [s["reachable"] for s in data["stores"]] == [True, True]

    assert replicate_pending(repo).results == []  # nothing left to do


def test_replica_server_stopped_mid_batch_then_catch_up(
    sites: dict[str, Site], tmp_path: Path
) -> None:
    b = sites["b"]
    bucket = b.bucket("replica")
    repo = write_repo(
        tmp_path / "repo",
        {
            "primary": local_store("stores/primary", "site-a", "primary"),
            "replica": b.store(bucket),
        },
    )
    big = small_files("big")
    big["scan.bin"] = big_file("big", 40 * MiB)
    aips = [
        ingest_aip(repo, tmp_path / "in", "T1", small_files("one")),
        ingest_aip(repo, tmp_path / "in", "T2", big),
        ingest_aip(repo, tmp_path / "in", "T3", small_files("three")),
        ingest_aip(repo, tmp_path / "in", "T4", small_files("four")),
    ]

    # Stop the replica server the moment the large object of the second AIP is
    # being uploaded (its multipart upload is open).
    watcher_client = b.server.client(retries={"total_max_attempts": 1, "mode": "standard"})
    stopped = threading.Event()
    seen: list[str] = []

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not stopped.is_set():
            try:
                found = watcher_client.list_multipart_uploads(Bucket=bucket).get("Uploads") or []
            except Exception:
                time.sleep(0.01)
                continue
            mine = [u["Key"] for u in found if u["Key"].startswith(f"{aips[1]}/")]
            if mine:
                seen.extend(mine)
                b.stop()
                stopped.set()
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        report = replicate_pending(repo, workers=2, retry_base_delay=0.05)
    finally:
        stopped.set()
        watcher.join(10)
    assert seen, "the watcher never saw the large upload in progress"

    outcomes = [(r.aip, r.outcome) for r in report.results]
    assert outcomes[0] == (aips[0], "verified")
    assert outcomes[1] == (aips[1], "waiting")
    assert outcomes[2:] == [(aips[2], "skipped"), (aips[3], "skipped")]
    assert "replica" in report.stores_down
    error = report.results[1].error
    assert error is not None and error.code == "STO003" and report.exit_status == 5
    for aip in aips[1:]:
        assert copy_states(repo, aip)[(1, "replica")] == "pending"
    assert not [e for aip in aips for e in events_of(repo, aip, "replication")
                if e.outcome != "success"]  # fmt: skip

    # while it is down: health says so (exit 2) and shows the lag
    down = health(repo)
    data = down.to_dict()
    jsonschema.validate(data, SCHEMA)
    assert down.exit_status == 2
    replica = next(s for s in data["stores"] if s["name"] == "replica")
    assert not replica["reachable"] and replica["copies_pending"] == 3
    assert replica["oldest_unverified"]["aip"] == aips[1]
    assert "STO003" in replica["last_replication_error"]["error"]

    b.restart()
    store = repo.store("replica")
    assert isinstance(store, S3Store)
    assert not store.exists(f"{aips[1]}/v1/bagit.txt")  # the cut copy is not declared
    orphans = uploads(store)  # what the stopped upload left on the server

    caught_up = cli(repo, "replicate", "--pending", "--json")

    assert caught_up.returncode == 0, caught_up.stderr
    result = json.loads(caught_up.stdout)
    assert result["copies"] == {"verified": 3, "waiting": 0, "failed": 0, "skipped": 0}
    assert_replica_complete(repo, aips, "replica")
    assert orphans and set(orphans) <= set(seen)  # ...and the catch-up aborted them
    assert health(repo).exit_status == 0


def test_sigkilled_worker_loses_nothing_and_leaves_nothing_half_written(
    sites: dict[str, Site], tmp_path: Path
) -> None:
    a, b = sites["a"], sites["b"]
    repo = write_repo(
        tmp_path / "repo",
        {
            "primary": a.store(a.bucket("primary"), role="primary"),
            "replica": b.store(b.bucket("replica")),
        },
    )
    files = small_files("kill", n=8)
    aips = [
        ingest_aip(repo, tmp_path / "in", "T1", files),
        ingest_aip(repo, tmp_path / "in", "T2", small_files("kill2")),
    ]

    # One object at a time, so that the kill lands with half of the copy written.
    killed = cli(
        repo,
        "replicate",
        "--pending",
        "--workers",
        "1",
        PRESERVATION_FAULT_KILL_AT="replicate:mid-copy",
    )

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    store = repo.store("replica")
    assert isinstance(store, S3Store)
    first = aips[0]
    written = aip_keys(store, first)
    expected = expected_keys(repo, first)
    assert 0 < len(written) < len(expected) - 1  # half of the copy...
    assert f"{first}/v1/bagit.txt" not in written  # ...never declared
    assert not aip_keys(store, aips[1])
    assert copy_states(repo, first)[(1, "replica")] == "pending"
    [job] = replication_jobs(repo)
    assert job.state == "running" and job.aip_id == first
    # An upload the kill cut off in the middle stays open on the server:
    missing = sorted(expected - written - {f"{first}/v1/bagit.txt"})[0]
    upload = store.client.create_multipart_upload(Bucket=store.bucket, Key=missing)
    store.client.upload_part(
        Bucket=store.bucket,
        Key=missing,
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=b"cut off" * 1000,
    )
    assert uploads(store) == [missing]

    report = replicate_pending(repo)

    assert report.ok, [r.to_dict() for r in report.results]
    assert_replica_complete(repo, aips, "replica")
    first_result = report.results[0]
    assert first_result.present == len(written)  # finished objects were kept, not copied again
    jobs = {j.id: j for j in replication_jobs(repo)}
    assert jobs[job.id].state == "failed" and "interrupted" in (jobs[job.id].error or "")
    assert sorted(j.state for j in jobs.values()) == ["done", "done", "failed"]


def _dump(obj: Any) -> str:  # pragma: no cover - failure messages only
    return json.dumps(obj, indent=1, default=str)
