"""Damage on a store, found by audits and repaired from the other store.

One byte flipped, one object deleted, one truncated: a full audit names each with its
code, an inventory finds the missing and the truncated one, repair restores all three
from the other store (local and SeaweedFS), the damaged objects stay in quarantine,
and the catalogue, the PREMIS events and the Parquet log say what happened.
"""

from __future__ import annotations

import hashlib
import io

import pytest
from sqlalchemy import select

from preservation.audit.codes import code_of
from preservation.audit.repair import quarantine_key, repair_incidents
from preservation.audit.runner import AuditRequest, run_audit
from preservation.catalog.events import verify_chain
from preservation.catalog.models import AipVersion, Copy, EventRow, FileCopy, Incident
from preservation.eventlog import EVENTS_DIR
from preservation.repository import Repository
from tests.audit.builders import (
    build_aip,
    content,
    delete,
    flip_byte,
    place_replica,
    read_object,
    truncate,
)
from tests.audit.conftest import log_rows
from tests.support.seaweedfs import SeaweedFS

FILES = {f"doc-{i}.bin": content(i, 4000 + 17 * i) for i in range(6)}
FLIPPED, DELETED, TRUNCATED = "data/doc-0.bin", "data/doc-1.bin", "data/doc-2.bin"


def _setup(
    request: pytest.FixtureRequest, kind: str
) -> tuple[Repository, str, str, SeaweedFS | None]:
    """(repo, AIP, damaged store, SeaweedFS server when the damaged store is S3)."""
    if kind == "local":
        repo: Repository = request.getfixturevalue("repo")
        damaged, server = "primary", None  # repaired from the local offsite store
    else:
        repo = request.getfixturevalue("s3_repo")
        damaged, server = "offsite", request.getfixturevalue("seaweedfs")  # from the primary
    aip = build_aip(repo, FILES)
    place_replica(repo, aip, "offsite")
    key = lambda p: f"{aip}/v1/{p}"  # noqa: E731
    flip_byte(repo, damaged, key(FLIPPED), server)
    delete(repo, damaged, key(DELETED))
    truncate(repo, damaged, key(TRUNCATED), 1000, server)
    return repo, aip, damaged, server


