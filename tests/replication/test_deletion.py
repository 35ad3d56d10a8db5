"""Controlled deletion: two people, Object Lock respected (moto), tombstones kept."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from preservation.catalog import queries as q
from preservation.catalog.deletion_models import DeletionRequest, Tombstone
from preservation.catalog.events import verify_chain
from preservation.catalog.models import EventRow
from preservation.errors import (
    AipBusy,
    AipNotActive,
    DeletionAlreadyRequested,
    DeletionRequestClosed,
    RetentionLocked,
    SameApprover,
    StoreUnavailable,
    UsageError,
)
from preservation.repository import Repository
from preservation.storage.check import check_stores
from preservation.storage.deletion import (
    approve_deletion,
    get_deletion_request,
    request_deletion,
    tombstone_key,
)
from preservation.storage.health import health
from preservation.storage.replicate import replicate_pending
from tests.replication.conftest import Moto
from tests.replication.helpers import (
    aip_keys,
    copy_states,
    events_of,
    expected_keys,
    ingest_aip,
    local_store,
    small_files,
    write_repo,
)


def cli(repo: Repository, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")}
    return subprocess.run(
        [sys.executable, "-m", "preservation", "--repo", str(repo.root), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return write_repo(
        tmp_path / "repo",
        {
            "primary": local_store("stores/primary", "site-a", "primary"),
            "offsite": local_store("stores/offsite", "site-b"),
        },
    )


@pytest.fixture
def replicated(repo: Repository, tmp_path: Path) -> str:
    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("del"))
    assert replicate_pending(repo).ok
    return aip


def test_two_people_delete_an_aip_and_evidence_remains(
    repo: Repository, replicated: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    aip = replicated
    keep = ingest_aip(repo, tmp_path / "in", "T2", small_files("keep"))
    caplog.set_level(logging.INFO, logger="preservation")
    request = request_deletion(repo, aip, reason="duplicate of another AIP", user="alice")
    assert request["state"] == "requested" and request["requested_by"] == "alice"

    with pytest.raises(SameApprover) as refused:
        approve_deletion(repo, request["id"], user=" Alice ")
    assert refused.value.code == "DEL001" and refused.value.exit_status == 8
    assert get_deletion_request(repo, request["id"])["state"] == "requested"
    assert repo.primary.exists(f"{aip}/v1/bagit.txt")

    result = approve_deletion(repo, request["id"], user="bob")

    data = result.to_dict()
    assert data["deleted"] and data["request"]["state"] == "completed"
    assert data["request"]["approved_by"] == "bob"
    actions = [(h["user"], h["action"]) for h in data["request"]["history"]]
    assert actions == [
        ("alice", "request"),
        (" Alice ".strip(), "approval refused"),
        ("bob", "approve"),
        ("bob", "deleted"),
    ]
    n = len(expected_keys(repo, aip))
    assert data["objects_removed"] == {"primary": n, "offsite": n}
    for name in ("primary", "offsite"):
        store = repo.store(name)
        left = aip_keys(store, aip, events=True)
        assert tombstone_key(aip) in left
        assert not [k for k in left if "/v1/" in k]  # every version object gone
        events = {k.rsplit("/", 1)[1][-41:-5] for k in left if "/events/" in k}
        with repo.catalog.session() as s:  # every event of the AIP: ingest, replication,
            recorded = set(  # deletion (the store alone can rebuild the catalogue)
                s.execute(select(EventRow.id).where(EventRow.aip_id == aip)).scalars()
            )
        assert events == recorded and len(events) > 2
        with store.open(tombstone_key(aip)) as f:
            stone = json.load(f)
        assert stone["aip"] == aip and stone["requested_by"] == "alice"
        assert stone["approved_by"] == "bob" and stone["reason"] == "duplicate of another AIP"
        assert stone["versions"][0]["number"] == 1
        assert stone["event"] == result.event
    # the other AIP is untouched
    assert aip_keys(repo.primary, keep) == expected_keys(repo, keep)

    [event] = events_of(repo, aip, "deletion")
    assert event.outcome == "success" and event.id == result.event
    assert ["person:alice", "requester"] in event.agents
    assert ["person:bob", "authorizer"] in event.agents
    assert "duplicate of another AIP" in event.detail
    with repo.catalog.session() as s:
        assert verify_chain(s).ok
        assert q.require_aip(s, aip).state == "deleted"
        stone_row = s.get(Tombstone, aip)
        assert stone_row is not None and stone_row.approved_by == "bob"
        summary = q.aip_summary(s, aip)
    assert summary["aip"]["state"] == "deleted"
    assert {c["state"] for c in summary["copies"]} == {"deleted"}
    assert "deletion" in [e["type"] for e in summary["events"]]
    assert set(copy_states(repo, aip).values()) == {"deleted"}

    messages = [r.getMessage() for r in caplog.records]
    assert any("requested by alice" in m for m in messages)
    assert any("refused" in m and "Alice" in m for m in messages)
    assert any("approved by bob" in m and "requested by alice" in m for m in messages)
    assert any(f"AIP {aip} deleted" in m and "bob" in m for m in messages)

    # afterwards: not replicated, not counted as active, not approvable again
    assert [r.aip for r in replicate_pending(repo).results] == [keep]
    totals = health(repo).to_dict()["aip_totals"]
    assert totals["deleted"] == 1 and totals["active"] == 1
    with pytest.raises(DeletionRequestClosed):
        approve_deletion(repo, request["id"], user="carol")
    with pytest.raises(AipNotActive):
        request_deletion(repo, aip, reason="again", user="alice")


def test_request_rules(repo: Repository, replicated: str) -> None:
    with pytest.raises(UsageError):
        request_deletion(repo, replicated, reason="  ", user="alice")
    with pytest.raises(UsageError):
        request_deletion(repo, replicated, reason="why", user=" ")
    first = request_deletion(repo, replicated, reason="why", user="alice")
    with pytest.raises(DeletionAlreadyRequested) as again:
        request_deletion(repo, replicated, reason="twice", user="carol")
    assert again.value.code == "DEL003" and first["id"] in again.value.message


def test_deletion_waits_for_a_running_replication(repo: Repository, replicated: str) -> None:
    request = request_deletion(repo, replicated, reason="why", user="alice")
    with repo.catalog.session() as s:
        q.start_job(s, "replication", {"copy_id": 0, "store": "offsite"}, aip_id=replicated)
    with pytest.raises(AipBusy):
        approve_deletion(repo, request["id"], user="bob")
    assert repo.primary.exists(f"{replicated}/v1/bagit.txt")


def test_an_interrupted_deletion_is_finished_by_approving_again(
    repo: Repository, replicated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = request_deletion(repo, replicated, reason="why", user="alice")
    offsite = repo.store("offsite")

    def down(key: str) -> None:
        raise StoreUnavailable(store="offsite", reason="connection refused")

    monkeypatch.setattr(offsite, "delete", down)
    with pytest.raises(StoreUnavailable):
        approve_deletion(repo, request["id"], user="bob")
    state = get_deletion_request(repo, request["id"])
    assert state["state"] == "approved" and "incomplete" in (state["detail"] or "")
    assert copy_states(repo, replicated) == {(1, "primary"): "deleted", (1, "offsite"): "verified"}
    monkeypatch.undo()

    result = approve_deletion(repo, request["id"], user="carol")
    assert result.request["state"] == "completed"
    assert result.objects_removed["primary"] == 0  # already gone in the first attempt
    assert result.objects_removed["offsite"] == len(expected_keys(repo, replicated))
    assert set(copy_states(repo, replicated).values()) == {"deleted"}


def test_cli_refuses_the_same_user_with_its_code(repo: Repository, replicated: str) -> None:
    made = cli(repo, "aip", "delete-request", replicated, "--reason", "test", "--user", "alice",
               "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    request = json.loads(made.stdout)["id"]
    same = cli(repo, "aip", "delete-approve", request, "--user", "alice")
    assert same.returncode == 8
    assert "DEL001" in same.stderr and "alice" in same.stderr
    other = cli(repo, "aip", "delete-approve", request, "--user", "bob", "--json")
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["deleted"] is True
    assert "approved by bob" in other.stderr  # the log line names both people
    assert "requested by alice" in other.stderr


# ---------------------------------------------------------------- Object Lock (moto)


def _locked_repo(tmp_path: Path, moto: Moto) -> tuple[Repository, str]:
    bucket = moto.bucket("locked", object_lock=True)
    repo = write_repo(
        tmp_path / "repo",
        {
            "primary": local_store("stores/primary", "site-a", "primary"),
            "vault": moto.store(bucket, object_lock_mode="GOVERNANCE", object_lock_days=1),
        },
    )
    return repo, bucket


def test_replicas_are_written_with_the_stores_retention(tmp_path: Path, moto: Moto) -> None:
    repo, bucket = _locked_repo(tmp_path, moto)
    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("lock"))
    assert replicate_pending(repo).ok
    client = moto.client()
    for key in expected_keys(repo, aip):
        # (moto 5.2 answers GetObjectRetention with a 500; HeadObject carries the same)
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE"
        until = head["ObjectLockRetainUntilDate"]
        assert (
            datetime.now(UTC) + timedelta(hours=23)
            < until
            < datetime.now(UTC) + timedelta(hours=25)
        )
    [result] = check_stores(repo.config, ["vault"])
    assert result.ok, result.problems


def test_stores_check_reports_lock_settings_the_bucket_contradicts(
    tmp_path: Path, moto: Moto
) -> None:
    plain = moto.bucket("plain")
    repo = write_repo(
        tmp_path / "repo",
        {
            "primary": local_store("stores/primary", "site-a", "primary"),
            "vault": moto.store(plain, object_lock_mode="COMPLIANCE", object_lock_days=30),
        },
    )
    [result] = check_stores(repo.config, ["vault"])
    assert not result.ok
    assert any("does not have Object Lock" in p for p in result.problems)


def test_deletion_under_object_lock_is_refused_and_deletes_nothing(
    tmp_path: Path, moto: Moto
) -> None:
    repo, _ = _locked_repo(tmp_path, moto)
    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("held"))
    assert replicate_pending(repo).ok
    before = {n: aip_keys(repo.store(n), aip, events=True) for n in ("primary", "vault")}
    request = request_deletion(repo, aip, reason="retention ended early", user="alice")

    with pytest.raises(RetentionLocked) as locked:
        approve_deletion(repo, request["id"], user="bob")

    err = locked.value
    assert err.code == "STO007" and err.exit_status == 5
    assert err.fields["store"] == "vault" and "nothing was deleted" in err.message
    after = {n: aip_keys(repo.store(n), aip, events=True) for n in ("primary", "vault")}
    assert after["primary"] == before["primary"] | {k for k in after["primary"] if "/events/" in k}
    for name in ("primary", "vault"):
        assert expected_keys(repo, aip) <= after[name]
        assert tombstone_key(aip) not in after[name]
    state = get_deletion_request(repo, aip_request := request["id"])
    assert state["state"] == "blocked" and state["approved_by"] == "bob"
    assert "Object Lock" in (state["detail"] or "")
    assert [h["action"] for h in state["history"]] == ["request", "blocked"]
    with repo.catalog.session() as s:
        assert q.require_aip(s, aip).state == "active"
        assert s.execute(select(Tombstone)).first() is None
        assert s.get(DeletionRequest, aip_request) is not None
    assert set(copy_states(repo, aip).values()) == {"verified"}
    [event] = events_of(repo, aip, "deletion")
    assert event.outcome == "failure" and "nothing deleted" in event.outcome_detail

    # the command line says the same, with the code and exit status 5
    again = cli(repo, "aip", "delete-approve", request["id"], "--user", "carol")
    assert again.returncode == 5 and "STO007" in again.stderr
    assert expected_keys(repo, aip) <= aip_keys(repo.store("vault"), aip)


def test_deletion_from_an_s3_store_without_lock(tmp_path: Path, moto: Moto) -> None:
    bucket = moto.bucket("free")
    repo = write_repo(
        tmp_path / "repo",
        {
            "primary": local_store("stores/primary", "site-a", "primary"),
            "vault": moto.store(bucket),
        },
    )
    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("free"))
    assert replicate_pending(repo).ok
    request = request_deletion(repo, aip, reason="test", user="alice")
    result = approve_deletion(repo, request["id"], user="bob")
    assert result.request["state"] == "completed"
    listed: Any = moto.client().list_objects_v2(Bucket=bucket, Prefix=f"{aip}/")
    keys = {o["Key"] for o in listed.get("Contents", [])}
    assert tombstone_key(aip) in keys
    assert keys - {tombstone_key(aip)} == {k for k in keys if "/events/" in k}
