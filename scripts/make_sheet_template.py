"""Write the XLSX catalogue-sheet template from the CSV template and the vocabularies.

    .venv/bin/python scripts/make_sheet_template.py [OUTPUT]

OUTPUT defaults to ``schemas/catalogue-sheet-template.xlsx``. The header row comes from
``schemas/catalogue-sheet-template.csv``; 密级, 保管期限, 开放状态 and 著录层次 get drop-down
lists of their vocabulary labels (``schemas/vocabularies.json``); 档号, 日期, 件号 and 案卷号
are formatted as text so that Excel keeps leading zeros and does not turn dates into
numbers. The file is generated, never committed.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from preservation.ingest.sheet import header_key, load_vocabularies

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
TEXT_COLUMNS = {"reference_code", "date", "item_number", "volume", "year"}
ROWS = 2000  # rows that get the drop-down lists and the text format


def main(out: Path) -> None:
    with (SCHEMAS / "catalogue-sheet-template.csv").open(encoding="utf-8-sig", newline="") as f:
        headers = next(csv.reader(f))
    vocab = load_vocabularies(SCHEMAS / "vocabularies.json")
    lists = {name: [t.label for t in v.terms] for name, v in vocab.items()}
    lists["level"] = ["件", "卷"]

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "目录"
    ws.append(headers)
    ws.freeze_panes = "A2"
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="DDEBF7")
    for col, header in enumerate(headers, 1):
        cell = ws.cell(row=1, column=col)
        cell.font, cell.fill = bold, fill
        letter = get_column_letter(col)
        ws.column_dimensions[letter].width = max(10, 3 * len(header))
        key = header_key(header)
        if key in TEXT_COLUMNS:
            for row in range(2, ROWS + 2):
                ws.cell(row=row, column=col).number_format = "@"
        if key in lists:
            dv = DataValidation(
                type="list",
                formula1='"' + ",".join(lists[key]) + '"',
                allow_blank=True,
                showErrorMessage=True,
            )
            dv.error = f"{header}: choose one of {', '.join(lists[key])}"
            ws.add_data_validation(dv)
            dv.add(f"{letter}2:{letter}{ROWS + 1}")
    out.parent.mkdir(parents=True, exist_ok=True)
    wb.save(out)
    print(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMAS / "catalogue-sheet-template.xlsx")
