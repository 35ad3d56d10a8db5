"""End-to-end ingest: every kind of transfer becomes a valid AIP, bad input leaves nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import bagit
import pytest

from preservation.bags.profile import validate_profile
from preservation.bags.validate import validate_bag
from preservation.catalog import queries as q
from preservation.catalog.events import verify_chain
from preservation.catalog.models import Aip, Copy
from preservation.catalog.recovery_queries import version_events
from preservation.errors import DuplicateTransfer, IngestRefused
from preservation.eventlog import event_key, publish_recorded
from preservation.ingest.pipeline import IngestRequest, Receipt, run_ingest
from preservation.metadata.mets_reader import read_mets
from preservation.metadata.xsd import validate_mets
from preservation.repository import Repository, init_repository
from tests.support import transfers as tr
from tests.support.seaweedfs import SeaweedFS


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return init_repository(tmp_path / "repo", organization="Test Archive")


def store_keys(repo: Repository, name: str = "primary") -> list[str]:
    return sorted(i.key for i in repo.store(name).list(""))


def ingest(repo: Repository, source: Path, **kw: object) -> Receipt:
    return run_ingest(repo, IngestRequest(source=source, **kw))  # type: ignore[arg-type]


def check_aip(repo: Repository, receipt: Receipt, tmp_path: Path) -> Path:
    """Export the stored AIP to a folder and validate it every way we know."""
    assert receipt.aip
    out = tmp_path / f"export-{receipt.aip}"
    prefix = f"{receipt.aip}/v1/"
    store = repo.primary
    for info in store.list(prefix):
        target = out / info.key.removeprefix(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        with store.open(info.key) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    bagit.Bag(str(out)).validate()
    report = validate_bag(out)
    assert report.valid, [f.message for f in report.errors]
    assert validate_mets(out / "metadata" / "mets.xml") == []
    assert validate_profile(out) == []
    assert (out / "metadata" / "report.json").is_file()
    assert (out / "metadata" / "report.html").is_file()
    return out


def kinds(tmp_path: Path, kind: str, with_sheet: bool) -> tuple[Path, Path | None]:
    folder, sheet, _ = tr.make_scanned_transfer(tmp_path / "in", "T01", items=3, pages=2)
    if kind == "zip":
        source = tr.zip_folder(folder)
    elif kind == "tar.gz":
        source = tr.tar_folder(folder, compression="gz")
    elif kind == "tar.zst":
        source = tr.tar_folder(folder, compression="zst")
    elif kind == "bag":
        source = tr.make_bag(folder, checksums=("sha256", "sha512"))
    else:
        source = folder
    return source, sheet if with_sheet else None


@pytest.mark.parametrize("with_sheet", [True, False], ids=["sheet", "no-sheet"])
@pytest.mark.parametrize("kind", ["folder", "zip", "tar.gz", "tar.zst", "bag"])
def test_ingest_each_kind(repo: Repository, tmp_path: Path, kind: str, with_sheet: bool) -> None:
    source, sheet = kinds(tmp_path, kind, with_sheet)
    receipt = ingest(repo, source, sheet=sheet, submitter="tester")
    assert receipt.files == 6
    assert receipt.items == (3 if with_sheet else 0)
    out = check_aip(repo, receipt, tmp_path)

    mets = read_mets(out / "metadata" / "mets.xml")
    assert mets.aip_id == receipt.aip
    assert len(mets.files) == 6
    assert all(f.format and f.format.puid == "fmt/353" for f in mets.files)  # TIFF
    event_types = {e.type for e in mets.events}
    assert {
        "ingestion start",
        "ingestion end",
        "message digest calculation",
        "format identification",
        "validation",
        "virus check",
    } <= event_types
    if kind == "bag":
        assert "fixity check" in event_types
        assert (out / "metadata" / "submission").is_dir()
    if with_sheet:
        assert len(mets.records) == 3

    with repo.catalog.session() as s:
        aip = s.get(Aip, receipt.aip)
        assert aip is not None and aip.current_version == 1
        copies = {c.store_name: c.state for c in s.query(Copy).all()}
        assert copies == {"primary": "verified", "offsite": "pending"}
        assert verify_chain(s).ok
    assert not [k for k in store_keys(repo) if k.startswith(".staging")]
    assert store_keys(repo, "offsite") == []


def test_dry_run_writes_nothing(repo: Repository, tmp_path: Path) -> None:
    folder, sheet, _ = tr.make_scanned_transfer(tmp_path / "in")
    receipt = ingest(repo, folder, sheet=sheet, dry_run=True)
    assert receipt.dry_run and receipt.aip is None and receipt.files == 6
    assert store_keys(repo) == []
    with repo.catalog.session() as s:
        assert s.query(Aip).count() == 0
        assert q.unfinished_jobs(s) == []
    assert Path(receipt.report).is_file()


def test_duplicate_transfer_refused(repo: Repository, tmp_path: Path) -> None:
    folder = tr.make_folder_transfer(tmp_path / "in")
    first = ingest(repo, folder, reference_code="Z109-WS·2011-Y-BGS-0001")
    before = store_keys(repo)
    with pytest.raises(DuplicateTransfer) as e:
        ingest(repo, folder, reference_code="Z109-WS·2011-Y-BGS-0001")
    assert e.value.code == "ING002" and first.aip in e.value.message
    assert store_keys(repo) == before
    again = ingest(repo, folder, reference_code="Z109-WS·2011-Y-BGS-0001", allow_duplicate=True)
    assert again.aip != first.aip


def assert_nothing_visible(repo: Repository) -> None:
    assert store_keys(repo) == []
    with repo.catalog.session() as s:
        assert s.query(Aip).count() == 0


def test_row_without_file_blocks_and_leaves_nothing(repo: Repository, tmp_path: Path) -> None:
    folder, _, rows = tr.make_scanned_transfer(tmp_path / "in")
    rows.append(tr.sheet_row(4))
    sheet = tr.write_csv_sheet(tmp_path / "in" / "bad.csv", rows)
    with pytest.raises(IngestRefused) as e:
        ingest(repo, folder, sheet=sheet)
    assert e.value.code == "ING001"
    failed = [f for f in e.value.report.findings if f.result == "fail"]
    assert failed and any(f.row == 5 for f in failed), [f.to_dict() for f in failed]
    assert "report:" in e.value.message
    assert_nothing_visible(repo)


def test_bag_digest_mismatch_blocks(repo: Repository, tmp_path: Path) -> None:
    folder = tr.make_folder_transfer(tmp_path / "in")
    bag = tr.make_bag(folder)
    victim = bag / "data" / "doc-001.txt"
    data = bytearray(victim.read_bytes())
    data[0] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(IngestRefused) as e:
        ingest(repo, bag)
    bad = [f for f in e.value.report.findings if f.result == "fail"]
    assert any(f.file == "doc-001.txt" for f in bad), [f.to_dict() for f in bad]
    assert_nothing_visible(repo)


def test_unsafe_archive_refused_names_member(repo: Repository, tmp_path: Path) -> None:
    evil = tr.hostile_zip(tmp_path / "evil.zip")
    with pytest.raises(Exception) as e:
        ingest(repo, evil)
    assert "evil" in str(e.value) or "../" in str(e.value)
    assert getattr(e.value, "exit_status", 0) == 3
    assert_nothing_visible(repo)


# --------------------------------------------------------------------------- kills


def cli(
    repo: Repository, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "preservation", "--repo", str(repo.root), "--json", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "point",
    [
        "ingest:before-stream",
        "ingest:mid-stream",
        "ingest:before-finalise",
        "ingest:before-commit",
        "ingest:after-commit",
        "ingest:before-publish",
    ],
)
def test_kill_during_ingest_leaves_nothing_and_rerun_succeeds(
    repo: Repository, tmp_path: Path, point: str
) -> None:
    folder, sheet, _ = tr.make_scanned_transfer(tmp_path / "in", items=4, pages=3)
    killed = cli(
        repo,
        "ingest",
        str(folder),
        "--metadata",
        str(sheet),
        env={"PRESERVATION_FAULT_KILL_AT": point},
    )
    assert killed.returncode == -9, killed.stderr
    committed = point in ("ingest:after-commit", "ingest:before-publish")
    with repo.catalog.session() as s:
        assert s.query(Aip).count() == (1 if committed else 0)
    keys = store_keys(repo)
    # No ingest event reached the store's event log: they are published last.
    assert not [k for k in keys if "/events/" in k]
    if point != "ingest:before-publish":
        # No AIP version is declared: bagit.txt is always the last object made final
        # (staging is not a place where AIPs are looked for).
        assert not [k for k in keys if k.endswith("/bagit.txt") and not k.startswith(".staging/")]

    if committed:
        # The catalogue has the AIP: the next run rolls forward instead of back, and
        # publishes the ingest events the crash kept from the store.
        done = cli(repo, "ingest", "--cleanup")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)[0]["completed"]
        keys = store_keys(repo)
        aip = keys[0].split("/")[0]
        assert f"{aip}/v1/bagit.txt" in keys and not [k for k in keys if k.startswith(".")]
        published = [k for k in keys if k.startswith(f"{aip}/events/")]
        with repo.catalog.session() as s:
            assert q.unfinished_jobs(s, "ingest") == []
            recorded = version_events(s, aip, 1)
        assert recorded and len(published) == len(recorded)
        for row in recorded:
            with repo.primary.open(event_key(aip, row.event)) as f:
                doc = json.load(f)
            assert (doc["hash"], doc["prev_hash"]) == (row.hash, row.prev_hash)
        # publishing again (a second roll-forward) rewrites the same documents
        assert publish_recorded(repo, aip, 1, ["primary"]) == []
        assert store_keys(repo) == keys
        return
    ok = cli(repo, "ingest", str(folder), "--metadata", str(sheet))
    assert ok.returncode == 0, ok.stderr
    receipt = json.loads(ok.stdout)
    keys = store_keys(repo)
    aip = receipt["aip"]
    # The AIP and the replication event the CLI's immediate replication published.
    assert keys and all(k.startswith((f"{aip}/v1/", f"{aip}/events/")) for k in keys), keys
    assert f"{aip}/v1/bagit.txt" in keys
    with repo.catalog.session() as s:
        assert s.query(Aip).count() == 1
        assert q.unfinished_jobs(s, "ingest") == []
    check_aip(repo, Receipt(**receipt), tmp_path)


def test_cleanup_command(repo: Repository, tmp_path: Path) -> None:
    folder = tr.make_folder_transfer(tmp_path / "in")
    killed = cli(
        repo, "ingest", str(folder), env={"PRESERVATION_FAULT_KILL_AT": "ingest:before-commit"}
    )
    assert killed.returncode == -9
    assert store_keys(repo)  # leftovers until the next run
    done = cli(repo, "ingest", "--cleanup")
    assert done.returncode == 0, done.stderr
    cleaned = json.loads(done.stdout)
    assert len(cleaned) == 1 and cleaned[0]["objects_removed"] > 0
    assert store_keys(repo) == []


# --------------------------------------------------------------------------- S3 primary


@pytest.fixture
def s3_repo(tmp_path: Path, seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> Repository:
    from preservation import config as cfg
    from preservation.repository import upgrade_catalog

    server = seaweedfs
    bucket = server.make_bucket(f"primary-{uuid.uuid4().hex[:16]}")
    monkeypatch.setenv("TEST_S3_ACCESS", server.access_key)
    monkeypatch.setenv("TEST_S3_SECRET", server.secret_key)
    root = tmp_path / "s3repo"
    root.mkdir()
    (root / cfg.CONFIG_NAME).write_text(
        f"""
