"""Cells that a spreadsheet shows as text: no formula injection (CSV or XLSX export).

Metadata is stored exactly as received (a title ``=HYPERLINK(...)`` stays that text in
the catalogue and the METS). Only when a value leaves as a spreadsheet cell does it get
a leading apostrophe, OWASP's advice against CSV injection, if it starts with a
character that Excel, LibreOffice or Google Sheets read as the start of a formula or a
command: ``=``, ``+``, ``-``, ``@``, a tab, a carriage return or a line feed, and their
full-width forms ``＝ ＋ － ＠`` (which Excel on CJK systems accepts as well). Leading
spaces do not hide the character (``"  =1+1"`` is neutralised too). Plain numbers such
as ``-12`` or ``+3.5`` are left alone so that figures stay figures.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

FORMULA_STARTS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


class _Writer(Protocol):
    def writerow(self, row: Iterable[Any], /) -> Any: ...


def is_dangerous(text: str) -> bool:
    """True when a spreadsheet could evaluate ``text`` (see the module docstring)."""
    stripped = text.lstrip(" ")
    if not stripped or stripped[0] not in FORMULA_STARTS:
        return False
    return _NUMBER.fullmatch(text.strip()) is None


def safe_cell(value: object) -> str:
    """``value`` as cell text, with a leading apostrophe if it could be a formula."""
    text = "" if value is None else str(value)
    return "'" + text if is_dangerous(text) else text


def safe_row(row: Sequence[object]) -> list[str]:
    return [safe_cell(v) for v in row]


def write_rows(writer: _Writer, rows: Iterable[Sequence[object]]) -> None:
    """Write rows with a ``csv.writer`` (or anything with ``writerow``), every cell safe."""
    for row in rows:
        writer.writerow(safe_row(row))


__all__ = ["FORMULA_STARTS", "is_dangerous", "safe_cell", "safe_row", "write_rows"]
