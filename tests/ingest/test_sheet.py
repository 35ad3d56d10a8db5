"""The catalogue sheet (reading, DA/T 70 checks, linking), reference codes, the register."""

from __future__ import annotations

import json
import runpy
import zipfile
from collections.abc import Sequence
from pathlib import Path

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from preservation.config import IngestSettings
from preservation.errors import RegisterUnreadable, SheetUnreadable
from preservation.ingest import refcode
from preservation.ingest.findings import Finding
from preservation.ingest.receive import TransferFile, receive
from preservation.ingest.register import TransferRegister, check_register, read_register
from preservation.ingest.sheet import (
    check_sheet,
    header_key,
    load_vocabularies,
    parse_date,
    read_sheet,
)
from preservation.model import ARCHIVAL_FIELDS, Record
from tests.ingest.conftest import codes, only
from tests.support import transfers as T


def tfiles(*paths: str, size: int = 10) -> list[TransferFile]:
    return [TransferFile(p, p, size, Path("/nowhere") / p) for p in paths]


def pages_of(n: int, count: int = 2) -> list[str]:
    code = T.item_code(n)
    return [f"{code}/{code}-{p:04d}.tif" for p in range(1, count + 1)]


def run(
    tmp_path: Path,
    rows: list[dict[str, str]],
    files: list[TransferFile],
    settings: IngestSettings | None = None,
    columns: Sequence[str] = T.SHEET_COLUMNS,
) -> tuple[list[Finding], list[Record]]:
    sheet = read_sheet(T.write_csv_sheet(tmp_path / "sheet.csv", rows, columns=columns))
    return check_sheet(sheet, files, settings or IngestSettings())


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("kind", ["csv-utf8-bom", "csv-gb18030", "xlsx"])
def test_scanned_pages_and_their_sheet_pass(
    tmp_path: Path, settings: IngestSettings, kind: str
) -> None:
    folder, sheet_path, _ = T.make_scanned_transfer(
        tmp_path,
        items=3,
        pages=2,
        sheet="xlsx" if kind == "xlsx" else "csv",
        encoding="gb18030" if kind == "csv-gb18030" else "utf-8-sig",
    )
    transfer = receive(folder, tmp_path / "staging", settings)
    sheet = read_sheet(sheet_path)
    assert sheet.format == kind.split("-")[0]
    assert sheet.encoding == {"csv-utf8-bom": "utf-8-sig", "csv-gb18030": "gb18030"}.get(kind)
    assert sheet.header_row == 1 and len(sheet.records) == 3
    first = sheet.records[0]
    assert first.row == 2 and first.reference_code == T.item_code(1)
    assert first.fields["title"] == "关于第1号事项的通知" and first.fields["item_number"] == "1"
    findings, records = check_sheet(sheet, transfer.files, settings)
    assert findings == []
    assert [r.files for r in records] == [pages_of(n) for n in (1, 2, 3)]
    assert records is sheet.records  # linked in the sheet's own table, on disk


def test_english_headers_tab_delimiter_title_rows_and_no_bom(tmp_path: Path) -> None:
    rows = [T.sheet_row(1)]
    path = T.write_csv_sheet(
        tmp_path / "s.tsv", rows, encoding="utf-8", english=True, delimiter="\t",
        title_rows=["文书档案目录", ""],
    )  # fmt: skip
    sheet = read_sheet(path)
    assert (sheet.encoding, sheet.header_row) == ("utf-8", 3)
    (rec,) = sheet.records
    assert rec.row == 4 and rec.fields["reference_code"] == T.item_code(1)
    assert header_key(" 机构（问题） ") == "unit" and header_key("档号*") == "reference_code"
    assert header_key("Reference_Code") == "reference_code" and header_key("页码") is None