[repository]
organization = "Test Archive"

[stores.primary]
type = "s3"
bucket = "{bucket}"
prefix = "aips"
endpoint_url = "{server.endpoint_url}"
region = "us-east-1"
addressing_style = "path"
site = "site-a"
role = "primary"
access_key_env = "TEST_S3_ACCESS"
secret_key_env = "TEST_S3_SECRET"

[stores.offsite]
type = "local"
path = "stores/offsite"
site = "site-b"
""",
        encoding="utf-8",
    )
    repo = Repository(cfg.load(root))
    upgrade_catalog(repo)
    return repo


@pytest.mark.seaweedfs
@pytest.mark.parametrize("kind", ["folder", "zip", "bag"])
def test_ingest_into_s3_primary(s3_repo: Repository, tmp_path: Path, kind: str) -> None:
    source, sheet = kinds(tmp_path, kind, with_sheet=True)
    receipt = ingest(s3_repo, source, sheet=sheet)
    out = check_aip(s3_repo, receipt, tmp_path)
    assert len(list((out / "data").rglob("*.tif"))) == 6
    keys = store_keys(s3_repo)
    # the AIP and, beside it, its ingest events' chain documents
    mine = (f"{receipt.aip}/v1/", f"{receipt.aip}/events/")
    assert keys and all(k.startswith(mine) for k in keys)
    assert [k for k in keys if k.startswith(f"{receipt.aip}/events/")]
    head = s3_repo.primary.head(f"{receipt.aip}/v1/metadata/mets.xml")
    assert head.sha256  # the S3 store keeps the full-object sha256


@pytest.mark.seaweedfs
def test_s3_refused_ingest_leaves_nothing(s3_repo: Repository, tmp_path: Path) -> None:
    folder, _, rows = tr.make_scanned_transfer(tmp_path / "in")
    rows.append(tr.sheet_row(4))
    sheet = tr.write_csv_sheet(tmp_path / "bad.csv", rows)
    with pytest.raises(IngestRefused):
        ingest(s3_repo, folder, sheet=sheet)
    assert_nothing_visible(s3_repo)
