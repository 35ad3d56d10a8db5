"""The replication worker on local stores: the queue, skipping what is there, new
versions, corrupt sources, leftovers of killed workers, permanent failures."""

from __future__ import annotations

import io
import os
import socket
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, update

from preservation.catalog import queries as q
from preservation.catalog.models import Copy, File, FileCopy
from preservation.errors import ObjectExists, StoreUnavailable
from preservation.eventlog import EVENTS_DIR
from preservation.repository import Repository
from preservation.storage.local import LocalStore
from preservation.storage.replicate import (
    clear_leftovers,
    process_alive,
    replicate_copy,
    replicate_pending,
)
from tests.replication.helpers import (
    aip_keys,
    copy_states,
    events_of,
    expected_keys,
    ingest_aip,
    local_store,
    replication_jobs,
    small_files,
    write_repo,
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


def _flip(path: Path, offset: int = 0) -> None:
    """XOR one byte in place (stored objects are read-only)."""
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _path(store: LocalStore, key: str) -> Path:
    return store.root.joinpath(*key.split("/"))


def test_ingest_queues_and_replicate_verifies_every_object(
    repo: Repository, tmp_path: Path
) -> None:
    aips = [ingest_aip(repo, tmp_path / "in", f"T{i}", small_files(f"a{i}")) for i in range(3)]
    assert all(copy_states(repo, a)[(1, "offsite")] == "pending" for a in aips)

    report = replicate_pending(repo)

    assert report.ok and report.exit_status == 0
    assert report.count("verified") == 3
    offsite = repo.store("offsite")
    for aip in aips:
        assert copy_states(repo, aip) == {(1, "primary"): "verified", (1, "offsite"): "verified"}
        assert aip_keys(offsite, aip) == expected_keys(repo, aip)
        for key in expected_keys(repo, aip):
            with repo.primary.open(key) as a, offsite.open(key) as b:
                assert a.read() == b.read()
        events = events_of(repo, aip, "replication")
        assert len(events) == 1
        e = events[0]
        assert e.outcome == "success" and e.store_name == "offsite"
        assert "source store primary (site-a)" in e.detail
        assert "target store offsite (site-b)" in e.detail
        assert e.agents == [["preservation/0.1.0", "executing program"]]
        # the event document is on both stores, beside the AIP
        for store in (repo.primary, offsite):
            docs = [k for k in aip_keys(store, aip, events=True) if f"/{EVENTS_DIR}/" in k]
            assert any(e.id in k for k in docs)
    with repo.catalog.session() as s:
        rows = s.execute(
            select(FileCopy.outcome, FileCopy.last_verified_at).where(
                FileCopy.store_name == "offsite"
            )
        ).all()
        verified_at = s.execute(
            select(Copy.verified_at).where(Copy.store_name == "offsite")
        ).scalars()
        assert all(v is not None for v in verified_at)
    assert rows and all(o == "pass" and t is not None for o, t in rows)
    assert {j.state for j in replication_jobs(repo)} == {"done"}

    again = replicate_pending(repo)
    assert again.results == [] and again.ok
    assert all(len(events_of(repo, a, "replication")) == 1 for a in aips)


def test_rerun_copies_only_what_is_missing_and_rehashes_local_objects(
    repo: Repository, tmp_path: Path
) -> None:
    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("x", n=5))
    offsite = repo.store("offsite")
    assert isinstance(offsite, LocalStore)
    # A previous, interrupted run left part of the copy: two objects, one of them
    # with the right size but other bytes.
    keys = sorted(expected_keys(repo, aip))
    payload = [k for k in keys if "/data/" in k]
    for key in payload[:2]:
        with repo.primary.open(key) as src:
            offsite.put(key, src)
    _flip(_path(offsite, payload[1]))

    report = replicate_pending(repo)

    [result] = report.results
    assert result.outcome == "verified"
    assert result.objects == len(keys)
    assert result.present == 1  # the intact one; the altered one was replaced
    assert result.copied == len(keys) - 1
    with repo.primary.open(payload[1]) as a, offsite.open(payload[1]) as b:
        assert a.read() == b.read()


def test_full_readback_mode(tmp_path: Path) -> None:
    repo = write_repo(
        tmp_path / "repo",
        {
            "primary": local_store("stores/primary", "site-a", "primary"),
            "offsite": local_store("stores/offsite", "site-b"),
        },
        readback="full",
    )
    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("full"))
    report = replicate_pending(repo)
    assert report.ok and report.readback == "full"
    [event] = events_of(repo, aip, "replication")
    assert "read-back full" in event.outcome_detail


