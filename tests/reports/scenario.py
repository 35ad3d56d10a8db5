"""A repository with known activity for the report tests: every number the
statistics report must show is counted here as the activity happens.

- T01: 2 scanned items (2 pages each, 300 dpi greyscale TIFFs) with their sheet;
- T02: a volume (卷) row with one item under it, 3 text files;
- T03: a BMP page (at risk: migrated to TIFF, a new version) without a sheet;
- T04: refused (the sheet lists an item whose folder is missing);
- T02 again: refused as a duplicate;
- every AIP replicated to the off-site store, a full audit of both stores; a byte
  flipped on the off-site copy, found by a second audit and repaired;
- access-log rows by role, one of them from the year before (outside the period).
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preservation.errors import DuplicateTransfer, IngestRefused
from preservation.ingest.pipeline import IngestRequest, ingest_and_replicate
from preservation.repository import Repository, init_repository
from tests.support import transfers as tr


@dataclass
class Expected:
    transfers: int = 0
    met: int = 0
    refused: int = 0
    duplicates: int = 0
    aips: list[str] = field(default_factory=list)
    items: int = 0
    volumes: int = 0
    files: int = 0
    bytes: int = 0
    pages: int = 0
    images: int = 0
    scans: int = 0
    fixity_checks: dict[str, int] = field(default_factory=dict)
    fixity_failed: dict[str, int] = field(default_factory=dict)
    access: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def _bmp(seed: int) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (24, 16), (seed % 256, 80, 160))
    buf = io.BytesIO()
    image.save(buf, format="BMP")
    return buf.getvalue()


def _payload(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def build(tmp: Path, catalog_url: str | None = None) -> tuple[Repository, Expected]:
    """The repository (SQLite catalogue, or the database at ``catalog_url``)."""
    repo = init_repository(tmp / "repo", organization="Test Archive")
    if catalog_url is not None:
        from preservation.config import CONFIG_NAME
        from preservation.repository import open_repository, upgrade_catalog

        path = repo.root / CONFIG_NAME
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace('url = "sqlite:///catalog.sqlite"', f'url = "{catalog_url}"'),
                        encoding="utf-8")  # fmt: skip
        repo = open_repository(repo.root)
        upgrade_catalog(repo)
    exp = Expected()

    def accept(folder: Path, sheet: Path | None) -> str:
        receipt = ingest_and_replicate(
            repo, IngestRequest(source=folder, sheet=sheet, submitter="tester")
        )
        assert receipt.aip is not None and receipt.replication and receipt.replication["ok"]
        n, size = _payload(folder)
        assert (receipt.files, receipt.bytes) == (n, size)
        exp.transfers += 1
        exp.met += 1
        exp.aips.append(receipt.aip)
        exp.files += n
        exp.bytes += size
        exp.items += receipt.items
        exp.volumes += receipt.volumes
        return receipt.aip

    # T01: 2 items x 2 scanned pages
    folder, sheet, _rows = tr.make_scanned_transfer(tmp / "in", "T01", items=2, pages=2)
    accept(folder, sheet)
    exp.pages += 4
    exp.images += 4
    exp.scans += 4

    # T02: one volume row and one item row, text files
    t02 = tr.write_files(
        tmp / "in" / "T02",
        {"vol/a.txt": tr.content(1), "vol/b.txt": tr.content(2), "item/c.txt": tr.content(3)},
    )
    vol = tr.sheet_row(1, path="vol", level="卷", volume="1")
    item = tr.sheet_row(2, path="item")
    t02_sheet = tr.write_csv_sheet(tmp / "in" / "T02.csv", [vol, item])
    accept(t02, t02_sheet)

    # T03: a BMP page (not a scan: BMP is not a digitised-page format) and a text file
    t03 = tr.write_files(tmp / "in" / "T03", {"page.bmp": _bmp(3), "note.txt": tr.content(9)})
    exp.extra["bmp_aip"] = accept(t03, None)
    exp.pages += 1
    exp.images += 1

    # T04: refused, the sheet lists an item with no files
    t04, t04_sheet, rows = tr.make_scanned_transfer(tmp / "in", "T04", items=2, pages=1)
    rows.append(tr.sheet_row(3, pages=1))
    tr.write_csv_sheet(t04_sheet, rows)
    try:
        ingest_and_replicate(repo, IngestRequest(source=t04, sheet=t04_sheet, submitter="x"))
    except IngestRefused:
        exp.transfers += 1
        exp.refused += 1
    else:
        raise AssertionError("T04 was not refused")

    # T02 again: a duplicate
    try:
        ingest_and_replicate(repo, IngestRequest(source=t02, sheet=t02_sheet, submitter="x"))
    except DuplicateTransfer:
        exp.transfers += 1
        exp.duplicates += 1
    else:
        raise AssertionError("the second T02 was not refused as a duplicate")
    return repo, exp


def migrate_bmp(repo: Repository, exp: Expected) -> None:
    from preservation.formats.migrate import run_migrations

    report = run_migrations(repo, aip_id=exp.extra["bmp_aip"], person="conservator")
    assert report.to_dict()["migrated"] == 1, report.to_dict()


def audit_all(repo: Repository) -> dict[str, int]:
    """A full audit of every store; returns the checks per store."""
    from preservation.audit.runner import AuditRequest, run_audit

    checked: dict[str, int] = {}
    for store in ("primary", "offsite"):
        for summary in run_audit(repo, AuditRequest(store=store, mode="full", ahead=True)):
            checked[store] = checked.get(store, 0) + summary.checked
    return checked


def add_access(repo: Repository, exp: Expected, now: dt.datetime) -> None:
    from preservation.catalog.access_models import AccessLogEntry

    rows = [
        ("alice", "reader", "view", 200, False, now),
        ("alice", "reader", "view", 200, False, now),
        ("alice", "reader", "download", 200, False, now),
        ("bob", "archivist", "download", 200, True, now),
        ("bob", "archivist", "export", 200, True, now),
        ("carol", "reader", "download", 403, True, now),  # refused: not a download
        ("dave", "reader", "download", 200, False, now - dt.timedelta(days=400)),  # before
    ]
    with repo.catalog.session() as s:
        for user, role, action, status, restricted, at in rows:
            s.add(
                AccessLogEntry(
                    at=at, user_name=user, role=role, action=action, status=status,
                    restricted=restricted, aip_id=exp.aips[0],
                )
            )


def damage_and_repair(repo: Repository, exp: Expected) -> dict[str, int]:
    """Flip a byte of one payload object on the off-site store, audit it (found), repair
    it; returns the failed checks per store."""
    from preservation.audit.repair import repair_incidents
    from preservation.audit.runner import AuditRequest, run_audit
    from tests.audit.builders import flip_byte

    aip = exp.aips[0]
    listing = repo.store("offsite").list(f"{aip}/v1/data/")
    key = next(i.key for i in listing if i.key.endswith(".tif"))
    flip_byte(repo, "offsite", key)
    failed = 0
    checked = 0
    for summary in run_audit(repo, AuditRequest(store="offsite", mode="full", ahead=True)):
        failed += summary.failures
        checked += summary.checked
    report = repair_incidents(repo)
    assert report.to_dict()["repaired"] == 1, report.to_dict()
    exp.extra["damaged_key"] = key
    return {"offsite": checked, "failed": failed}
