"""The helpers other packages call: files in bulk, copies, summaries, the job journal."""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from preservation import config as cfg
from preservation.catalog.db import Catalog
from preservation.catalog.events import append_event, verify_chain
from preservation.catalog.models import File, FileCopy, Job, StoreRow, sync_stores
from preservation.catalog.queries import (
    add_copy,
    add_files_batched,
    aip_summary,
    due_file_copies,
    find_aip_by_payload_key,
    get_aip,
    get_job,
    require_aip,
    set_job_state,
    start_job,
    unfinished_jobs,
)
from preservation.catalog.record import record_ingest
from preservation.errors import NotInCatalog, UsageError
from preservation.model import Agent, Event, FileEntry, FormatInfo
from tests.catalog.factories import add_aip, add_store, file_rows, sha256_hex


def test_twenty_thousand_files_go_in_lazily_in_batches(catalog: Catalog) -> None:
    produced = 0
    seen_at_insert: list[int] = []

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal produced
        for row in file_rows(20_000):
            produced += 1
            yield row

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO FILES"):
            seen_at_insert.append(produced)

    with catalog.session() as s:
        _, version = add_aip(s)
        version_id = version.id
    event.listen(catalog.engine, "before_cursor_execute", on_execute)
    try:
        with catalog.session() as s:
            assert add_files_batched(s, version_id, rows(), batch_size=1000) == 20_000
    finally:
        event.remove(catalog.engine, "before_cursor_execute", on_execute)
    # never more than one batch read ahead of what was inserted
    assert seen_at_insert and max(seen_at_insert) == 20_000
    assert seen_at_insert[0] == 1000
    assert sorted(set(seen_at_insert)) == list(range(1000, 20_001, 1000))
    with catalog.session() as s:
        assert s.execute(select(func.count()).select_from(File)).scalar_one() == 20_000
        row = s.execute(select(File).where(File.path == "data/docs/012345.pdf")).scalar_one()
    assert (row.size, row.sha256, row.origin_version, row.kind) == (
        12345,
        sha256_hex("data/docs/012345.pdf"),
        1,
        "payload",
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"path": "data/a", "kind": "payload", "size": 1, "sha256": "0" * 64, "colour": 1},
            "unknown",
        ),
        ({"path": "data/a", "kind": "payload", "size": 1}, "missing"),
    ],
)
def test_bad_file_rows_are_refused(catalog: Catalog, row: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message), catalog.session() as s:
        _, version = add_aip(s)
        add_files_batched(s, version.id, [row])


def test_files_of_an_unknown_version_are_refused(catalog: Catalog) -> None:
    with pytest.raises(NotInCatalog), catalog.session() as s:
        add_files_batched(s, 424242, file_rows(1))


def test_get_and_require_aip(catalog: Catalog) -> None:
    with catalog.session() as s:
        aip, _ = add_aip(s)
        aip_id = aip.id
    with catalog.session() as s:
        assert get_aip(s, "no-such-aip") is None
        found = get_aip(s, aip_id)
        assert found is not None and found.id == aip_id
        with pytest.raises(NotInCatalog) as info:
            require_aip(s, "no-such-aip")
    assert info.value.code == "CAT002"


def test_duplicates_are_found_by_payload_key_and_reference_code(catalog: Catalog) -> None:
    key = sha256_hex("payload")
    with catalog.session() as s:
        first, _ = add_aip(s, reference_code="A-1", payload_key=key)
        add_aip(s, reference_code=None, payload_key=key)
        add_aip(s, reference_code="A-2", payload_key=key, state="deleted")
        first_id = first.id
    with catalog.session() as s:
        dup = find_aip_by_payload_key(s, key, "A-1")
        assert dup is not None and dup.id == first_id
        unlabelled = find_aip_by_payload_key(s, key, None)
        assert unlabelled is not None and unlabelled.reference_code is None
        assert find_aip_by_payload_key(s, key, "A-2") is None  # deleted AIPs do not count
        assert find_aip_by_payload_key(s, sha256_hex("other"), "A-1") is None


def test_job_journal(catalog: Catalog) -> None:
    with catalog.session() as s:
        ingest = start_job(s, "ingest", {"source": "/in/t1"})
        given = start_job(
            s,
            "ingest",
            {"source": "/in/t2"},
            job_id="0000aaaa-0000-4000-8000-000000000000",
            host="worker-7",
            pid=4242,
        )
        audit = start_job(s, "audit", {"store": "primary"})
    assert given == "0000aaaa-0000-4000-8000-000000000000"
    with catalog.session() as s:
        open_ingests = unfinished_jobs(s, "ingest")
        assert [j["id"] for j in open_ingests] == [ingest, given]
        assert open_ingests[1]["host"] == "worker-7" and open_ingests[1]["pid"] == 4242
        assert open_ingests[0]["params"] == {"source": "/in/t1"}
        assert {j["id"] for j in unfinished_jobs(s)} == {ingest, given, audit}
        created = open_ingests[0]["updated_at"]
        set_job_state(s, ingest, "staging")
        set_job_state(s, ingest, "done", result={"aip": "x"})
        set_job_state(s, given, "failed", error="checks refused the transfer")
        set_job_state(s, audit, "cancelled")
    with catalog.session() as s:
        assert unfinished_jobs(s, "ingest") == []
        assert unfinished_jobs(s) == []
        done = get_job(s, ingest)
        failed = get_job(s, given)
    assert done is not None and failed is not None
    assert done["state"] == "done" and done["result"] == {"aip": "x"}
    assert done["updated_at"] >= created and done["updated_at"].tzinfo == dt.UTC
    assert failed["error"] == "checks refused the transfer"


