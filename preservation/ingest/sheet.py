"""The catalogue sheet (目录): read it, check it (DA/T 70), link its rows to files.

:func:`read_sheet` reads a CSV or XLSX sheet into :class:`~preservation.model.Record`
rows; :func:`check_sheet` runs every catalogue check and links rows to payload files.
The columns, accepted header spellings, value formats and linking rules are documented
in ``schemas/catalogue-sheet.md``; the controlled values in ``schemas/vocabularies.json``.

Reading. The type is decided by content: a zip package is XLSX, anything else is read
as CSV text. CSV: UTF-8 (with or without BOM) or UTF-16/32 with BOM, else GB18030 (what
Excel writes on Chinese Windows); a file that is neither names the first bad byte and
its line. The delimiter (comma, tab or semicolon) and the header row (one of the first
ten rows) are those that match the most known column names. XLSX: only the first
worksheet is read (others with content are reported, SHEET-028), with openpyxl in
read-only mode and formulas NOT evaluated: ``data_only=False`` so that a formula cell
yields its literal text ("=A1+1"), which is stored as written (``data_only=True`` would
hand back a value some other program computed and cached, hiding that the cell was a
formula). Any cell starting with ``=``, ``+``, ``-``, ``@``, TAB or CR is kept literally
and flagged (SHEET-003, formula injection on export). Before openpyxl sees the file its
package is inspected: external workbook links and data connections (SHEET-004, never
followed), macros (SHEET-005), a DOCTYPE in any XML part (refused: entity expansion),
and the uncompressed size (refused over :data:`MAX_XLSX_BYTES`).

Rows are numbered as a spreadsheet shows them (the header row is usually row 1).
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from preservation.config import IngestSettings
from preservation.errors import ConfigError, PreservationError, SheetUnreadable
from preservation.hashing import BLOCK_SIZE
from preservation.ingest import refcode
from preservation.ingest.findings import CheckDef, Finding, Result, define
from preservation.ingest.register import TransferRegister, check_register
from preservation.metadata.records import RecordTable
from preservation.model import ARCHIVAL_FIELDS, Record
from preservation.paths import nfc
from preservation.scratch import name_key, name_of

# --------------------------------------------------------------------------- checks

READABLE = define("SHEET-001", "usability", "The catalogue sheet is readable", "目录可读取", 20)
COLUMNS = define(
    "SHEET-002", "usability", "Column headers are known and unique", "目录列名可识别且不重复", 20
)
FORMULA = define("SHEET-003", "security", "No formula-like cells", "目录不含公式或类公式内容", 21)
EXTERNAL = define(
    "SHEET-004", "security", "No external links or data connections", "目录不含外部链接", 20
)
MACROS = define("SHEET-005", "security", "No macros", "目录不含宏", 20)
MANDATORY_COLUMN = define(
    "SHEET-006", "integrity", "Mandatory columns present", "必填著录项列齐全", 22
)
MANDATORY_VALUE = define("SHEET-007", "integrity", "Mandatory values present", "必填著录项有值", 23)
REFCODE = define("SHEET-008", "authenticity", "Reference codes are well-formed", "档号格式正确", 24)
REFCODE_CONSISTENT = define(
    "SHEET-009", "authenticity", "Reference codes agree with their columns",
    "档号与全宗号、年度、保管期限、件号一致", 25,
)  # fmt: skip
DATE = define("SHEET-010", "authenticity", "Dates are real calendar dates", "日期格式正确", 24)
YEAR = define("SHEET-011", "authenticity", "Years have four digits", "年度为四位数字", 24)
PAGES = define("SHEET-012", "authenticity", "Page counts are whole numbers", "页数为整数", 24)
VOCABULARY = define(
    "SHEET-013", "authenticity", "Controlled values are in their vocabularies",
    "密级、保管期限、开放状态取值规范", 24,
)  # fmt: skip
DUPLICATE_CODE = define(
    "SHEET-014", "authenticity", "No duplicate reference codes", "档号不重复", 26
)
NUMBER_GAP = define(
    "SHEET-015", "integrity", "Item numbers have no gaps", "件号（案卷号）连续无断号", 27
)
NUMBER_DUPLICATE = define(
    "SHEET-016", "integrity", "Item numbers are not repeated", "件号（案卷号）不重号", 27
)
ROW_WITHOUT_FILES = define(
    "SHEET-017", "integrity", "Every catalogued record has its files", "目录条目均有电子文件", 28
)
FILE_WITHOUT_ROW = define(
    "SHEET-018", "integrity", "Every file is catalogued", "电子文件均有目录条目", 28
)
PAGE_COUNT = define(
    "SHEET-019", "integrity", "Page counts match the page images", "页数与页面图像数一致", 29
)
PATH_MISSING = define(
    "SHEET-020", "authenticity", "File paths in the sheet point at real files",
    "目录所列文件路径真实存在", 28,
)  # fmt: skip
FILE_SHARED = define(
    "SHEET-021", "integrity", "Each file belongs to one record", "每个文件只属于一个条目", 29
)
VOLUME_REF = define(
    "SHEET-022", "integrity", "Items name existing volumes", "卷内文件所属案卷存在", 27
)
CHARACTERS = define(
    "SHEET-023", "authenticity", "Values within length, without control characters",
    "著录值长度合规、无控制字符", 24,
)  # fmt: skip
SECRECY_TERM = define(
    "SHEET-024", "authenticity", "Classified records give a secrecy term",
    "涉密条目注明保密期限", 25,
)  # fmt: skip
OPEN_CLASSIFIED = define(
    "SHEET-025", "authenticity", "Classified records are not open", "涉密条目未标记为开放", 25
)
NUMBER = define(
    "SHEET-026", "authenticity", "Item and volume numbers are whole numbers",
    "件号、案卷号为整数", 24,
)  # fmt: skip
LEVEL = define(
    "SHEET-027", "authenticity", "Description levels are 件 or 卷", "著录层次为件或卷", 24
)
OTHER_SHEETS = define(
    "SHEET-028", "usability", "The workbook has one worksheet of records", "目录仅有一个工作表", 21
)

CHECKS: tuple[CheckDef, ...] = (
    READABLE, COLUMNS, FORMULA, EXTERNAL, MACROS, MANDATORY_COLUMN, MANDATORY_VALUE,
    REFCODE, REFCODE_CONSISTENT, DATE, YEAR, PAGES, VOCABULARY, DUPLICATE_CODE, NUMBER_GAP,
    NUMBER_DUPLICATE, ROW_WITHOUT_FILES, FILE_WITHOUT_ROW, PAGE_COUNT, PATH_MISSING,
    FILE_SHARED, VOLUME_REF, CHARACTERS, SECRECY_TERM, OPEN_CLASSIFIED, NUMBER, LEVEL,
    OTHER_SHEETS,
)  # fmt: skip

# --------------------------------------------------------------------------- columns

MANDATORY: tuple[str, ...] = (
    "reference_code", "fonds", "year", "retention", "title", "creator", "date",
    "security_level",
)  # fmt: skip
HEADER_ALIASES: dict[str, str] = {
    "机构(问题)": "unit",
    "机构问题": "unit",
    "机构(问题)代码": "unit",
    "机构代码": "unit",
    "室编件号": "item_number",
    "馆编件号": "item_number",
    "卷号": "volume",
    "室编案卷号": "volume",
    "馆编案卷号": "volume",
    "文号": "document_number",
    "发文字号": "document_number",
    "成文日期": "date",
    "文件日期": "date",
    "文件题名": "title",
    "电子文件路径": "path",
    "文件名": "path",
    "电子文件名": "path",
    "层次": "level",
    "开放状况": "open_status",
    "保管期限代码": "retention",
}
IGNORED_HEADERS = {"序号", "顺序号", "no", "no."}
MAX_LENGTH: dict[str, int] = {"title": 1000, "notes": 2000, "path": 8000}
DEFAULT_MAX_LENGTH = 255
MULTILINE_FIELDS = {"title", "notes", "path"}
VOLUME_LEVELS = {"卷": "卷", "案卷": "卷", "volume": "卷"}
ITEM_LEVELS = {"件": "件", "文件": "件", "item": "件"}
FORMULA_STARTS = ("=", "+", "-", "@")
IMAGE_EXTENSIONS = {"tif", "tiff", "jpg", "jpeg", "jp2", "j2k", "jpx", "png"}
MAX_XLSX_BYTES = 1024**3
MAX_XLSX_PARTS = 10_000
PATH_SEPARATORS = re.compile(r"[;；\n]")
SNIFF_CHARS = 256 * 1024  # text read to find the delimiter and the header row


def _norm_header(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).strip().rstrip("*").strip()
    return re.sub(r"\s+", "", t)


def _build_header_map() -> dict[str, str]:
    out: dict[str, str] = {}
    for key, zh in ARCHIVAL_FIELDS.items():
        out[_norm_header(zh)] = key
        out[key.casefold()] = key
    for alias, key in HEADER_ALIASES.items():
        out[_norm_header(alias)] = key
    return out


_HEADERS = _build_header_map()


def header_key(text: str) -> str | None:
    """The canonical key for a column header (Chinese, English key or alias), or None."""
    t = _norm_header(text)
    return _HEADERS.get(t) or _HEADERS.get(t.casefold())


def _label(key: str) -> str:
    return ARCHIVAL_FIELDS.get(key, key)


# --------------------------------------------------------------------------- vocabularies


@dataclass(frozen=True)
class Term:
    code: str
    label: str
    en: str = ""
    aliases: tuple[str, ...] = ()
    classified: bool = False
    legacy: bool = False


@dataclass(frozen=True)
class Vocabulary:
    name: str
    field: str  # the Chinese column name
    terms: tuple[Term, ...]

    def lookup(self, value: str) -> Term | None:
        v = unicodedata.normalize("NFKC", value).strip().casefold()
        if not v:
            return None
        for t in self.terms:
            names = (t.code, t.label, t.en, *t.aliases)
            if any(v == unicodedata.normalize("NFKC", n).casefold() for n in names if n):
                return t
        return None

    def labels(self) -> str:
        return ", ".join(f"{t.label} ({t.code})" for t in self.terms)


def _vocabulary_file() -> Path:
    """The source tree's ``schemas/vocabularies.json``, else the installed package's copy
    in ``preservation/_schemas/`` (the order :mod:`preservation.ingest.identify` uses)."""
    package = Path(__file__).resolve().parents[1]
    for folder in (package.parent / "schemas", package / "_schemas"):
        if (folder / "vocabularies.json").is_file():
            return folder / "vocabularies.json"
    raise ConfigError(f"vocabularies.json not found in {package.parent / 'schemas'}")


@lru_cache(maxsize=4)
def load_vocabularies(path: Path | None = None) -> dict[str, Vocabulary]:
    """The vocabularies of ``schemas/vocabularies.json`` (or of ``path``)."""
    source = path or _vocabulary_file()
    with source.open(encoding="utf-8") as f:
        data = json.load(f)
    out: dict[str, Vocabulary] = {}
    for name, v in data["vocabularies"].items():
        terms = tuple(
            Term(
                code=str(t["code"]),
                label=str(t["label"]),
                en=str(t.get("en", "")),
                aliases=tuple(str(a) for a in t.get("aliases", [])),
                classified=bool(t.get("classified", False)),
                legacy=bool(t.get("legacy", False)),
            )
            for t in v["terms"]
        )
        out[name] = Vocabulary(name=name, field=str(v["field"]), terms=terms)
    return out


# --------------------------------------------------------------------------- reading


@dataclass
class SheetData:
    path: Path
    format: Literal["csv", "xlsx"]
    encoding: str | None  # CSV only
    worksheet: str | None  # XLSX only
    header_row: int
    columns: dict[str, int]  # canonical key -> 0-based column index
    headers: list[str]  # header texts as found
    records: RecordTable  # on disk; check_sheet links them to files
    findings: list[Finding] = field(default_factory=list)


def _unreadable(path: Path, reason: str) -> SheetUnreadable:
    finding = Finding(READABLE.code, "fail", f"{path.name}: {reason}", details={"sheet": str(path)})
    return SheetUnreadable(f"{path}: {reason}", findings=[finding], path=path)


def _decode_error(path: Path, encoding: str) -> tuple[int, int, bytes] | None:
    """``(byte offset, line, bad bytes)`` of the first undecodable byte, or None."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    offset = 0
    line = 1
    with path.open("rb") as f:
        while True:
            block = f.read(BLOCK_SIZE)
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as e:
                pos = max(offset - pending + e.start, 0)
                within = max(pos - offset, 0)
                return pos, line + block[:within].count(b"\n"), e.object[e.start : e.end]
            if not block:
                return None
            offset += len(block)
            line += block.count(b"\n")


