"""The transfer register (移交登记): the totals the transferring office declares.

A register is a small JSON, TOML or CSV file (format and keys in
``schemas/transfer-register.md``). :func:`read_register` reads it strictly (unknown keys,
non-integers and negative numbers are refused with RegisterUnreadable, REG001) and
:func:`check_register` compares it with what was received (DA/T 70 integrity: totals
agree with the register). A count the register does not give is not checked.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preservation.errors import RegisterUnreadable
from preservation.ingest.findings import CheckDef, Finding, define
from preservation.model import Record

READABLE = define("REG-001", "usability", "The transfer register is readable", "移交登记可读取", 20)
ITEMS = define(
    "REG-002", "integrity", "Item count agrees with the register", "件数与移交登记一致", 30
)
VOLUMES = define(
    "REG-003", "integrity", "Volume count agrees with the register", "卷数与移交登记一致", 30
)
FILES = define(
    "REG-004", "integrity", "File count agrees with the register", "文件数与移交登记一致", 30
)
BYTES = define(
    "REG-005", "integrity", "Byte count agrees with the register", "数据量与移交登记一致", 30
)
PAGES = define(
    "REG-006", "integrity", "Page count agrees with the register", "页数与移交登记一致", 30
)
FONDS = define(
    "REG-007", "authenticity", "Every record belongs to the register's fonds",
    "全宗号与移交登记一致", 30,
)  # fmt: skip

CHECKS: tuple[CheckDef, ...] = (READABLE, ITEMS, VOLUMES, FILES, BYTES, PAGES, FONDS)

# canonical key -> accepted spellings (English keys and the Chinese labels of the form)
KEYS: dict[str, tuple[str, ...]] = {
    "transfer": ("transfer", "移交名称", "移交批次", "批次号"),
    "fonds": ("fonds", "全宗号"),
    "items": ("items", "件数"),
    "volumes": ("volumes", "卷数", "案卷数"),
    "files": ("files", "文件数", "电子文件数"),
    "bytes": ("bytes", "字节数", "数据量"),
    "pages": ("pages", "页数", "总页数"),
}
_COUNTS = ("items", "volumes", "files", "bytes", "pages")
_LOOKUP = {
    unicodedata.normalize("NFKC", alias).casefold(): key
    for key, aliases in KEYS.items()
    for alias in aliases
}


@dataclass(frozen=True)
class TransferRegister:
    path: Path
    transfer: str | None = None
    fonds: str | None = None
    items: int | None = None
    volumes: int | None = None
    files: int | None = None
    bytes: int | None = None
    pages: int | None = None


def _key(label: str) -> str | None:
    return _LOOKUP.get(unicodedata.normalize("NFKC", label).strip().casefold())


def _count(path: Path, key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise RegisterUnreadable(path=path, reason=f"{key}: {value!r} is not a whole number")
    if isinstance(value, int):
        n = value
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\d{1,3}(,\d{3})+|\d+", value.strip()):
        n = int(value.strip().replace(",", ""))
    else:
        raise RegisterUnreadable(path=path, reason=f"{key}: {value!r} is not a whole number")
    if n < 0:
        raise RegisterUnreadable(path=path, reason=f"{key}: {n} is negative")
    return n


def _from_mapping(path: Path, data: Mapping[str, Any]) -> TransferRegister:
    values: dict[str, Any] = {}
    unknown: list[str] = []
    for label, value in data.items():
        key = _key(str(label))
        if key is None:
            unknown.append(str(label))
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        values[key] = _count(path, key, value) if key in _COUNTS else str(value).strip()
    if unknown:
        known = ", ".join(a for aliases in KEYS.values() for a in aliases)
        raise RegisterUnreadable(
            path=path, reason=f"unknown key(s) {', '.join(unknown)} (known: {known})"
        )
    if not any(k in values for k in _COUNTS):
        raise RegisterUnreadable(
            path=path, reason="gives no count (items, volumes, files, bytes or pages)"
        )
    return TransferRegister(path=path, **values)


def _text(path: Path) -> str:
    data = path.read_bytes()  # a register is a few lines; its size is checked first
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise RegisterUnreadable(path=path, reason="neither UTF-8 nor GB18030 text")


def _from_csv(path: Path, text: str) -> TransferRegister:
    try:  # newline="": a lone CR ends a row (csv refused it inside a field: found by Hypothesis)
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in r)]
    except csv.Error as e:
        raise RegisterUnreadable(path=path, reason=f"not valid CSV: {e}") from e
    if not rows:
        raise RegisterUnreadable(path=path, reason="empty CSV")
    header = [c for c in rows[0] if c.strip()]
    if header and all(_key(c) for c in header):  # one header row and one data row
        if len(rows) != 2:
            raise RegisterUnreadable(
                path=path, reason=f"a header row and one data row expected, found {len(rows)} rows"
            )
        return _from_mapping(path, dict(zip(rows[0], rows[1], strict=False)))
    pairs = rows[1:] if _key(rows[0][0]) is None else rows  # optional '项目,数值' header
    mapping: dict[str, str] = {}
    for r in pairs:
        if len(r) < 2:
            raise RegisterUnreadable(path=path, reason=f"row {r!r}: a key and a value expected")
        mapping[r[0]] = r[1]
    return _from_mapping(path, mapping)


MAX_REGISTER_BYTES = 1024 * 1024


def read_register(path: Path) -> TransferRegister:
    """Read a register file (``.json``, ``.toml`` or ``.csv``; see transfer-register.md)."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise RegisterUnreadable(path=path, reason=f"cannot read: {e.strerror}") from e
    if size > MAX_REGISTER_BYTES:
        raise RegisterUnreadable(path=path, reason=f"{size} bytes: too large for a register")
    text = _text(path)
    suffix = path.suffix.lower()
    if suffix == ".json" or (suffix not in (".toml", ".csv") and text.lstrip().startswith("{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RegisterUnreadable(path=path, reason=f"not valid JSON: {e}") from e
        except RecursionError as e:  # hostile input: thousands of nested arrays
            raise RegisterUnreadable(path=path, reason="not valid JSON: nested too deeply") from e
    elif suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise RegisterUnreadable(path=path, reason=f"not valid TOML: {e}") from e
        except RecursionError as e:
            raise RegisterUnreadable(path=path, reason="not valid TOML: nested too deeply") from e
    else:
        return _from_csv(path, text)
    if isinstance(data, dict) and isinstance(data.get("register"), dict) and len(data) == 1:
        data = data["register"]
    if not isinstance(data, dict):
        raise RegisterUnreadable(path=path, reason="expected a table of keys and values")
    return _from_mapping(path, data)


def check_register(
    register: TransferRegister, files: Iterable[Any], records: Iterable[Record]
) -> list[Finding]:
    """Compare the register's totals with the files and the catalogue records received.

    ``files`` are the payload files that will be kept (anything with ``path`` and
    ``size``). Without records the item, volume and page counts cannot be compared and are
    reported as 'not performed'.
    """
    findings: list[Finding] = []
    src = register.path.name

    def compare(check: CheckDef, label: str, declared: int | None, found: int, note: str) -> None:
        if declared is None or declared == found:
            return
        findings.append(
            Finding(
                check.code,
                "fail",
                f"the register ({src}) declares {declared} {label}, {note} {found}",
                details={"declared": declared, "found": found, "register": str(register.path)},
            )
        )

    count = size = 0
    for f in files:
        count += 1
        size += int(f.size)
    compare(FILES, "files", register.files, count, "the transfer has")
    compare(BYTES, "bytes", register.bytes, size, "the files hold")

    wanted = [
        (ITEMS, register.items, "items (件)"),
        (VOLUMES, register.volumes, "volumes (卷)"),
        (PAGES, register.pages, "pages"),
    ]
    if not records:
        for check, declared, label in wanted:
            if declared is not None:
                findings.append(
                    Finding(
                        check.code,
                        "not performed",
                        f"the register ({src}) declares {declared} {label}; no catalogue sheet"
                        " to compare with",
                    )
                )
        return findings

    # one pass over the records (they may be a table on disk)
    items = volumes = pages = without_pages = 0
    others: list[Record] = []
    more = 0
    for r in records:
        if r.level == "volume":
            volumes += 1
        else:
            items += 1
            page_count = r.fields.get("pages", "").strip()
            if page_count.isdigit():
                pages += int(page_count)
            else:
                without_pages += 1
        if register.fonds and r.fields.get("fonds", "").strip() not in ("", register.fonds):
            if len(others) < 50:
                others.append(r)
            else:
                more += 1
    compare(ITEMS, "items (件)", register.items, items, "the sheet has")
    compare(VOLUMES, "volumes (卷)", register.volumes, volumes, "the sheet has")
    if register.pages is not None:
        note = "the sheet's 页数 add up to"
        if without_pages:
            note = f"the sheet's 页数 ({without_pages} item row(s) without one) add up to"
        compare(PAGES, "pages", register.pages, pages, note)
    for r in others:
        findings.append(
            Finding(
                FONDS.code,
                "fail",
                f"row {r.row}: 全宗号 {r.fields.get('fonds')!r} differs from the register's"
                f" {register.fonds!r}",
                row=r.row,
            )
        )
    if more:
        findings.append(Finding(FONDS.code, "fail", f"{more} more rows with another 全宗号"))
    return findings