def test_job_helpers_refuse_bad_input(catalog: Catalog) -> None:
    with catalog.session() as s:
        with pytest.raises(NotInCatalog):
            set_job_state(s, "no-such-job", "done")
        job = start_job(s, "ingest")
        with pytest.raises(UsageError):
            set_job_state(s, job, "exploded")
        assert s.execute(select(Job.state)).scalar_one() == "running"


def _config(tmp_path: Path, extra: str = "") -> cfg.Config:
    text = cfg.default_toml() + extra
    return cfg.Config(tmp_path, cfg.parse_settings(tomllib.loads(text), "test.toml"))


def test_sync_stores_mirrors_the_configuration(catalog: Catalog, tmp_path: Path) -> None:
    cold = '\n[stores.vault]\ntype = "local"\npath = "v"\nsite = "site-c"\ncold = true\n'
    with catalog.session() as s:
        assert sync_stores(s, _config(tmp_path, cold)) == ["offsite", "primary", "vault"]
    with catalog.session() as s:
        rows = {r.name: r for r in s.execute(select(StoreRow)).scalars()}
        assert rows["primary"].role == "primary" and rows["offsite"].site == "site-b"
        assert rows["vault"].cold and rows["vault"].kind == "local"
        assert all(r.configured for r in rows.values())
        created = rows["vault"].created_at
    with catalog.session() as s:
        sync_stores(s, _config(tmp_path))  # vault removed from the configuration
    with catalog.session() as s:
        rows = {r.name: r for r in s.execute(select(StoreRow)).scalars()}
        assert not rows["vault"].configured and rows["primary"].configured
    with catalog.session() as s:
        sync_stores(s, _config(tmp_path, cold))
    with catalog.session() as s:
        vault = s.get(StoreRow, "vault")
        assert vault is not None and vault.configured and vault.created_at == created


def test_copies_and_due_files_least_recently_verified_first(catalog: Catalog) -> None:
    now = dt.datetime.now(dt.UTC)
    with catalog.session() as s:
        add_store(s, "primary")
        add_store(s, "offsite", site="site-b", role="replica")
        aip, version = add_aip(s)
        add_files_batched(s, version.id, file_rows(5))
        stored = add_copy(s, version.id, "primary", state="stored")
        add_copy(s, version.id, "offsite")  # pending: not audited yet
        fcs = list(
            s.execute(
                select(FileCopy).where(FileCopy.copy_id == stored.id).order_by(FileCopy.id)
            ).scalars()
        )
        assert len(fcs) == 5 and {fc.store_name for fc in fcs} == {"primary"}
        fcs[0].last_verified_at, fcs[0].outcome = now - dt.timedelta(days=100), "pass"
        fcs[1].last_verified_at, fcs[1].outcome = now - dt.timedelta(days=200), "pass"
        fcs[2].last_verified_at, fcs[2].outcome = now - dt.timedelta(days=1), "pass"
        ids = [fc.id for fc in fcs]
        aip_id = aip.id
    cutoff = now - dt.timedelta(days=90)
    with catalog.session() as s:
        due = due_file_copies(s, "primary", cutoff, limit=10)
        assert [d.file_copy_id for d in due] == [ids[3], ids[4], ids[1], ids[0]]
        assert due[0].aip_id == aip_id and due[0].version == 1 and due[0].path.startswith("data/")
        assert due[2].last_verified_at is not None and due[2].last_verified_at.tzinfo == dt.UTC
        assert [d.file_copy_id for d in due_file_copies(s, "primary", cutoff, limit=3)] == [
            ids[3],
            ids[4],
            ids[1],
        ]
        assert due_file_copies(s, "offsite", cutoff, limit=10) == []  # pending copy
        with pytest.raises(UsageError):
            add_copy(s, 1, "primary", state="lost")


def _entries() -> list[FileEntry]:
    pdf = FormatInfo("fmt/354", "application/pdf", "PDF/A-1b", "1b", "signature")
    return [
        FileEntry(
            path=f"docs/{i}.pdf",
            size=100 + i,
            digests={"sha256": sha256_hex(str(i)), "sha512": "f" * 128},
            format=pdf,
            record_row=2 + i,
        )
        for i in range(3)
    ]