def test_a_new_version_replicates_only_what_the_replica_lacks(
    repo: Repository, tmp_path: Path
) -> None:
    from preservation.versions import Changes, NewFile, new_version

    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("v", n=6))
    assert replicate_pending(repo).ok
    added = tmp_path / "added.txt"
    added.write_bytes(b"a file added by version 2\n" * 40)
    number = new_version(
        repo,
        aip,
        reason="metadata",
        changes=Changes(add=[NewFile("added.txt", added)], note="test"),
    )
    assert number == 2
    with repo.catalog.session() as s:
        v2 = q.get_version(s, aip, 2)
        files = list(s.execute(select(File).where(File.version_id == v2.id)).scalars())
    carried = [f for f in files if f.origin_version == 1]
    new = [f for f in files if f.origin_version == 2]
    assert len(carried) == 6 and {f.kind for f in carried} == {"payload"}

    report = replicate_pending(repo)

    [result] = report.results
    assert result.outcome == "verified" and result.version == 2
    assert result.copied == len(new)  # the new file and v2's tag files
    assert result.present == len(carried)  # the payload already there under v1/
    assert aip_keys(repo.store("offsite"), aip) == expected_keys(repo, aip)
    assert copy_states(repo, aip)[(2, "offsite")] == "verified"
    assert len(events_of(repo, aip, "replication")) == 2  # one per version and store


def test_a_corrupt_source_object_is_refused_and_taken_from_another_copy(
    tmp_path: Path,
) -> None:
    repo = write_repo(
        tmp_path / "repo",
        {
            "primary": local_store("stores/primary", "site-a", "primary"),
            "offsite": local_store("stores/offsite", "site-b"),
            "vault": local_store("stores/vault", "site-c"),
        },
        copies=3,
        sites=3,
    )
    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("c"))
    assert replicate_pending(repo, store="offsite").ok
    key = sorted(k for k in expected_keys(repo, aip) if "/data/" in k)[0]
    primary = repo.primary
    assert isinstance(primary, LocalStore)
    _flip(_path(primary, key), 5)

    report = replicate_pending(repo, store="vault")

    [result] = report.results
    assert result.outcome == "verified", result.error
    assert result.sources == ["primary", "offsite"]
    with repo.store("vault").open(key) as got, repo.store("offsite").open(key) as good:
        assert got.read() == good.read()
    [event] = events_of(repo, aip, "replication")[-1:]
    assert "primary (site-a), offsite (site-b)" in event.detail


def test_a_corrupt_only_source_fails_the_copy_once(repo: Repository, tmp_path: Path) -> None:
    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("bad"))
    primary = repo.primary
    assert isinstance(primary, LocalStore)
    key = sorted(k for k in expected_keys(repo, aip) if "/data/" in k)[0]
    _flip(_path(primary, key))

    report = replicate_pending(repo, retry_base_delay=0.01)

    [result] = report.results
    assert result.outcome == "failed"
    assert result.error is not None and result.error.code == "FIX001"
    assert report.exit_status == 4
    assert copy_states(repo, aip)[(1, "offsite")] == "failed"
    # not declared on the replica, and the corrupt bytes never reached it
    offsite = repo.store("offsite")
    assert not offsite.exists(f"{aip}/v1/bagit.txt")
    assert not offsite.exists(key)
    [event] = events_of(repo, aip, "replication")
    assert event.outcome == "failure" and "FIX001" in event.outcome_detail

    again = replicate_pending(repo, retry_base_delay=0.01)
    assert again.results[0].outcome == "failed"
    assert len(events_of(repo, aip, "replication")) == 1  # not one per attempt
    jobs = replication_jobs(repo)
    assert [j.state for j in jobs] == ["failed", "failed"]
    assert all(j.error and j.error.startswith("FIX001") for j in jobs)


def test_no_verified_source_is_a_clear_failure(repo: Repository, tmp_path: Path) -> None:
    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("n"))
    with repo.catalog.session() as s:
        s.execute(update(Copy).where(Copy.store_name == "primary").values(state="missing"))
    [result] = replicate_pending(repo, aip=aip).results
    assert result.outcome == "failed"
    assert result.error is not None and result.error.code == "REP001"