def _csv_encoding(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(4)
    if head in (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE):  # before UTF-16: FF FE 00 00
        candidates = ["utf-32"]
    elif head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        candidates = ["utf-16"]
    elif head.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    else:
        candidates = ["utf-8", "gb18030"]
    failures: list[str] = []
    for enc in candidates:
        err = _decode_error(path, enc)
        if err is None:
            return enc
        pos, line, bad = err
        failures.append(f"as {enc}, byte(s) {bad.hex(' ')} at offset {pos} (line {line})")
    raise _unreadable(
        path,
        "the text is neither UTF-8 nor GB18030 (" + "; ".join(failures) + "); save the sheet"
        " as 'CSV UTF-8' or as XLSX",
    )


def _header_score(row: Sequence[str]) -> int:
    return len({k for c in row if (k := header_key(c))})


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _formula_like(raw: str) -> str | None:
    if raw[:1] in ("\t", "\r"):
        return repr(raw[:1])
    s = raw.lstrip(" ")
    return repr(s[0]) if s.startswith(FORMULA_STARTS) else None


def _normalise_level(value: str) -> str:
    v = value.strip()
    return VOLUME_LEVELS.get(v.casefold(), ITEM_LEVELS.get(v.casefold(), v))


class _RowBuilder:
    """Turns header + data rows into SheetData (shared by CSV and XLSX)."""

    def __init__(
        self, path: Path, header_row: int, header: Sequence[str], table: RecordTable
    ) -> None:
        self.path = path
        self.header_row = header_row
        self.headers = [h.strip() for h in header]
        self.columns: dict[str, int] = {}
        self.findings: list[Finding] = []
        self.records = table
        for idx, text in enumerate(self.headers):
            if not text:
                continue
            key = header_key(text)
            if key is None:
                if _norm_header(text).casefold() not in IGNORED_HEADERS:
                    self.findings.append(
                        Finding(
                            COLUMNS.code,
                            "warn",
                            f"{path.name} row {header_row}: unknown column {text!r} is ignored",
                            row=header_row,
                        )
                    )
                continue
            if key in self.columns:
                first = self.headers[self.columns[key]]
                self.findings.append(
                    Finding(
                        COLUMNS.code,
                        "fail",
                        f"{path.name} row {header_row}: columns {first!r} and {text!r} both"
                        f" mean {_label(key)} ({key}); only the first is read",
                        row=header_row,
                    )
                )
                continue
            self.columns[key] = idx

    def add(self, row_number: int, cells: Sequence[str]) -> None:
        if not any(c.strip() for c in cells):
            return
        values: dict[str, str] = {}
        for key, idx in self.columns.items():
            raw = cells[idx] if idx < len(cells) else ""
            start = _formula_like(raw) if raw else None
            if start:
                self.findings.append(
                    Finding(
                        FORMULA.code,
                        "warn",
                        f"row {row_number}, column {self.headers[idx]}: value {raw[:60]!r}"
                        f" starts with {start}; kept literally, never evaluated",
                        row=row_number,
                        details={"column": key},
                    )
                )
            values[key] = raw.strip()
        if "level" in values:
            values["level"] = _normalise_level(values["level"])
        self.records.add(Record(row=row_number, fields=values))


def _find_header(rows: Sequence[Sequence[str]]) -> tuple[int, int]:
    """``(index, score)`` of the best header among ``rows``."""
    best = (0, -1)
    for i, row in enumerate(rows):
        score = _header_score(row)
        if score > best[1]:
            best = (i, score)
    return best


def _no_header(path: Path, how: str) -> SheetUnreadable:
    return _unreadable(
        path,
        f"no header row with known column names in the first 10 rows ({how}); expected"
        " headers such as 档号, 全宗号, 年度, 题名 or their English keys",
    )


def _read_csv(path: Path, table: RecordTable) -> SheetData:
    encoding = _csv_encoding(path)
    with path.open(encoding=encoding, newline="") as f:
        sample = f.read(SNIFF_CHARS)  # the first rows, without reading a huge line whole
    best: tuple[str, int, int] = (",", 0, -1)
    for delimiter in (",", "\t", ";"):
        try:
            rows = list(itertools.islice(csv.reader(io.StringIO(sample), delimiter=delimiter), 10))
        except csv.Error:
            continue
        idx, score = _find_header(rows)
        if score > best[2]:
            best = (delimiter, idx, score)
    delimiter, header_idx, score = best
    if score < 2:
        raise _no_header(path, f"read as {encoding}")
    builder: _RowBuilder | None = None
    try:
        with path.open(encoding=encoding, newline="") as f:
            for number, row in enumerate(csv.reader(f, delimiter=delimiter), 1):
                if number - 1 < header_idx:
                    continue
                if builder is None:
                    builder = _RowBuilder(path, number, row, table)
                    continue
                builder.add(number, row)
    except csv.Error as e:
        raise _unreadable(path, f"not readable as CSV: {e}") from e
    assert builder is not None
    return SheetData(
        path=path,
        format="csv",
        encoding=encoding,
        worksheet=None,
        header_row=builder.header_row,
        columns=builder.columns,
        headers=builder.headers,
        records=builder.records.flush(),
        findings=builder.findings,
    )


_ELEMENT_START = re.compile(rb"<[A-Za-z_]")
_DTD = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_TARGET = re.compile(rb'Target="([^"]*)"')
_EXTERNAL_REL = re.compile(rb'<Relationship\b[^>]*TargetMode="External"[^>]*>', re.IGNORECASE)


def _prolog_has_dtd(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool | None:
    """True if the part's prolog declares a DTD; None if no root element in 64 KiB."""
    with zf.open(info) as f:
        head = f.read(64 * 1024)
    m = _ELEMENT_START.search(head)
    before = head if m is None else head[: m.start()]
    if _DTD.search(before):
        return True
    return None if m is None and len(head) >= 64 * 1024 else False


def _inspect_xlsx(path: Path) -> list[Finding]:
    """Look inside the package before openpyxl parses it (see the module docstring)."""
    findings: list[Finding] = []
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise _unreadable(path, f"not a readable XLSX workbook ({e})") from e
    with zf:
        infos = zf.infolist()
        total = sum(i.file_size for i in infos)
        if len(infos) > MAX_XLSX_PARTS or total > MAX_XLSX_BYTES:
            raise _unreadable(
                path, f"{len(infos)} parts, {total} bytes uncompressed: too large for a sheet"
            )
        names = {i.filename for i in infos}
        if "xl/workbook.xml" not in names:
            raise _unreadable(path, "not an XLSX workbook (no xl/workbook.xml)")
        for info in infos:
            if not info.filename.endswith((".xml", ".rels", ".vml")):
                continue
            try:
                dtd = _prolog_has_dtd(zf, info)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
                raise _unreadable(path, f"part {info.filename} cannot be read ({e})") from e
            if dtd is not False:
                why = "declares a DTD" if dtd else "has no root element in its first 64 KiB"
                raise _unreadable(
                    path, f"XML part {info.filename} {why} (entity expansion risk); refused"
                )
        for info in infos:
            name = info.filename
            if name.startswith("xl/externalLinks/") and name.endswith(".xml"):
                rels = f"xl/externalLinks/_rels/{name.rsplit('/', 1)[1]}.rels"
                targets: list[str] = []
                if rels in names:
                    with zf.open(rels) as f:
                        targets = [t.decode("utf-8", "replace") for t in _TARGET.findall(f.read())]
                shown = ", ".join(repr(t) for t in targets) or "(target not given)"
                findings.append(
                    Finding(
                        EXTERNAL.code,
                        "fail",
                        f"{path.name}: links to external workbook {shown} ({name});"
                        " not followed, linked values not trusted",
                        details={"part": name, "targets": targets},
                    )
                )
            elif name == "xl/connections.xml":
                findings.append(
                    Finding(
                        EXTERNAL.code,
                        "fail",
                        f"{path.name}: has external data connections ({name}); not used",
                        details={"part": name},
                    )
                )
            elif name.endswith(".rels") and not name.startswith("xl/externalLinks/"):
                with zf.open(info) as f:
                    data = f.read(1024 * 1024)
                for rel in _EXTERNAL_REL.findall(data):
                    if b"/hyperlink" in rel:
                        continue
                    target = _TARGET.search(rel)
                    shown_target = target.group(1).decode("utf-8", "replace") if target else "?"
                    findings.append(
                        Finding(
                            EXTERNAL.code,
                            "fail",
                            f"{path.name}: {name} refers to external {shown_target!r};"
                            " not followed",
                            details={"part": name, "target": shown_target},
                        )
                    )
            if name.lower().endswith("vbaproject.bin"):
                findings.append(
                    Finding(
                        MACROS.code,
                        "warn",
                        f"{path.name}: contains macros ({name}); they are never run",
                        details={"part": name},
                    )
                )
    return findings


def _xlsx_rows(ws: Any) -> Iterator[tuple[int, list[str], list[Any]]]:
    for counter, row in enumerate(ws.iter_rows(), 1):
        number = next((c.row for c in row if getattr(c, "row", None)), counter)
        yield number, [_cell_text(c.value) for c in row], list(row)


def _read_xlsx(path: Path, table: RecordTable) -> SheetData:
    import openpyxl

    findings = _inspect_xlsx(path)
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=False, keep_links=False)
    except Exception as e:  # openpyxl on a hostile package: InvalidFileException, xml.etree
        # ParseError, TypeError on unknown attributes, ... (found by scripts/fuzz/fuzz_sheet.py)
        raise _unreadable(path, f"not a readable XLSX workbook ({e})") from e
    try:
        if not wb.worksheets:
            raise _unreadable(path, "the workbook has no worksheet")
        ws = wb.worksheets[0]
        head: list[tuple[int, list[str]]] = []
        rows = _xlsx_rows(ws)
        for number, cells, _ in rows:
            head.append((number, cells))
            if len(head) == 10:
                break
        idx, score = _find_header([c for _, c in head])
        if score < 2:
            raise _no_header(path, f"worksheet {ws.title!r}")
        builder = _RowBuilder(path, head[idx][0], head[idx][1], table)
        for number, cells in head[idx + 1 :]:
            builder.add(number, cells)
        for number, cells, _ in rows:
            builder.add(number, cells)
        for other in wb.worksheets[1:]:
            if any(
                any(v is not None and str(v).strip() for v in r)
                for _, r in zip(range(1000), other.iter_rows(values_only=True), strict=False)
            ):
                findings.append(
                    Finding(
                        OTHER_SHEETS.code,
                        "warn",
                        f"{path.name}: worksheet {other.title!r} has content but is not read"
                        f" (only the first worksheet, {ws.title!r}, is the catalogue)",
                    )
                )
    except PreservationError:
        raise
    except Exception as e:  # openpyxl while streaming rows: any parser error, as above
        raise _unreadable(path, f"the worksheet cannot be read ({e})") from e
    finally:
        wb.close()
    return SheetData(
        path=path,
        format="xlsx",
        encoding=None,
        worksheet=str(ws.title),
        header_row=builder.header_row,
        columns=builder.columns,
        headers=builder.headers,
        records=builder.records.flush(),
        findings=findings + builder.findings,
    )


def read_sheet(path: Path, records: Path | None = None) -> SheetData:
    """Read a catalogue sheet; raises SheetUnreadable (SHT001) when it cannot be read.

    The rows go into a :class:`~preservation.metadata.records.RecordTable` at
    ``records`` (a scratch database file; a private temporary one when None).
    """
    try:
        with path.open("rb") as f:
            magic = f.read(8)
    except OSError as e:
        raise _unreadable(path, f"cannot open: {e.strerror}") from e
    if magic.startswith(b"\xd0\xcf\x11\xe0"):
        raise _unreadable(path, "legacy .xls workbooks are not read; save it as .xlsx or CSV")
    if records is not None:
        records.unlink(missing_ok=True)
    table = RecordTable(records)
    try:
        if magic.startswith(b"PK\x03\x04"):
            return _read_xlsx(path, table)
        return _read_csv(path, table)
    except BaseException:
        table.close(remove=True)
        raise


# --------------------------------------------------------------------------- value checks

_DATE8 = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DATE_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_RANGE8 = re.compile(r"^(\d{8})\s*[-–—~～至]\s*(\d{8})$")
_RANGE_ANY = re.compile(r"^(.+?)\s*(?:/|~|～|至)\s*(.+)$")


def parse_date(text: str) -> date | None:
    """A ``YYYYMMDD`` or ``YYYY-MM-DD`` calendar date, or None."""
    m = _DATE8.match(text) or _DATE_ISO.match(text)
    if m is None:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def _date_problem(text: str, volume: bool) -> str | None:
    if parse_date(text) is not None:
        return None
    if volume:
        m = _RANGE8.match(text) or _RANGE_ANY.match(text)
        if m is not None:
            start, end = parse_date(m.group(1).strip()), parse_date(m.group(2).strip())
            if start is not None and end is not None:
                return None if start <= end else "the range ends before it starts"
    if _DATE8.match(text) or _DATE_ISO.match(text):
        return "is not a real calendar date"
    form = "YYYYMMDD or YYYY-MM-DD" + (" (or a range of two)" if volume else "")
    return f"is not a date of the form {form}"


def _bad_character(value: str, key: str) -> str | None:
    for c in value:
        cat = unicodedata.category(c)
        if c == "\n" and key in MULTILINE_FIELDS:
            continue
        if cat in ("Cc", "Cf", "Co", "Cs") or c in ("\u2028", "\u2029"):
            return f"U+{ord(c):04X} ({unicodedata.name(c, 'control character')})"
    return None


def _int(text: str) -> int | None:
    t = text.strip()
    return int(t) if t.isascii() and t.isdigit() else None


@dataclass
class _Context:
    sheet: SheetData
    settings: IngestSettings
    vocab: dict[str, Vocabulary]
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: CheckDef, result: Result, message: str, **kw: Any) -> None:
        self.findings.append(Finding(check.code, result, message, **kw))