def test_record_ingest_writes_everything_in_one_transaction(catalog: Catalog) -> None:
    software = Agent("preservation/0.1.0", "preservation", "software", "0.1.0")
    events = [
        Event("ingestion start", "success", agents=[(software.identifier, "executing program")]),
        Event("message digest calculation", "success", detail="sha256, sha512"),
    ]
    tags = {
        "bagit.txt": ({"sha256": sha256_hex("bagit")}, 55),
        "metadata/mets.xml": ({"sha256": sha256_hex("mets"), "sha512": "e" * 128}, 9000),
        "tagmanifest-sha256.txt": ({"sha256": sha256_hex("tagmanifest")}, 300),
    }
    with catalog.session() as s:
        add_store(s, "primary")
        add_store(s, "offsite", site="site-b", role="replica")
        job = start_job(s, "ingest", {"source": "/in"})
    with catalog.session() as s:
        record_ingest(
            s,
            aip_id="6f1c0f4e-0000-4000-8000-000000000001",
            job_id=job,
            reference_code="Z109-WS·2011-Y-BGS-0001",
            transfer_name="t1",
            descriptive={"title": "通知", "fonds": "Z109", "year": "2011", "retention": "Y"},
            payload_key=sha256_hex("payload"),
            entries=iter(_entries()),
            tag_files=tags,
            primary_store="primary",
            replica_stores=["offsite"],
            events=events,
            agents=[software],
            batch_size=2,
            record_codes={2: "Z109-WS·2011-Y-BGS-0001", 3: "Z109-WS·2011-Y-BGS-0002"},
        )
    with catalog.session() as s:
        summary = aip_summary(s, "6f1c0f4e-0000-4000-8000-000000000001")
        assert verify_chain(s).ok
        assert unfinished_jobs(s) == []
    assert summary["aip"]["year"] == 2011 and summary["aip"]["title"] == "通知"
    (v1,) = summary["versions"]
    assert (v1["number"], v1["reason"], v1["file_count"], v1["byte_count"]) == (1, "ingest", 3, 303)
    assert v1["mets_sha256"] == sha256_hex("mets")
    assert v1["bag_sha256"] == sha256_hex("tagmanifest")
    assert summary["files_total"] == 6 and not summary["files_truncated"]
    payload = [f for f in summary["files"] if f["kind"] == "payload"]
    assert [f["path"] for f in payload] == ["data/docs/0.pdf", "data/docs/1.pdf", "data/docs/2.pdf"]
    assert payload[0]["puid"] == "fmt/354" and payload[0]["format_version"] == "1b"
    assert [f["record_reference_code"] for f in payload] == [
        "Z109-WS·2011-Y-BGS-0001",
        "Z109-WS·2011-Y-BGS-0002",
        None,
    ]
    copies = {c["store"]: c for c in summary["copies"]}
    # The primary copy was verified end to end while it was written.
    assert copies["primary"]["state"] == "verified" and copies["offsite"]["state"] == "pending"
    assert copies["primary"]["fixity"] == {"pass": 6}
    assert copies["primary"]["verified_at"] is not None
    assert copies["offsite"]["fixity"] == {"unverified": 6}
    assert [e["type"] for e in summary["events"]] == [
        "ingestion start",
        "message digest calculation",
    ]
    assert summary["events"][0]["version"] == 1


def test_record_ingest_needs_known_stores_and_leaves_nothing_behind(catalog: Catalog) -> None:
    with catalog.session() as s:
        add_store(s, "primary")
    with pytest.raises(NotInCatalog, match="store"), catalog.session() as s:
        record_ingest(
            s,
            aip_id="6f1c0f4e-0000-4000-8000-000000000002",
            job_id=None,
            reference_code=None,
            transfer_name="t2",
            descriptive={},
            payload_key=sha256_hex("p"),
            entries=_entries(),
            tag_files={},
            primary_store="primary",
            replica_stores=["nowhere"],
        )
    with catalog.session() as s:
        assert get_aip(s, "6f1c0f4e-0000-4000-8000-000000000002") is None


def test_summary_limits_the_file_list(catalog: Catalog) -> None:
    with catalog.session() as s:
        aip, version = add_aip(s)
        add_files_batched(s, version.id, file_rows(30))
        append_event(s, Event("replication", "success"), aip_id=aip.id, version_id=version.id)
        aip_id = aip.id
    with catalog.session() as s:
        summary = aip_summary(s, aip_id, file_limit=10)
        with pytest.raises(NotInCatalog):
            aip_summary(s, "no-such-aip")
    assert len(summary["files"]) == 10 and summary["files_total"] == 30
    assert summary["files_truncated"]
    assert summary["events"][0]["type"] == "replication"