def test_a_replica_store_added_later_gets_every_version(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    stores = {
        "primary": local_store("stores/primary", "site-a", "primary"),
        "offsite": local_store("stores/offsite", "site-b"),
    }
    repo = write_repo(root, stores)
    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("late"))
    assert replicate_pending(repo).ok
    repo.catalog.dispose()
    stores["later"] = local_store("stores/later", "site-c")
    repo = write_repo(root, stores)

    report = replicate_pending(repo)

    assert report.enqueued == 1
    assert [r.store for r in report.results] == ["later"]
    assert copy_states(repo, aip)[(1, "later")] == "verified"


def test_killed_worker_is_recognised_and_its_leftovers_cleared(
    repo: Repository, tmp_path: Path
) -> None:
    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("k"))
    offsite = repo.store("offsite")
    assert isinstance(offsite, LocalStore)
    key = sorted(k for k in expected_keys(repo, aip) if "/data/" in k)[0]
    folder = _path(offsite, key).parent
    folder.mkdir(parents=True)
    leftover = folder / f".{Path(key).name}.tmp-{uuid.uuid4().hex}"
    leftover.write_bytes(b"half an object")
    unrelated = folder / f".other.txt.tmp-{uuid.uuid4().hex}"
    unrelated.write_bytes(b"not ours")
    with repo.catalog.session() as s:
        copy_id = s.execute(select(Copy.id).where(Copy.store_name == "offsite")).scalar_one()
        dead = q.start_job(
            s,
            "replication",
            {"copy_id": copy_id, "version": 1, "store": "offsite"},
            aip_id=aip,
            host=socket.gethostname(),
            pid=_dead_pid(),
        )

    report = replicate_pending(repo)

    assert report.ok
    assert not leftover.exists()
    assert unrelated.exists()
    with repo.catalog.session() as s:
        job = q.get_job(s, dead)
    assert job is not None and job["state"] == "failed"
    assert "interrupted" in (job["error"] or "")


def test_a_copy_held_by_a_live_worker_is_skipped(repo: Repository, tmp_path: Path) -> None:
    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("live"))
    with repo.catalog.session() as s:
        copy_id = s.execute(select(Copy.id).where(Copy.store_name == "offsite")).scalar_one()
        q.start_job(
            s,
            "replication",
            {"copy_id": copy_id, "version": 1, "store": "offsite"},
            aip_id=aip,
        )  # this process: alive
    result = replicate_copy(repo, copy_id)
    assert result.outcome == "skipped" and "being replicated" in result.note
    assert copy_states(repo, aip)[(1, "offsite")] == "pending"


def test_clear_leftovers_never_touches_finished_objects(tmp_path: Path) -> None:
    store = LocalStore("s", "site", tmp_path / "s")
    store.put("a/v1/x.txt", io.BytesIO(b"done"))
    with pytest.raises(ObjectExists):
        store.put("a/v1/x.txt", io.BytesIO(b"again"))
    assert clear_leftovers(store, ["a/v1/x.txt", "a/v1/missing.txt", "b/y"]) == 0
    with store.open("a/v1/x.txt") as f:
        assert f.read() == b"done"


def test_process_alive() -> None:
    host = socket.gethostname()
    assert process_alive(host, os.getpid())
    assert not process_alive(host, _dead_pid())
    assert not process_alive(host, None)
    assert process_alive("another-host.example", 1)  # cannot be checked: assumed alive
    assert not process_alive(None, None)


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                       capture_output=True, text=True, check=True)  # fmt: skip
    return int(p.stdout)


def test_unknown_store_or_primary_is_refused(repo: Repository) -> None:
    from preservation.errors import ConfigError, NotInCatalog, UsageError

    with pytest.raises(ConfigError):
        replicate_pending(repo, store="nowhere")
    with pytest.raises(UsageError):
        replicate_pending(repo, store="primary")
    with pytest.raises(NotInCatalog):
        replicate_pending(repo, aip=str(uuid.uuid4()))