def _check_row(ctx: _Context, rec: Record) -> refcode.RefCode | None:
    """The checks of one row on its own; returns its reference code, parsed."""
    f = rec.fields
    r = rec.row
    cols = ctx.sheet.columns
    volume = rec.level == "volume"
    for key in MANDATORY:
        if key in cols and not f.get(key):
            ctx.add(
                MANDATORY_VALUE, "fail", f"row {r}: {_label(key)} ({key}) is empty", row=r,
                details={"column": key},
            )  # fmt: skip
    for key, value in f.items():
        bad = _bad_character(value, key)
        if bad:
            ctx.add(
                CHARACTERS, "fail", f"row {r}: {_label(key)} contains {bad}", row=r,
                details={"column": key},
            )  # fmt: skip
        limit = MAX_LENGTH.get(key, DEFAULT_MAX_LENGTH)
        if len(value) > limit:
            ctx.add(
                CHARACTERS, "fail",
                f"row {r}: {_label(key)} is {len(value)} characters long, more than {limit}",
                row=r, details={"column": key},
            )  # fmt: skip
    level = f.get("level", "")
    if level and level not in ("卷", "件"):
        ctx.add(LEVEL, "fail", f"row {r}: 著录层次 {level!r} is neither 件 nor 卷", row=r)

    year = f.get("year", "")
    if year and not re.fullmatch(r"[1-9]\d{3}", year):
        ctx.add(YEAR, "fail", f"row {r}: 年度 {year!r} is not a four-digit year", row=r)
    when = f.get("date", "")
    if when:
        problem = _date_problem(when, volume)
        if problem:
            ctx.add(DATE, "fail", f"row {r}: 日期 {when!r} {problem}", row=r)
    pages = f.get("pages", "")
    if pages and _int(pages) is None:
        ctx.add(PAGES, "fail", f"row {r}: 页数 {pages!r} is not a whole number", row=r)
    number = f.get("item_number", "")
    if number and _int(number) is None:
        ctx.add(NUMBER, "fail", f"row {r}: 件号 {number!r} is not a whole number", row=r)
    vol = f.get("volume", "")
    if volume and vol and _int(vol) is None:
        ctx.add(NUMBER, "fail", f"row {r}: 案卷号 {vol!r} is not a whole number", row=r)

    terms: dict[str, Term | None] = {}
    for name, vocabulary in ctx.vocab.items():
        value = f.get(name, "")
        if not value:
            continue
        term = vocabulary.lookup(value)
        terms[name] = term
        if term is None:
            ctx.add(
                VOCABULARY, "fail",
                f"row {r}: {vocabulary.field} {value!r} is not one of {vocabulary.labels()}",
                row=r, details={"column": name},
            )  # fmt: skip
    security = terms.get("security_level")
    if security is not None and security.classified:
        if not f.get("secrecy_term"):
            ctx.add(
                SECRECY_TERM, "warn",
                f"row {r}: 密级 {security.label} without a 保密期限", row=r,
            )  # fmt: skip
        status = terms.get("open_status")
        if status is not None and status.code == "KF":
            ctx.add(
                OPEN_CLASSIFIED, "warn",
                f"row {r}: 密级 {security.label} but 开放状态 {f.get('open_status')}", row=r,
            )  # fmt: skip

    text = f.get("reference_code", "")
    if not text:
        return None
    code = refcode.parse(text, ctx.settings, fonds=f.get("fonds") or None)
    if code is None:
        ctx.add(
            REFCODE, "fail",
            f"row {r}: 档号 {text!r} does not match the reference-code pattern"
            " (e.g. Z109-WS·2011-Y-BGS-0001)",
            row=r,
        )  # fmt: skip
        return None
    if code.notes:
        ctx.add(
            REFCODE, "warn",
            f"row {r}: 档号 {text!r} read as {code.canonical!r}: {'; '.join(code.notes)}",
            row=r,
        )  # fmt: skip
    _check_consistency(ctx, rec, code)
    return code


