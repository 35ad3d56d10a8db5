#!/usr/bin/env python3
"""atheris (libFuzzer) target: the catalogue-sheet reader (CSV and XLSX bytes).

The first byte of an input chooses the kind: even, the rest is a CSV file as is; odd,
the rest is split at ``\\x00--\\x00`` into new contents for the parts
``xl/worksheets/sheet1.xml``, ``xl/workbook.xml``, ``xl/_rels/workbook.xml.rels``,
``[Content_Types].xml`` and ``xl/styles.xml`` of a small valid workbook (made once with
openpyxl), which is zipped and read. :func:`preservation.ingest.sheet.read_sheet` must
return rows or raise one of our errors (SHT001 naming the file): any other exception is
a finding.

Run it (from the top of the checkout, in the virtual environment)::

    .venv/bin/python scripts/fuzz/fuzz_sheet.py --make-seeds fuzz-corpus/sheet
    mkdir -p fuzz-findings
    .venv/bin/python scripts/fuzz/fuzz_sheet.py fuzz-corpus/sheet -max_total_time=28800 \\
        -jobs=2 -workers=2 -timeout=20 -rss_limit_mb=2048 -artifact_prefix=fuzz-findings/
    .venv/bin/python scripts/fuzz/fuzz_sheet.py fuzz-findings/crash-...   # replay

Every libFuzzer flag works (``-help=1``). The test suite runs it for a few seconds
(tests/fuzz/test_atheris.py).
"""

from __future__ import annotations

import io
import sys
import tempfile
import zipfile
from pathlib import Path

import atheris
import openpyxl

with atheris.instrument_imports(include=["preservation"]):
    from preservation.errors import PreservationError
    from preservation.ingest.sheet import read_sheet

SEPARATOR = b"\x00--\x00"
XLSX_PARTS = (
    "xl/worksheets/sheet1.xml",
    "xl/workbook.xml",
    "xl/_rels/workbook.xml.rels",
    "[Content_Types].xml",
    "xl/styles.xml",
)
HEADER = "档号,全宗号,年度,保管期限,件号,题名,责任者,日期,页数,密级,开放状态"
ROW = "Z109-WS·2011-Y-BGS-0001,Z109,2011,永久,1,=HYPERLINK(\"x\"),办公室,20110302,2,公开,开放"
_WORK = Path(tempfile.mkdtemp(prefix="fuzz-sheet-"))


def _template() -> dict[str, bytes]:

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(HEADER.split(","))
    ws.append(ROW.split(","))
    buf = io.BytesIO()
    wb.save(buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        return {name: z.read(name) for name in z.namelist()}


TEMPLATE = _template()


def build(data: bytes) -> Path:
    """The sheet file for one input."""
    if not data or data[0] % 2 == 0:
        path = _WORK / "sheet.csv"
        path.write_bytes(data[1:])
        return path
    parts = dict(TEMPLATE)
    for name, content in zip(XLSX_PARTS, data[1:].split(SEPARATOR), strict=False):
        parts[name] = content
    path = _WORK / "sheet.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in parts.items():
            z.writestr(name, content)
    return path


def check(data: bytes) -> None:
    path = build(data)
    try:
        sheet = read_sheet(path)
    except PreservationError as e:
        assert path.name in str(e), str(e)
        return
    for record in sheet.records:
        assert all(isinstance(v, str) for v in record.fields.values())


def TestOneInput(data: bytes) -> None:
    check(data)


def seed_inputs() -> dict[str, bytes]:
    csv_text = f"{HEADER}\n{ROW}\n"
    xlsx = b"\x01" + SEPARATOR.join(TEMPLATE[name] for name in XLSX_PARTS)
    return {
        "csv-utf8-bom": b"\x00" + "\ufeff".encode() + csv_text.encode("utf-8"),
        "csv-gb18030": b"\x00" + csv_text.encode("gb18030"),
        "csv-utf16": b"\x00" + csv_text.encode("utf-16"),
        "csv-tabs": b"\x00" + csv_text.replace(",", "\t").encode("utf-8"),
        "xlsx": xlsx,
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from driver import main

    main(sys.argv, TestOneInput, seed_inputs, _WORK)