@pytest.mark.parametrize("kind", ["local", pytest.param("seaweedfs", marks=pytest.mark.seaweedfs)])
def test_audit_finds_and_repair_restores(request: pytest.FixtureRequest, kind: str) -> None:
    repo, aip, damaged, _ = _setup(request, kind)

    # -- full audit: each problem with its own code, on the damaged store only
    (full,) = run_audit(repo, AuditRequest(store=damaged, mode="full", aip=aip))
    assert full.checked == 6 + 6  # payload + tag files (bagit, bag-info, 2 manifests, 2 tagm.)
    assert full.outcomes == {"pass": 9, "mismatch": 1, "missing": 1, "size": 1}
    found = {i["path"]: i["kind"] for i in full.incidents}
    assert found == {FLIPPED: "mismatch", DELETED: "missing", TRUNCATED: "size"}
    assert all(i["severity"] == "error" and i["new"] for i in full.incidents)
    (clean,) = run_audit(repo, AuditRequest(store=_other(damaged), mode="full", aip=aip))
    assert clean.outcomes == {"pass": 12} and not clean.incidents

    with repo.catalog.session() as s:
        fc = {
            path: (outcome, detail)
            for path, outcome, detail in s.execute(
                select(_path(), FileCopy.outcome, FileCopy.detail)
                .join(Copy, Copy.id == FileCopy.copy_id)
                .where(FileCopy.store_name == damaged)
            )
        }
        assert fc[FLIPPED][0] == "fail" and fc[FLIPPED][1].startswith(code_of("mismatch"))
        assert fc[DELETED][0] == "missing" and fc[DELETED][1].startswith(code_of("missing"))
        assert fc[TRUNCATED][0] == "fail" and fc[TRUNCATED][1].startswith(code_of("size"))
        # a fixity check event per AIP copy and run, naming the failed files
        events = (
            s.execute(
                select(EventRow).where(EventRow.type == "fixity check", EventRow.aip_id == aip)
            )
            .scalars()
            .all()
        )
        failed_events = [e for e in events if e.outcome == "failure"]
        assert len(failed_events) == 1 and failed_events[0].store_name == damaged
        detail = failed_events[0].outcome_detail
        assert "3 of 12 files failed" in detail
        assert all(p in detail for p in (FLIPPED, DELETED, TRUNCATED))

    # -- inventory: the missing and the truncated object (a flipped byte keeps the size)
    (inv,) = run_audit(repo, AuditRequest(store=damaged, mode="inventory", aip=aip))
    assert inv.outcomes == {"pass": 10, "missing": 1, "size": 1}
    assert {i["path"] for i in inv.incidents} == {DELETED, TRUNCATED}
    assert not any(i["new"] for i in inv.incidents)  # the same incidents, seen again

    # -- the Parquet log has one row per check, with the right outcome and code
    rows = log_rows(repo)
    full_rows = {r["path"]: r for r in rows if r["run_id"] == full.run_id}
    assert len(full_rows) == 12 == len([r for r in rows if r["run_id"] == full.run_id])
    assert full_rows[FLIPPED]["outcome"] == "mismatch"
    assert full_rows[FLIPPED]["code"] == "AUD004"
    assert full_rows[FLIPPED]["expected"] == hashlib.sha256(FILES["doc-0.bin"]).hexdigest()
    assert full_rows[FLIPPED]["actual"] != full_rows[FLIPPED]["expected"]
    assert full_rows[DELETED]["outcome"] == "missing" and full_rows[DELETED]["actual"] is None
    assert full_rows[TRUNCATED]["outcome"] == "size" and full_rows[TRUNCATED]["actual_size"] == 1000
    assert {r["store"] for r in full_rows.values()} == {damaged}
    inv_rows = [r for r in rows if r["run_id"] == inv.run_id]
    assert {r["outcome"] for r in inv_rows} == {"pass", "missing", "size"}

    # -- repair from the other store
    bad_flipped = read_object(repo, damaged, f"{aip}/v1/{FLIPPED}")
    bad_truncated = read_object(repo, damaged, f"{aip}/v1/{TRUNCATED}")
    report = repair_incidents(repo)
    assert report.ok and report.count("repaired") == 3, report.to_dict()
    for r in report.results:
        assert r.source == _other(damaged)
    for path, data in FILES.items():
        assert read_object(repo, damaged, f"{aip}/v1/data/{path}") == data
    by_path = {r.path: r for r in report.results}
    store = repo.store(damaged)
    # quarantined, never deleted: the bad bytes are still there
    q_flip = quarantine_key(by_path[FLIPPED].incident, f"{aip}/v1/{FLIPPED}")
    q_trunc = quarantine_key(by_path[TRUNCATED].incident, f"{aip}/v1/{TRUNCATED}")
    assert by_path[FLIPPED].quarantine_key == q_flip
    assert read_object(repo, damaged, q_flip) == bad_flipped
    assert read_object(repo, damaged, q_trunc) == bad_truncated
    assert by_path[DELETED].quarantine_key is None
    assert not list(store.list(f"quarantine/{by_path[DELETED].incident}/"))

    with repo.catalog.session() as s:
        incidents = s.execute(select(Incident)).scalars().all()
        assert {i.state for i in incidents} == {"repaired"}
        assert all(i.closed_at is not None for i in incidents)
        assert {i.evidence["repair"]["source"] for i in incidents} == {_other(damaged)}
        repairs = (
            s.execute(
                select(EventRow).where(
                    EventRow.type == "replication",
                    EventRow.aip_id == aip,
                    EventRow.detail.like("repair%"),
                )
            )
            .scalars()
            .all()
        )
        assert len(repairs) == 3 and {e.outcome for e in repairs} == {"success"}
        assert all(e.store_name == damaged for e in repairs)
        assert any(q_flip in e.detail for e in repairs)
        assert verify_chain(s).ok
        outcomes = set(
            s.execute(select(FileCopy.outcome).where(FileCopy.store_name == damaged)).scalars()
        )
        assert outcomes == {"pass"}

    # the events are also on the stores, beside the AIP
    event_keys = [i.key for i in store.list(f"{aip}/{EVENTS_DIR}/")]
    assert len(event_keys) >= 5  # fixity checks of both stores, inventory, 3 repairs

    # a new full audit of the repaired store passes
    (again,) = run_audit(repo, AuditRequest(store=damaged, mode="full", aip=aip))
    assert again.outcomes == {"pass": 12} and not again.incidents