def _check_consistency(ctx: _Context, rec: Record, code: refcode.RefCode) -> None:
    f = rec.fields
    r = rec.row
    problems: list[str] = []
    fonds = f.get("fonds", "")
    if fonds and code.fonds and unicodedata.normalize("NFKC", fonds) != code.fonds:
        problems.append(f"全宗号 {code.fonds} (column: {fonds})")
    year = f.get("year", "")
    if year and code.year and year != code.year:
        problems.append(f"年度 {code.year} (column: {year})")
    retention = f.get("retention", "")
    vocab = ctx.vocab.get("retention")
    if retention and code.retention and vocab is not None:
        a, b = vocab.lookup(retention), vocab.lookup(code.retention)
        if a is not None and b is not None and a.code != b.code:
            problems.append(f"保管期限 {code.retention} (column: {retention})")
    vol = f.get("volume", "")
    if rec.level == "volume":
        in_code = code.volume if code.volume_number is not None else code.item
        number = code.volume_number if code.volume_number is not None else code.item_number
        if vol and number is not None and _int(vol) not in (None, number):
            problems.append(f"案卷号 {in_code} (column: {vol})")
    else:
        item = f.get("item_number", "")
        if item and code.item_number is not None and _int(item) not in (None, code.item_number):
            problems.append(f"件号 {code.item} (column: {item})")
        if vol and code.volume_number is not None and _int(vol) not in (None, code.volume_number):
            problems.append(f"案卷号 {code.volume} (column: {vol})")
    if problems:
        ctx.add(
            REFCODE_CONSISTENT, "fail",
            f"row {r}: 档号 {code.text!r} says " + "; ".join(problems), row=r,
        )  # fmt: skip