def test_a_store_that_is_down_leaves_copies_queued_and_is_not_retried_in_the_run(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aips = [ingest_aip(repo, tmp_path / "in", f"T{i}", small_files(f"d{i}")) for i in range(3)]
    offsite = repo.store("offsite")
    calls = []

    def down(*args: object, **kwargs: object) -> None:
        calls.append(1)
        raise StoreUnavailable(store="offsite", reason="connection refused")

    monkeypatch.setattr(offsite, "put", down)
    report = replicate_pending(repo, retry_base_delay=0.001)

    assert [r.outcome for r in report.results] == ["waiting", "skipped", "skipped"]
    assert report.stores_down == {"offsite": "offsite: unavailable (connection refused)"}
    assert report.exit_status == 5
    assert len(calls) <= 3 * 4  # the object attempts of the first copy only
    assert all(copy_states(repo, a)[(1, "offsite")] == "pending" for a in aips)
    assert not any(events_of(repo, a, "replication") for a in aips)
    [job] = replication_jobs(repo)
    assert job.state == "failed" and (job.error or "").startswith("STO003")

    monkeypatch.undo()
    assert replicate_pending(repo).count("verified") == 3


def test_an_interrupt_closes_the_job_and_keeps_the_copy_queued(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("int"))

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(repo.store("offsite"), "put", interrupt)
    with pytest.raises(KeyboardInterrupt):
        replicate_pending(repo, workers=1)
    assert copy_states(repo, aip)[(1, "offsite")] == "pending"
    [job] = replication_jobs(repo)
    assert job.state == "failed" and "interrupted" in (job.error or "")
    assert not events_of(repo, aip, "replication")


def test_a_source_that_is_down_makes_copies_wait_not_fail(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aips = [ingest_aip(repo, tmp_path / "in", f"T{i}", small_files(f"s{i}")) for i in range(2)]

    def down(key: str) -> None:
        raise StoreUnavailable(store="primary", reason="connection refused")

    monkeypatch.setattr(repo.primary, "head", down)
    report = replicate_pending(repo)

    assert [r.outcome for r in report.results] == ["waiting", "waiting"]
    assert all(r.error is not None and r.error.code == "STO003" for r in report.results)
    assert "primary" in report.stores_down
    assert all(copy_states(repo, a)[(1, "offsite")] == "pending" for a in aips)


def test_a_version_is_walked_page_by_page_against_the_listing(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files come from the catalogue a page at a time and are looked up in the target's
    listing (kept in a scratch database) a chunk at a time; objects the listing lacks or
    lists with another size cost no request before they are written; leftovers of a
    killed worker are cleared page by page too."""
    from preservation.faults import checkpoint
    from preservation.storage import replicate as rep

    monkeypatch.setattr(rep, "FILE_PAGE", 4)
    monkeypatch.setattr(rep, "LOOKUP_CHUNK", 3)
    monkeypatch.setattr(rep, "LIST_CHUNK", 2)
    monkeypatch.setattr(rep, "LEFTOVER_PAGE", 5)
    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("p", n=14))
    offsite = repo.store("offsite")
    assert isinstance(offsite, LocalStore)
    keys = sorted(expected_keys(repo, aip))
    payload = [k for k in keys if "/data/" in k]
    present, short = payload[1::3], payload[2::3]  # the others are absent
    for key in present + short:
        with repo.primary.open(key) as src:
            offsite.put(key, src)
    for key in short:  # listed with another size: replaced without a head
        path = _path(offsite, key)
        path.chmod(0o644)
        path.write_bytes(path.read_bytes()[:-1])
    leftovers = []
    for key in (payload[-1], keys[0]):
        folder = _path(offsite, key).parent
        folder.mkdir(parents=True, exist_ok=True)
        leftovers.append(folder / f".{Path(key).name}.tmp-{uuid.uuid4().hex}")
        leftovers[-1].write_bytes(b"half an object")
    with repo.catalog.session() as s:
        copy_id = s.execute(select(Copy.id).where(Copy.store_name == "offsite")).scalar_one()
        q.start_job(
            s,
            "replication",
            {"copy_id": copy_id, "version": 1, "store": "offsite"},
            aip_id=aip,
            host=socket.gethostname(),
            pid=_dead_pid(),
        )
    heads: list[str] = []
    head = offsite.head

    def counted(key: str) -> object:
        heads.append(key)
        return head(key)

    monkeypatch.setattr(offsite, "head", counted)
    points: list[str] = []

    def noted(name: str) -> None:
        points.append(name)
        checkpoint(name)

    monkeypatch.setattr(rep, "checkpoint", noted)

    report = replicate_pending(repo, workers=2)

    [result] = report.results
    assert result.outcome == "verified", result.error
    assert result.objects == len(keys)
    assert result.present == len(present)
    assert result.copied == len(keys) - len(present)
    assert not any(p.exists() for p in leftovers)
    assert aip_keys(offsite, aip) == set(keys)
    for key in keys:
        with repo.primary.open(key) as a, offsite.open(key) as b:
            assert a.read() == b.read()
    # one head per object: to check a present one (then rehashed), to read back a
    # written one; none before writing an absent or wrongly sized one
    assert sorted(heads) == keys
    assert points.count("replicate:mid-copy") == 1
    assert points[-2:] == ["replicate:before-declare", "replicate:before-commit"]