def test_no_good_copy_is_critical(repo: Repository) -> None:
    aip = build_aip(repo, FILES)
    place_replica(repo, aip, "offsite")
    key = f"{aip}/v1/{FLIPPED}"
    flip_byte(repo, "primary", key)
    flip_byte(repo, "offsite", key, offset=10)
    (run,) = run_audit(repo, AuditRequest(store="primary", mode="full", aip=aip))
    assert [i["kind"] for i in run.incidents] == ["mismatch"]
    report = repair_incidents(repo)
    assert not report.ok and report.count("critical") == 1
    result = report.results[0]
    assert "NO GOOD COPY LEFT" in result.detail
    with repo.catalog.session() as s:
        by_store = {i.store_name: i for i in s.execute(select(Incident)).scalars()}
    # the source found bad during repair opened its own incident
    assert set(by_store) == {"primary", "offsite"}
    primary = by_store["primary"]
    assert primary.state == "open" and primary.severity == "critical"
    assert primary.note is not None and primary.note.startswith("NO GOOD COPY LEFT")
    assert primary.evidence["repair"]["attempts"][0]["verified_now"] == "mismatch"
    # the damaged object was left where it was: nothing moved, nothing quarantined
    assert read_object(repo, "primary", key) != FILES["doc-0.bin"]
    assert not list(repo.primary.list("quarantine/"))
    assert report.alert is not None and report.alert["logged"]


def _other(store: str) -> str:
    return "offsite" if store == "primary" else "primary"


def _path() -> object:
    from preservation.catalog.models import File

    return select(File.path).where(File.id == FileCopy.file_id).scalar_subquery()


def test_pending_copies_are_not_audited(repo: Repository) -> None:
    """The audit never touches a pending copy (replication's queue)."""
    aip = build_aip(repo, FILES)
    (run,) = run_audit(repo, AuditRequest(store="offsite", mode="full", aip=aip))
    assert run.checked == 0
    with repo.catalog.session() as s:
        states = set(
            s.execute(
                select(Copy.state)
                .join(AipVersion, AipVersion.id == Copy.version_id)
                .where(Copy.store_name == "offsite")
            ).scalars()
        )
    assert states == {"pending"}


@pytest.mark.seaweedfs
def test_inventory_compares_the_checksum_an_s3_store_keeps(s3_repo: Repository) -> None:
    aip = build_aip(s3_repo, FILES)
    place_replica(s3_repo, aip, "offsite")
    key = f"{aip}/v1/data/doc-3.bin"
    other = bytes(reversed(FILES["doc-3.bin"]))  # same size, other bytes: a wrong upload
    s3_repo.store("offsite").put(key, io.BytesIO(other), size=len(other), overwrite=True)
    (inv,) = run_audit(s3_repo, AuditRequest(store="offsite", mode="inventory", aip=aip))
    assert inv.outcomes == {"pass": 11, "checksum": 1}
    (incident,) = inv.incidents
    assert incident["kind"] == "checksum" and incident["path"] == "data/doc-3.bin"
    rows = [r for r in log_rows(s3_repo) if r["run_id"] == inv.run_id]
    assert "sha256" in {r["algorithm"] for r in rows}  # the store's own checksum, no read
    bad = [r for r in rows if r["outcome"] == "checksum"]
    assert bad and bad[0]["code"] == "AUD005"
    assert bad[0]["actual"] == hashlib.sha256(other).hexdigest()
    assert repair_incidents(s3_repo).ok
    assert read_object(s3_repo, "offsite", key) == FILES["doc-3.bin"]