def test_unknown_and_duplicate_columns(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(
        "序号,档号,全宗号,颜色,档号\n1,Z109-WS·2011-Y-BGS-0001,Z109,红,X\n", encoding="utf-8"
    )
    sheet = read_sheet(path)
    found = {f.result: f for f in only(sheet.findings, "SHEET-002")}
    assert "'颜色'" in found["warn"].message and found["warn"].row == 1
    assert "'档号' and '档号'" in found["fail"].message
    assert sheet.records[0].reference_code == "Z109-WS·2011-Y-BGS-0001"


def test_undecodable_csv_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes("档号,题名\nZ1,标题\n".encode() + b"Z2,\xff\xff\n")
    with pytest.raises(SheetUnreadable) as e:
        read_sheet(path)
    (f,) = e.value.findings
    assert f.code == "SHEET-001" and "bad.csv" in f.message
    assert "line 3" in f.message and "UTF-8" in str(e.value) and e.value.code == "SHT001"


def test_unreadable_sheets(tmp_path: Path) -> None:
    no_header = tmp_path / "n.csv"
    no_header.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(SheetUnreadable, match="no header row"):
        read_sheet(no_header)
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100))
    with pytest.raises(SheetUnreadable, match=r"legacy \.xls"):
        read_sheet(xls)


def test_xlsx_formula_like_cells_are_kept_literally_and_flagged(tmp_path: Path) -> None:
    rows = [
        T.sheet_row(1, title='=HYPERLINK("http://127.0.0.1/x","点击")'),
        T.sheet_row(2, notes="+1 见附件", creator="@SUM(A1)"),
        T.sheet_row(3, notes="-"),
    ]
    path = T.write_xlsx_sheet(tmp_path / "s.xlsx", rows)
    sheet = read_sheet(path)
    assert sheet.records[0].fields["title"] == '=HYPERLINK("http://127.0.0.1/x","点击")'
    flagged = sorted((f.row, f.details["column"]) for f in only(sheet.findings, "SHEET-003"))
    assert flagged == [(2, "title"), (3, "creator"), (3, "notes"), (4, "notes")]
    msg = next(f.message for f in sheet.findings if f.row == 2)
    assert "row 2, column 题名" in msg and "never evaluated" in msg
    assert all(f.result == "warn" for f in sheet.findings)


def test_xlsx_external_link_is_flagged(tmp_path: Path) -> None:
    path = T.add_external_link(T.write_xlsx_sheet(tmp_path / "s.xlsx", [T.sheet_row(1)]))
    sheet = read_sheet(path)
    ext = only(sheet.findings, "SHEET-004")
    assert ext and all(f.result == "fail" and f.property == "security" for f in ext)
    assert any("file:///C:/机密/other.xlsx" in f.message for f in ext)
    assert sheet.records[0].reference_code == T.item_code(1)


