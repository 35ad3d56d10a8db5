"""Each bad input of issue 3, through the whole ingest, maps to its codes.

One table: a named transfer builder and the (code, result) pairs it must produce, with
the file, member or row the message must name. Ingest runs for real (not a dry run):
refused transfers must leave nothing in the store or the catalogue.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from pypdf import PdfWriter

from preservation.catalog.models import Aip
from preservation.errors import ArchiveRefused, IngestRefused, PreservationError
from preservation.ingest.pipeline import IngestRequest, run_ingest
from preservation.repository import Repository, init_repository
from tests.support import transfers as tr

Case = tuple[Path, Path | None, Path | None]  # transfer, sheet, register


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    root = tmp_path / "repo"
    init_repository(root)
    # Tight archive limits so that a small generated bomb trips them.
    cfg = root / "preservation.toml"
    text = cfg.read_text(encoding="utf-8").replace(
        'virus_scanner = "none"',
        'virus_scanner = "none"\nmax_archive_bytes = 8388608\nmax_compression_ratio = 50.0',
    )
    cfg.write_text(text, encoding="utf-8")
    from preservation.repository import open_repository

    return open_repository(root)


def scanned(tmp: Path, mutate: Callable[[list[dict[str, str]]], None] | None = None) -> Case:
    folder, sheet, rows = tr.make_scanned_transfer(tmp, "T01", items=3, pages=2)
    if mutate is not None:
        mutate(rows)
        sheet = tr.write_csv_sheet(tmp / "edited.csv", rows)
    return folder, sheet, None


def unsafe_archive(tmp: Path) -> Case:
    return tr.hostile_zip(tmp / "hostile.zip"), None, None


def archive_bomb(tmp: Path) -> Case:
    return tr.zip_bomb(tmp / "bomb.zip", size=32 * 1024 * 1024), None, None


def symlink(tmp: Path) -> Case:
    folder = tr.make_folder_transfer(tmp)
    (folder / "link.txt").symlink_to("/etc/passwd")
    return folder, None, None


def nfc_collision(tmp: Path) -> Case:
    folder = tr.make_folder_transfer(tmp)
    (folder / unicodedata.normalize("NFC", "café.txt")).write_bytes(b"one")
    (folder / unicodedata.normalize("NFD", "café.txt")).write_bytes(b"two")
    return folder, None, None


def case_collision(tmp: Path) -> Case:
    folder = tr.make_folder_transfer(tmp)
    (folder / "Report.txt").write_bytes(b"one")
    (folder / "report.txt").write_bytes(b"two")
    return folder, None, None


def bag_digest_mismatch(tmp: Path) -> Case:
    bag = tr.make_bag(tr.make_folder_transfer(tmp))
    victim = bag / "data" / "doc-002.txt"
    data = bytearray(victim.read_bytes())
    data[3] ^= 0x01
    victim.write_bytes(bytes(data))
    return bag, None, None


def missing_mandatory(tmp: Path) -> Case:
    return scanned(tmp, lambda rows: rows[0].update(title=""))


def malformed_reference(tmp: Path) -> Case:
    return scanned(tmp, lambda rows: rows[1].update(reference_code="Z109/WS/2011/0002"))


def item_gap(tmp: Path) -> Case:
    def gap(rows: list[dict[str, str]]) -> None:
        rows.append(tr.sheet_row(5))  # items 1, 2, 3, 5: 4 is missing (and has no files)

    return scanned(tmp, gap)


def row_without_file(tmp: Path) -> Case:
    return scanned(tmp, lambda rows: rows.append(tr.sheet_row(4)))


def file_without_row(tmp: Path) -> Case:
    return scanned(tmp, lambda rows: rows.pop())


def encrypted_pdf(tmp: Path) -> Case:
    folder = tr.make_folder_transfer(tmp)
    w = PdfWriter()
    w.add_blank_page(width=200, height=200)
    w.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    with (folder / "locked.pdf").open("wb") as f:
        w.write(f)
    return folder, None, None


def register_mismatch(tmp: Path) -> Case:
    folder, sheet, _ = scanned(tmp)
    register = tmp / "register.json"
    register.write_text('{"items": 4, "files": 6}', encoding="utf-8")
    return folder, sheet, register


def xml_external_entity(tmp: Path) -> Case:
    folder = tr.make_folder_transfer(tmp)
    (folder / "xxe.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        "<r>&x;</r>\n",
        encoding="utf-8",
    )
    return folder, None, None


# name: (builder, {(code, result)}, text the messages must contain, blocks ingest)
CASES: dict[str, tuple[Callable[[Path], Case], set[tuple[str, str]], str, bool]] = {
    "unsafe path in an archive": (unsafe_archive, {("ARC-002", "fail")}, "../evil.txt", True),
    "archive bomb": (archive_bomb, {("ARC-009", "fail")}, "zeros.bin", True),
    "symlink": (symlink, {("PATH-002", "fail")}, "link.txt", False),
    "NFC collision": (nfc_collision, {("PATH-005", "fail")}, "café.txt", True),
    "case collision": (case_collision, {("PATH-006", "warn")}, "eport.txt", False),
    "digest mismatch in a supplied bag": (
        bag_digest_mismatch, {("FIX-001", "fail")}, "doc-002.txt", True),
    "missing mandatory field": (missing_mandatory, {("SHEET-007", "fail")}, "题名", True),
    "malformed reference code": (
        malformed_reference, {("SHEET-008", "fail")}, "Z109/WS/2011/0002", True),
    "gap in item numbers": (item_gap, {("SHEET-015", "fail")}, "件号 4 missing", True),
    "row without file": (row_without_file, {("SHEET-017", "fail")}, "0004", True),
    "file without row": (file_without_row, {("SHEET-018", "fail")}, "0003", True),
    "encrypted PDF": (encrypted_pdf, {("OPEN-002", "fail")}, "locked.pdf", False),
    "register mismatch": (register_mismatch, {("REG-002", "fail")}, "4", True),
    "XML with an external entity": (xml_external_entity, {("OPEN-001", "fail")}, "xxe.xml",
                                    False),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(repo: Repository, tmp_path: Path, name: str) -> None:
    build, expected, text, blocks = CASES[name]
    (tmp_path / "in").mkdir()
    source, sheet, register = build(tmp_path / "in")
    request = IngestRequest(source=source, sheet=sheet, register=register)
    findings: list[tuple[str, str, str]]
    try:
        receipt = run_ingest(repo, request)
    except IngestRefused as e:
        assert blocks, f"{name} should not block: {e}"
        assert e.exit_status == 3
        findings = [(f.code, f.result, f"{f.file} {f.row} {f.message}") for f in e.report.findings]
        assert_nothing_stored(repo)
    except ArchiveRefused as e:
        assert blocks and e.exit_status == 3
        findings = [(f.code, f.result, f"{f.file} {f.message}") for f in e.findings]
        assert_nothing_stored(repo)
    except PreservationError as e:  # pragma: no cover - shows what went wrong
        pytest.fail(f"{name}: unexpected {e.code}: {e}")
    else:
        assert not blocks, f"{name} was ingested but should have been refused"
        findings = [(f["code"], f["result"], f"{f.get('file')} {f.get('row')} {f['message']}")
                    for f in receipt.findings]  # fmt: skip
    got = {(c, r) for c, r, _ in findings}
    assert expected <= got, f"{name}: expected {expected}, got {sorted(got)}"
    messages = [m for c, r, m in findings if (c, r) in expected]
    assert any(text in m for m in messages), (name, messages)


def assert_nothing_stored(repo: Repository) -> None:
    assert list(repo.primary.list("")) == []
    with repo.catalog.session() as s:
        assert s.query(Aip).count() == 0