def _ranges(numbers: Sequence[int]) -> str:
    parts: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}–{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(parts)


def _codes(ctx: _Context, table: RecordTable) -> None:
    """Every row's own checks; what they read of each row's 档号 goes into the table."""
    retention = ctx.vocab.get("retention")

    def rows() -> Iterator[tuple[Any, ...]]:
        for seq, rec in table.numbered():
            code = _check_row(ctx, rec)
            f = rec.fields
            link_key = code.canonical if code else refcode.normalise(rec.reference_code)[0]
            dup_key = code.canonical if code else rec.reference_code.strip()
            own = (code.volume_number or code.item_number) if code else None
            number = _int(f.get("volume", "")) or own if rec.level == "volume" else None
            if code is not None:
                group = code.group
            else:
                value = f.get("retention", "")
                term = retention.lookup(value) if retention is not None else None
                group = "-".join(
                    x for x in (f.get("fonds", ""), f.get("year", ""),
                                term.code if term else value, f.get("unit", "")) if x
                )  # fmt: skip
            yield (link_key or None, dup_key or None, group,
                   code.item_number if code else None, own, number, seq)  # fmt: skip

    table.many(
        "UPDATE records SET key = ?, dup_key = ?, grp = ?, code_item = ?, code_volume = ?,"
        " own_number = ? WHERE seq = ?",
        rows(),
    )


def _check_duplicates(ctx: _Context, table: RecordTable) -> None:
    for row, first_row, key in table.query(
        "SELECT r.row, f.row, r.dup_key FROM records r JOIN records f ON f.seq ="
        " (SELECT min(x.seq) FROM records x WHERE x.dup_key = r.dup_key)"
        " WHERE r.dup_key IS NOT NULL AND f.seq < r.seq ORDER BY r.seq"
    ):
        ctx.add(
            DUPLICATE_CODE, "fail",
            f"rows {first_row} and {row} have the same 档号 {key!r}", row=row,
            details={"rows": [first_row, row]},
        )  # fmt: skip


def _resolve_volumes(ctx: _Context, table: RecordTable) -> None:
    """Find the volume (卷) row each item row names in its 案卷号 (by the volume's
    档号, or by its number within the same 全宗号, 年度 and 保管期限)."""
    if not table.one("SELECT 1 FROM records WHERE level = 'volume'"):
        return

    def found() -> Iterator[tuple[str, int]]:
        for seq, row, fields in table.query(
            "SELECT seq, row, fields FROM records WHERE level <> 'volume'"
            " AND coalesce(json_extract(fields, '$.volume'), '') <> '' ORDER BY seq"
        ):
            f = json.loads(fields)
            value = f["volume"]
            hit = table.one(
                "SELECT key FROM records WHERE level = 'volume' AND key = ? LIMIT 1",
                refcode.normalise(value)[0],
            )
            if hit is None and _int(value) is not None:
                hit = table.one(
                    "SELECT key FROM records WHERE level = 'volume' AND fonds = ? AND year = ?"
                    " AND own_number = ? AND key IS NOT NULL"
                    " AND coalesce(json_extract(fields, '$.retention'), '') = ?"
                    " ORDER BY seq DESC LIMIT 1",
                    f.get("fonds", "").strip(), f.get("year", "").strip(), int(value),
                    f.get("retention", ""),
                )  # fmt: skip
            if hit is None:
                ctx.add(
                    VOLUME_REF, "fail",
                    f"row {row}: 案卷号 {value!r} matches no volume (卷) row of the sheet",
                    row=row,
                )  # fmt: skip
                continue
            yield str(hit[0]), seq

    table.many("UPDATE records SET in_volume = ? WHERE seq = ?", found())


def _check_numbering(ctx: _Context, table: RecordTable) -> None:
    """Gaps and repeats of 件号 (per group or volume) and 案卷号 (per group)."""

    def numbers() -> Iterator[tuple[str, str, int, int]]:
        for row, level, fields, group, code_item, own, in_volume in table.query(
            "SELECT row, level, fields, grp, code_item, code_volume, in_volume FROM records"
            " ORDER BY seq"
        ):
            f = json.loads(fields)
            if level == "volume":
                number = _int(f.get("volume", "")) or own
                key = ("案卷号", group)
            else:
                number = _int(f.get("item_number", "")) or code_item
                key = ("件号", f"volume {in_volume}" if in_volume else group)
            if number is not None and key[1]:
                yield key[0], key[1], number, row

    table.execute("DELETE FROM numbering")
    table.many("INSERT INTO numbering VALUES (?, ?, ?, ?)", numbers())
    # sorted by group, then number and row: a repeat follows its first, a gap lies
    # between two neighbours; a group's repeats are reported before its gaps
    current: tuple[str, str] | None = None
    gaps: list[tuple[int, int, int, int]] = []
    last: tuple[int, int] | None = None  # (number, its first row)

    def close_group() -> None:
        assert current is not None
        label, group = current
        for before, before_row, after, after_row in gaps:
            ctx.add(
                NUMBER_GAP, "fail",
                f"{group}: {label} {_ranges(list(range(before + 1, after)))} missing between"
                f" row {before_row} ({label} {before}) and row {after_row} ({label} {after})",
                row=after_row,
                details={"group": group, "missing_from": before + 1, "missing_to": after - 1},
            )  # fmt: skip
        gaps.clear()

    for label, group, number, row in table.query(
        "SELECT label, grp, number, row FROM numbering ORDER BY label, grp, number, row"
    ):
        if (label, group) != current:
            if current is not None:
                close_group()
            current, last = (label, group), None
        if last is not None and number == last[0]:
            ctx.add(
                NUMBER_DUPLICATE, "fail",
                f"rows {last[1]} and {row} both have {label} {number} in {group}",
                row=row,
                details={"group": group, "number": number, "rows": [last[1], row]},
            )  # fmt: skip
            continue
        if last is not None and number - last[0] > 1:
            gaps.append((last[0], last[1], number, row))
        last = (number, row)
    if current is not None:
        close_group()


# --------------------------------------------------------------------------- linking


def _sheet_path(value: str) -> str:
    p = value.strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return nfc(p.lstrip("/"))


def _same_file(f: Any, others: Sequence[Path]) -> bool:
    name = PurePosixPath(str(getattr(f, "original_name", None) or f.path)).name
    if not any(name == o.name for o in others):
        return False  # only a file of the same name can be one of them: no resolving
    src = getattr(f, "abspath", None) or getattr(f, "source", None)
    if not isinstance(src, Path):
        return False
    try:
        resolved = src.resolve()
    except OSError:
        return False
    return any(resolved == o for o in others)


def _store_paths(table: RecordTable, files: Iterable[Any], metadata: Sequence[Path]) -> None:
    """The payload paths to link (the sheet and the register need no row)."""
    table.execute("DELETE FROM paths")
    table.many(
        "INSERT OR IGNORE INTO paths VALUES (?)",
        ((name_key(str(f.path)),) for f in files if not _same_file(f, metadata)),
    )


def _link(ctx: _Context, table: RecordTable) -> None:
    def exists(p: str) -> bool:
        return table.one("SELECT 1 FROM paths WHERE path = ?", name_key(p)) is not None

    def folder(p: str) -> bool:  # a folder of the transfer: some path lies under it
        return (
            table.one(
                "SELECT 1 FROM paths WHERE path >= ? AND path < ? LIMIT 1",
                name_key(p + "/"),
                name_key(p + "0"),  # '0' follows '/'
            )
            is not None
        )

    table.execute("DELETE FROM links")

    def by_path_column() -> Iterator[tuple[int, str, str | None]]:
        for seq, row, value in table.query(
            "SELECT seq, row, json_extract(fields, '$.path') FROM records"
            " WHERE coalesce(json_extract(fields, '$.path'), '') <> '' ORDER BY seq"
        ):
            for piece in PATH_SEPARATORS.split(str(value)):
                if not piece.strip():
                    continue
                p = _sheet_path(piece)
                if p.startswith("data/") and not exists(p) and not folder(p):
                    p = p[len("data/") :]
                if exists(p):
                    yield seq, p, None
                elif folder(p):
                    yield seq, p, "/"
                else:
                    ctx.add(
                        PATH_MISSING, "fail",
                        f"row {row}: 文件路径 {piece.strip()!r} is not a file or folder of the"
                        " transfer", row=row, file=p,
                    )  # fmt: skip

    for seq, p, kind in by_path_column():
        if kind is None:
            table.execute("INSERT OR IGNORE INTO links VALUES (?, ?, NULL)", seq, name_key(p))
        else:
            table.execute(
                "INSERT OR IGNORE INTO links SELECT ?, path, NULL FROM paths"
                " WHERE path >= ? AND path < ?",
                seq, name_key(p + "/"), name_key(p + "0"),
            )  # fmt: skip

    @lru_cache(maxsize=4096)
    def by_code(code: str) -> int | None:
        """The first record whose 档号 reads as ``code``."""
        if not code:
            return None
        hit = table.one("SELECT seq FROM records WHERE key = ? ORDER BY seq LIMIT 1", code)
        return None if hit is None else int(hit[0])

    def by_name(p: str) -> tuple[int, int | None] | None:
        """Names: <档号>.<ext>, <档号>-<page>.<ext>, a folder <档号>/."""
        stem, ext = refcode.split_name(p)
        canonical = refcode.normalise(stem)[0]
        whole = by_code(canonical)
        if whole is not None:
            return whole, None
        m = re.match(r"^(?P<code>.+)-(?P<page>\d+)$", canonical)
        if m is not None:
            paged = by_code(m.group("code"))
            if paged is not None:
                return paged, int(m.group("page")) if ext.lower() in IMAGE_EXTENSIONS else None
        for seg in reversed(p.split("/")[:-1]):
            found = by_code(refcode.normalise(seg)[0])
            if found is not None:
                return found, None
        return None

    unlinked = (
        "SELECT path FROM paths p WHERE path > ? AND NOT EXISTS"
        " (SELECT 1 FROM links l WHERE l.path = p.path) ORDER BY path LIMIT ?"
    )
    after = b""
    while True:
        page = [bytes(r[0]) for r in table.query(unlinked, after, 1000)]
        for raw in page:
            hit = by_name(name_of(raw))
            if hit is not None:
                table.link(hit[0], name_of(raw), hit[1])
        table.flush()
        if len(page) < 1000:
            break
        after = page[-1]

    for row, reference_code in table.query(
        "SELECT r.row, r.reference_code FROM records r"
        " WHERE NOT EXISTS (SELECT 1 FROM links l WHERE l.seq = r.seq)"
        " AND NOT (r.level = 'volume' AND coalesce(r.key, '') IN (SELECT i.in_volume FROM records i"
        " WHERE i.in_volume IS NOT NULL AND EXISTS"
        " (SELECT 1 FROM links l WHERE l.seq = i.seq))) ORDER BY r.seq"
    ):
        ctx.add(
            ROW_WITHOUT_FILES, "fail",
            f"row {row}: 档号 {reference_code!r} has no file (no 文件路径, no file or"
            " folder named after it)", row=row,
        )  # fmt: skip

    for raw, linked in table.query(
        "SELECT p.path, (SELECT count(*) FROM links l WHERE l.path = p.path) FROM paths p"
        " ORDER BY p.path"
    ):
        p = name_of(bytes(raw))
        if not linked:
            stem, _ = refcode.split_name(p)
            hint = ""
            parsed = refcode.parse(stem, ctx.settings)
            page_name = refcode.split_page_name(p, ctx.settings)
            named = parsed.canonical if parsed else (page_name[0] if page_name else None)
            if named:
                hint = f" (named like 档号 {named}, which is not in the sheet)"
            ctx.add(FILE_WITHOUT_ROW, "fail", f"file is not catalogued{hint}", file=p)
        elif linked > 1:
            rows = [
                int(r)
                for (r,) in table.query(
                    "SELECT r.row FROM links l JOIN records r ON r.seq = l.seq"
                    " WHERE l.path = ? ORDER BY l.seq",
                    raw,
                )
            ]
            ctx.add(
                FILE_SHARED, "warn",
                f"linked to rows {', '.join(str(r) for r in rows)}", file=p,
                row=rows[-1], details={"rows": rows},
            )  # fmt: skip

    for seq, row, pages in table.query(
        "SELECT r.seq, r.row, json_extract(r.fields, '$.pages') FROM records r WHERE EXISTS"
        " (SELECT 1 FROM links l WHERE l.seq = r.seq AND l.page IS NOT NULL) ORDER BY r.seq"
    ):
        expected = _int(str(pages or ""))
        if expected is None:
            continue
        images = [
            (int(n), name_of(bytes(p)))
            for n, p in table.query(
                "SELECT page, path FROM links WHERE seq = ? AND page IS NOT NULL"
                " ORDER BY page, path",
                seq,
            )
        ]
        numbers = [n for n, _ in images]
        missing = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
        if len(images) != expected or missing:
            extra = f"; page(s) {_ranges(missing)} missing" if missing else ""
            ctx.add(
                PAGE_COUNT, "warn",
                f"row {row}: 页数 {expected} but {len(images)} page image(s){extra}",
                row=row, file=images[0][1],
                details={"pages": expected, "images": len(images)},
            )  # fmt: skip


def check_sheet(
    sheet: SheetData,
    files: Iterable[Any],
    settings: IngestSettings,
    register: TransferRegister | None = None,
) -> tuple[list[Finding], RecordTable]:
    """Every catalogue check; returns the findings and the sheet's records, now linked
    to their files (``sheet.records``: the links are kept in its table).

    ``files`` are the payload files to keep (anything with ``path``; ``abspath`` or
    ``source`` lets the sheet and the register be recognised when they sit inside the
    payload: they need no row); it is read once, or twice with ``register``. The
    read-time findings of ``sheet`` are included. With ``register``,
    :func:`~preservation.ingest.register.check_register` runs too.
    """
    ctx = _Context(sheet=sheet, settings=settings, vocab=load_vocabularies())
    ctx.findings.extend(sheet.findings)
    table = sheet.records
    for key in MANDATORY:
        if key not in sheet.columns:
            ctx.add(
                MANDATORY_COLUMN, "fail",
                f"{sheet.path.name}: mandatory column {_label(key)} ({key}) is missing",
                row=sheet.header_row, details={"column": key},
            )  # fmt: skip
    _codes(ctx, table)
    _check_duplicates(ctx, table)
    _resolve_volumes(ctx, table)
    _check_numbering(ctx, table)
    metadata = [sheet.path.resolve()]
    if register is not None:
        metadata.append(register.path.resolve())
    _store_paths(table, files, metadata)
    _link(ctx, table)
    if register is not None:
        ctx.findings.extend(check_register(register, files, table))
    return ctx.findings, table
