"""Hostile catalogue sheets: formula injection, external links, wrong encodings.

tests/ingest/test_sheet.py covers an XLSX with formula-like cells read literally
(test_xlsx_formula_like_cells_are_kept_literally_and_flagged), an external link
flagged (test_xlsx_external_link_is_flagged), an XLSX with a DTD refused and an
undecodable CSV naming its line. Here, through ``preservation ingest``: a CSV sheet
with formula cells is stored literally in the AIP's METS and neutralised in the DIP's
records.csv; an external link is never contacted; UTF-16/UTF-32/binary sheets.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preservation.access.dip import export_dip
from preservation.metadata.mets_reader import read_mets
from preservation.metadata.spreadsheet_safe import FORMULA_STARTS, is_dangerous, safe_cell
from preservation.repository import Repository
from tests.hostile.support import finding_files, new_repository, nothing_stored, run_cli
from tests.hostile.test_xml import RecordingServer
from tests.support import transfers as tr

FORMULAS = {
    "title": '=HYPERLINK("http://127.0.0.1:9/x","点击")',
    "creator": "@SUM(1+1)*cmd|' /C calc'!A0",
    "notes": "+1 见附件",
    "document_number": "-2+3",
}


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return new_repository(tmp_path / "repo")


def test_csv_formulas_are_stored_literally_and_neutralised_on_export(
    repo: Repository, tmp_path: Path
) -> None:
    folder, _sheet, rows = tr.make_scanned_transfer(tmp_path, "T01", items=2, pages=1)
    rows[0].update(FORMULAS)
    sheet = tr.write_csv_sheet(tmp_path / "formulas.csv", rows)
    out = run_cli("--repo", str(repo.root), "--json", "ingest", str(folder), "--metadata",
                  str(sheet), "--no-replicate")  # fmt: skip
    assert out.status == 0, out.stdout
    assert finding_files(out)["SHEET-003"]  # flagged, not blocking
    aip = out.data["aip"]
    summary = read_mets(repo.primary.root / aip / "v1" / "metadata" / "mets.xml")  # type: ignore[attr-defined]
    stored = next(r for r in summary.records if r.fields.get("title") == FORMULAS["title"])
    for key, value in FORMULAS.items():
        assert stored.fields[key] == value  # literally, never evaluated or escaped

    export_dip(repo, aip, tmp_path / "dip")
    text = (tmp_path / "dip" / "metadata" / "records.csv").read_text(encoding="utf-8-sig")
    cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
    for value in FORMULAS.values():
        assert "'" + value in cells, value
    assert not [c for c in cells if c and c[0] in FORMULA_STARTS]


def test_external_link_in_xlsx_is_never_followed(repo: Repository, tmp_path: Path) -> None:
    server = RecordingServer()
    try:
        folder, _sheet, rows = tr.make_scanned_transfer(tmp_path, "T01", items=1, pages=1)
        sheet = tr.write_xlsx_sheet(tmp_path / "linked.xlsx", rows)
        tr.add_external_link(sheet, target=f"{server.url}/other.xlsx")
        out = run_cli("--repo", str(repo.root), "--json", "ingest", str(folder), "--metadata",
                      str(sheet), "--no-replicate")  # fmt: skip
        found = finding_files(out)
        assert any(server.url in m for m in found["SHEET-004 message"])
        assert server.requests == []
    finally:
        server.close()


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_refused_naming_the_sheet(
    repo: Repository, tmp_path: Path, encoding: str
) -> None:
    folder, sheet, _rows = tr.make_scanned_transfer(tmp_path, "T01", items=1, pages=1)
    bad = tmp_path / "no-bom.csv"
    bad.write_bytes(sheet.read_text(encoding="utf-8-sig").encode(encoding))
    out = run_cli("--repo", str(repo.root), "ingest", str(folder), "--metadata", str(bad))
    assert out.status == 3 and out.error is not None and out.error.code == "SHT001"
    assert "no-bom.csv" in str(out.error) and "neither UTF-8 nor GB18030" in str(out.error)
    assert nothing_stored(repo)


def test_utf32_with_bom_is_read(repo: Repository, tmp_path: Path) -> None:
    """Regression: the UTF-32-LE BOM starts with the UTF-16-LE one; the sheet was read
    as UTF-16 and refused for 'no header row'."""
    folder, sheet, _rows = tr.make_scanned_transfer(tmp_path, "T01", items=1, pages=1)
    wide = tmp_path / "utf32.csv"
    wide.write_bytes(sheet.read_text(encoding="utf-8-sig").encode("utf-32"))
    out = run_cli("--repo", str(repo.root), "--json", "ingest", str(folder), "--metadata",
                  str(wide), "--no-replicate")  # fmt: skip
    assert out.status == 0, out.stdout


def test_binary_file_as_a_sheet_is_refused(repo: Repository, tmp_path: Path) -> None:
    folder, _sheet, _rows = tr.make_scanned_transfer(tmp_path, "T01", items=1, pages=1)
    junk = tmp_path / "junk.csv"
    junk.write_bytes(bytes(range(256)) * 8)
    out = run_cli("--repo", str(repo.root), "ingest", str(folder), "--metadata", str(junk))
    assert out.status == 3 and out.error is not None and "junk.csv" in str(out.error)
    assert nothing_stored(repo)


# ----------------------------------------------------------------- the shared helper


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("  =1+1", "'  =1+1"),
        ("＝1+1", "'＝1+1"),
        ("-12", "-12"),
        ("+3.5", "+3.5"),
        ("-1e5", "-1e5"),
        ("关于=通知", "关于=通知"),
        ("", ""),
        (None, ""),
        (42, "42"),
    ],
)
def test_safe_cell(value: object, cell: str) -> None:
    assert safe_cell(value) == cell


@given(st.text())
def test_safe_cell_never_leaves_a_formula(text: str) -> None:
    cell = safe_cell(text)
    assert cell == text or cell == "'" + text
    assert not is_dangerous(cell)  # an apostrophe first: shown as text
    stripped = cell.lstrip(" ")
    if stripped and stripped[0] in FORMULA_STARTS:
        float(cell)  # only plain numbers start that way


def test_dip_csv_writer_neutralises_like_the_shared_helper() -> None:
    from preservation.access.dip import write_csv

    values = ["=1+1", "+x", "-x", "@x", "\tx", "\rx", "-12", "plain"]
    buf = io.StringIO()
    write_csv(buf, [values])
    (row,) = csv.reader(io.StringIO(buf.getvalue()))
    assert row == [safe_cell(v) for v in values]


def test_statistics_csv_neutralises_formulas() -> None:
    from preservation.reports.render import render_csv

    text = render_csv({"formats": [{"puid": "=HYPERLINK(\"http://x\")", "files": 1}]})
    cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
    assert not [c for c in cells if c and is_dangerous(c)], cells