def test_xlsx_with_a_dtd_is_refused(tmp_path: Path) -> None:
    path = T.write_xlsx_sheet(tmp_path / "s.xlsx", [T.sheet_row(1)])
    evil = tmp_path / "evil.xlsx"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(evil, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/workbook.xml":
                assert not data.startswith(b"<?xml")
                data = b'<!DOCTYPE x [<!ENTITY a "aaaaaaaa">]>' + data
            dst.writestr(info, data)
    with pytest.raises(SheetUnreadable, match=r"xl/workbook\.xml declares a DTD"):
        read_sheet(evil)


def test_xlsx_other_worksheets_are_reported(tmp_path: Path) -> None:
    path = T.write_xlsx_sheet(
        tmp_path / "s.xlsx", [T.sheet_row(1)], extra_sheets={"卷内目录": [["档号"], ["x"]]}
    )
    (f,) = read_sheet(path).findings
    assert f.code == "SHEET-028" and "'卷内目录'" in f.message


# --------------------------------------------------------------------------- values


def test_mandatory_columns_and_values(tmp_path: Path) -> None:
    columns = [c for c in T.SHEET_COLUMNS if c not in ("creator", "security_level")]
    rows = [T.sheet_row(1, title=""), T.sheet_row(2)]
    findings, _ = run(tmp_path, rows, tfiles(*pages_of(1), *pages_of(2)), columns=columns)
    missing = only(findings, "SHEET-006")
    assert sorted(f.details["column"] for f in missing) == ["creator", "security_level"]
    assert all(f.row == 1 and f.result == "fail" for f in missing)
    assert "责任者 (creator)" in missing[0].message or "责任者 (creator)" in missing[1].message
    (empty,) = only(findings, "SHEET-007")
    assert (empty.row, empty.details["column"]) == (2, "title") and "题名" in empty.message


def test_malformed_values_name_their_row(tmp_path: Path) -> None:
    rows = [
        T.sheet_row(1, reference_code="Z109/WS/2011/0001"),  # row 2: malformed
        T.sheet_row(2, reference_code="Z109-WS・2011-Y-BGS-0002"),  # row 3: variant dot
        T.sheet_row(3, year="2012"),  # row 4: inconsistent with the code
        T.sheet_row(4, date="20110230"),  # row 5: not a calendar date
        T.sheet_row(5, date="2011/03/01"),  # row 6: wrong form
        T.sheet_row(6, year="11", reference_code="Z109-WS·11-Y-BGS-0006"),  # row 7
        T.sheet_row(7, pages="两页"),  # row 8
        T.sheet_row(8, security_level="超密", open_status="随便"),  # row 9
        T.sheet_row(9, title="标题\x0b含控制符", item_number="九"),  # row 10
        T.sheet_row(10, security_level="机密", open_status="开放"),  # row 11
        T.sheet_row(11, level="册"),  # row 12
        T.sheet_row(12, retention="定期10年"),  # row 13: code says Y
    ]
    files = [p for n in range(1, 13) for p in pages_of(n)]
    files[2:4] = ["Z109-WS・2011-Y-BGS-0002/x.tif"]
    findings, _ = run(tmp_path, rows, tfiles(*files))
    by = {(f.code, f.row): f for f in findings}
    assert (
        by[("SHEET-008", 2)].result == "fail"
        and "'Z109/WS/2011/0001'" in by[("SHEET-008", 2)].message
    )
    variant = by[("SHEET-008", 3)]
    assert variant.result == "warn" and "KATAKANA MIDDLE DOT" in variant.message
    assert "年度 2011 (column: 2012)" in by[("SHEET-009", 4)].message
    assert "not a real calendar date" in by[("SHEET-010", 5)].message
    assert "YYYYMMDD or YYYY-MM-DD" in by[("SHEET-010", 6)].message
    assert "'11'" in by[("SHEET-011", 7)].message
    assert "'两页'" in by[("SHEET-012", 8)].message
    vocab = [f for f in findings if f.code == "SHEET-013" and f.row == 9]
    assert sorted(f.details["column"] for f in vocab) == ["open_status", "security_level"]
    assert "U+000B" in by[("SHEET-023", 10)].message
    assert "'九'" in by[("SHEET-026", 10)].message
    assert by[("SHEET-024", 11)].result == "warn" and by[("SHEET-025", 11)].result == "warn"
    assert "'册'" in by[("SHEET-027", 12)].message
    assert "保管期限 Y (column: 定期10年)" in by[("SHEET-009", 13)].message


def test_duplicates_and_gaps_in_numbering(tmp_path: Path) -> None:
    numbers = [1, 2, 2, 5, 6, 9]
    rows = [T.sheet_row(n) for n in numbers]
    files = [p for n in sorted(set(numbers)) for p in pages_of(n)]
    findings, _ = run(tmp_path, rows, tfiles(*files))
    (dup_code,) = only(findings, "SHEET-014")
    assert dup_code.row == 4 and "rows 3 and 4" in dup_code.message
    (dup_number,) = only(findings, "SHEET-016")
    assert "rows 3 and 4 both have 件号 2" in dup_number.message
    gaps = only(findings, "SHEET-015")
    assert [g.message for g in gaps] == [
        "Z109-WS·2011-Y-BGS: 件号 3–4 missing between row 3 (件号 2) and row 5 (件号 5)",
        "Z109-WS·2011-Y-BGS: 件号 7–8 missing between row 6 (件号 6) and row 7 (件号 9)",
    ]
    assert [g.row for g in gaps] == [5, 7]


# --------------------------------------------------------------------------- linking


def test_linking_by_path_column_name_and_folder(tmp_path: Path) -> None:
    c1, c2, c3, c4 = (T.item_code(n) for n in (1, 2, 3, 4))
    rows = [
        T.sheet_row(1, path="docs/one.pdf; docs/one-attachment.pdf"),
        T.sheet_row(2, path="扫描件\\第二件"),  # a folder, Windows separators
        T.sheet_row(3),  # named <档号>.pdf
        T.sheet_row(4, pages="3"),  # a folder named after the code
    ]
    files = tfiles(
        "docs/one.pdf", "docs/one-attachment.pdf", "扫描件/第二件/a.tif", "扫描件/第二件/b.tif",
        f"other/{c3}.pdf", f"{c4}/scan-a.jpg", f"{c4}/scan-b.jpg", f"{c4}/scan-c.jpg",
    )  # fmt: skip
    findings, records = run(tmp_path, rows, files)
    assert findings == []
    assert [r.files for r in records] == [
        ["docs/one-attachment.pdf", "docs/one.pdf"],
        ["扫描件/第二件/a.tif", "扫描件/第二件/b.tif"],
        [f"other/{c3}.pdf"],
        [f"{c4}/scan-a.jpg", f"{c4}/scan-b.jpg", f"{c4}/scan-c.jpg"],
    ]
    assert c1 and c2


def test_rows_without_files_and_files_without_rows(tmp_path: Path) -> None:
    rows = [T.sheet_row(1), T.sheet_row(2, path="missing/file.pdf")]
    stray = T.item_code(7) + "-0001.tif"
    files = tfiles(*pages_of(1), "notes.txt", stray)
    findings, _ = run(tmp_path, rows, files)
    (no_files,) = only(findings, "SHEET-017")
    assert no_files.row == 3 and T.item_code(2) in no_files.message
    (bad_path,) = only(findings, "SHEET-020")
    assert (bad_path.row, bad_path.file) == (3, "missing/file.pdf")
    orphans = {f.file: f for f in only(findings, "SHEET-018")}
    assert set(orphans) == {"notes.txt", stray}
    assert f"named like 档号 {T.item_code(7)}" in orphans[stray].message
    assert all(f.property == "integrity" and f.result == "fail" for f in orphans.values())


def test_page_count_shared_files_and_the_sheet_inside_the_payload(tmp_path: Path) -> None:
    code = T.item_code(1)
    rows = [
        T.sheet_row(1, pages="3"),
        T.sheet_row(2, path="attachments/shared.pdf"),
        T.sheet_row(3, path="attachments/shared.pdf"),
    ]
    payload = tmp_path / "payload"
    sheet_path = T.write_csv_sheet(payload / "目录.csv", rows)
    files = tfiles(f"{code}/{code}-0001.tif", f"{code}/{code}-0003.tif", "attachments/shared.pdf")
    files.append(TransferFile("目录.csv", "目录.csv", 1, sheet_path))
    findings, records = check_sheet(read_sheet(sheet_path), files, IngestSettings())
    (pc,) = only(findings, "SHEET-019")
    assert pc.row == 2 and pc.result == "warn"
    assert pc.message == "row 2: 页数 3 but 2 page image(s); page(s) 2 missing"
    (shared,) = only(findings, "SHEET-021")
    assert shared.file == "attachments/shared.pdf" and shared.details["rows"] == [3, 4]
    assert only(findings, "SHEET-018") == []  # 目录.csv is the sheet itself
    assert codes(findings) == ["SHEET-019", "SHEET-021"]
    assert records[1].files == records[2].files == ["attachments/shared.pdf"]


VOLUME_PATTERN = (
    r"(?P<fonds>Z109)-(?P<category>WS)·(?P<year>\d{4})-(?P<retention>Y)-(?P<unit>BGS)"
    r"-(?P<volume>\d{4})(?:-(?P<item>\d{4}))?"
)


def test_volumes_and_their_items(tmp_path: Path) -> None:
    """Volume (卷) rows and items that name their volume by 案卷号 (number or code)."""
    settings = IngestSettings(reference_code_patterns={"Z109": VOLUME_PATTERN})
    vol = "Z109-WS·2011-Y-BGS-0001"

    def item(n: int, volume: str, vol_no: int = 1) -> dict[str, str]:
        return T.sheet_row(
            n, reference_code=f"Z109-WS·2011-Y-BGS-{vol_no:04d}-{n:04d}", volume=volume,
            path=f"卷{vol_no}/件{n}.pdf",
        )  # fmt: skip

    rows = [
        T.sheet_row(1, reference_code=vol, level="卷", item_number="", volume="1", pages="",
                    date="20110101-20111231"),
        item(1, "1"), item(2, vol), item(4, "0001"), item(1, "7", vol_no=7),
    ]  # fmt: skip
    files = tfiles("卷1/件1.pdf", "卷1/件2.pdf", "卷1/件4.pdf", "卷7/件1.pdf")
    findings, records = run(tmp_path, rows, files, settings)
    assert records[0].level == "volume" and records[0].files == []
    assert codes(findings) == ["SHEET-015", "SHEET-022"]  # the volume's items have files
    (unknown,) = only(findings, "SHEET-022")
    assert unknown.row == 6 and "'7'" in unknown.message
    (gap,) = only(findings, "SHEET-015")
    assert gap.message.startswith(f"volume {vol}: 件号 3 missing between row 4")
    rows[1]["volume"] = "2"  # now the code (…-0001-0001) and 案卷号 disagree
    findings, _ = run(tmp_path, rows, files, settings)
    assert any(f.code == "SHEET-009" and "案卷号 0001 (column: 2)" in f.message for f in findings)


# --------------------------------------------------------------------------- register


def test_register_formats(tmp_path: Path) -> None:
    j = tmp_path / "r.json"
    j.write_text(json.dumps({"transfer": "T01", "fonds": "Z109", "items": 3, "files": 6,
                             "bytes": "1,234", "pages": 6}))  # fmt: skip
    r = read_register(j)
    assert (r.transfer, r.fonds, r.items, r.files, r.bytes, r.pages, r.volumes) == (
        "T01", "Z109", 3, 6, 1234, 6, None,
    )  # fmt: skip
    t = tmp_path / "r.toml"
    t.write_text('[register]\n"件数" = 3\nvolumes = 0\n"字节数" = 99\n', encoding="utf-8")
    assert (read_register(t).items, read_register(t).volumes, read_register(t).bytes) == (3, 0, 99)
    wide = tmp_path / "wide.csv"
    wide.write_bytes("全宗号,件数,文件数\nZ109,3,6\n".encode("gb18030"))
    assert (read_register(wide).fonds, read_register(wide).files) == ("Z109", 6)
    tall = tmp_path / "tall.csv"
    tall.write_text("项目,数值\n件数,3\n页数,6\n", encoding="utf-8-sig")
    assert (read_register(tall).items, read_register(tall).pages) == (3, 6)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"items": 3, "colour": "red"}', "unknown key"),
        ('{"items": -1}', "negative"),
        ('{"items": "three"}', "not a whole number"),
        ('{"fonds": "Z109"}', "gives no count"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_registers_are_refused(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "r.json"
    p.write_text(text)
    with pytest.raises(RegisterUnreadable, match=match) as e:
        read_register(p)
    assert e.value.code == "REG001" and "r.json" in str(e.value)


def test_register_totals_checked(tmp_path: Path) -> None:
    rows = [T.sheet_row(1), T.sheet_row(2, pages="3"), T.sheet_row(3, fonds="Z110")]
    files = tfiles(*pages_of(1), *pages_of(2), *pages_of(3), size=100)
    register = TransferRegister(
        path=tmp_path / "登记.json", fonds="Z109", items=4, volumes=0, files=6, bytes=601, pages=7
    )
    sheet = read_sheet(T.write_csv_sheet(tmp_path / "s.csv", rows))
    findings, records = check_sheet(sheet, files, IngestSettings(), register=register)
    reg = {f.code: f for f in findings if f.code.startswith("REG")}
    assert set(reg) == {"REG-002", "REG-005", "REG-007"}
    assert (
        reg["REG-002"].message == "the register (登记.json) declares 4 items (件), the sheet has 3"
    )
    assert reg["REG-005"].details == {"declared": 601, "found": 600, "register": str(register.path)}
    assert reg["REG-007"].row == 4 and "'Z110'" in reg["REG-007"].message
    no_sheet = check_register(register, files, [])
    assert {(f.code, f.result) for f in no_sheet} == {
        ("REG-005", "fail"), ("REG-002", "not performed"), ("REG-003", "not performed"),
        ("REG-006", "not performed"),
    }  # fmt: skip
    ok = TransferRegister(path=register.path, items=3, files=6, bytes=600, pages=7)
    assert check_register(ok, files, records) == []


# --------------------------------------------------------------------------- codes


def test_reference_code_parts_and_overrides() -> None:
    s = IngestSettings(
        reference_code_patterns={"X01": r"(?P<fonds>X01)-(?P<year>\d{4})-(?P<item>\d{3})"}
    )
    c = refcode.parse("Z109-WS·2011-D30-BGS-0042", s)
    assert c is not None
    assert (c.fonds, c.category, c.year, c.retention, c.unit, c.item) == (
        "Z109", "WS", "2011", "D30", "BGS", "0042",
    )  # fmt: skip
    assert c.item_number == 42 and c.group == "Z109-WS·2011-D30-BGS" and c.notes == ()
    no_unit = refcode.parse("Z109-WS·2011-Y-0001", s)
    assert no_unit is not None and no_unit.unit is None and no_unit.group == "Z109-WS·2011-Y"
    x = refcode.parse("X01-2011-007", s)
    assert x is not None and (x.fonds, x.year, x.item_number) == ("X01", "2011", 7)
    assert refcode.parse("X01-2011-0007", s) is None
    assert refcode.parse("Z109-WS·2011-Y-BGS-001", s) is None  # 4 digits at least
    full = refcode.parse("Ｚ１０９－WS．2011—Y-BGS-0001", s)
    assert full is not None and full.canonical == "Z109-WS·2011-Y-BGS-0001"
    assert len(full.notes) == 4


def test_page_names() -> None:
    code = T.item_code(3)
    assert refcode.split_page_name(f"scans/{code}-0012.tif") == (code, 12)
    assert refcode.split_page_name(f"{code}.pdf") is None  # a whole item, no page
    assert refcode.split_page_name("Z109-WS.2011-Y-BGS-0003-0001.jpg") == (code, 1)
    assert refcode.split_page_name("scan-0001.tif") is None
    assert refcode.split_name(f"{code}-0001") == (f"{code}-0001", "")


@hypothesis.settings(deadline=None)  # timing varies on a busy CI machine
@given(
    st.integers(1, 9999), st.integers(1, 9999), st.sampled_from(["tif", "jpg", "jp2", "TIFF"]),
    st.sampled_from(["·", "・", "．", "."]),
)  # fmt: skip
def test_page_names_round_trip(item: int, page: int, ext: str, dot: str) -> None:
    code = T.item_code(item)
    name = f"{code.replace('·', dot)}-{page:04d}.{ext}"
    assert refcode.split_page_name(name) == (code, page)


def test_dates_and_vocabularies() -> None:
    assert parse_date("20110315") == parse_date("2011-03-15") is not None
    assert parse_date("20110229") is None and parse_date("2011-3-15") is None
    vocab = load_vocabularies()
    assert vocab["retention"].lookup("定期30年").code == "D30"  # type: ignore[union-attr]
    assert vocab["retention"].lookup(" y ").label == "永久"  # type: ignore[union-attr]
    assert vocab["security_level"].lookup("无").code == "0"  # type: ignore[union-attr]
    assert vocab["security_level"].lookup("绝密").classified  # type: ignore[union-attr]
    assert vocab["open_status"].lookup("控制使用").code == "KZ"  # type: ignore[union-attr]
    assert vocab["open_status"].lookup("unknown") is None


def test_template_csv_and_generated_xlsx_are_read_as_empty_sheets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schemas = Path(__file__).resolve().parents[2] / "schemas"
    sheet = read_sheet(schemas / "catalogue-sheet-template.csv")
    assert list(sheet.columns) == list(ARCHIVAL_FIELDS)
    assert (sheet.encoding, list(sheet.records), sheet.findings) == ("utf-8-sig", [], [])
    script = runpy.run_path(str(schemas.parent / "scripts" / "make_sheet_template.py"))
    out = tmp_path / "template.xlsx"
    script["main"](out)
    assert str(out) in capsys.readouterr().out
    xlsx = read_sheet(out)
    assert list(xlsx.columns) == list(ARCHIVAL_FIELDS) and xlsx.findings == []
    import openpyxl

    ws = openpyxl.load_workbook(out).worksheets[0]
    lists = {str(dv.sqref): dv.formula1 for dv in ws.data_validations.dataValidation}
    assert lists["D2:D2001"] == '"永久,定期30年,定期10年,长期,短期"'
