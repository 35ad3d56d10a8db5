"""Check definitions and findings: the vocabulary of the four-property check (DA/T 70).

Every check has a stable code, a property (authenticity, integrity, usability,
security), an English and a Chinese title, and a cost rank (cheap checks run first).
Check modules declare their checks with :func:`define`; the table :data:`CHECKS` is
the one place where codes live. A :class:`Finding` is one result of one check, with
evidence naming the file or the sheet row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Property = Literal["authenticity", "integrity", "usability", "security"]
Result = Literal["pass", "fail", "warn", "not performed"]
PROPERTIES: tuple[Property, ...] = ("authenticity", "integrity", "usability", "security")
PROPERTY_ZH = {
    "authenticity": "真实性",
    "integrity": "完整性",
    "usability": "可用性",
    "security": "安全性",
}
RESULT_ZH = {"pass": "通过", "fail": "不通过", "warn": "警告", "not performed": "未执行"}


@dataclass(frozen=True)
class CheckDef:
    code: str
    property: Property
    title_en: str
    title_zh: str
    cost: int = 50  # lower runs earlier


CHECKS: dict[str, CheckDef] = {}


def define(code: str, prop: Property, title_en: str, title_zh: str, cost: int = 50) -> CheckDef:
    """Register a check; a code may be defined once only."""
    existing = CHECKS.get(code)
    if existing is not None and existing != CheckDef(code, prop, title_en, title_zh, cost):
        raise ValueError(f"check code {code} defined twice")
    check = CheckDef(code, prop, title_en, title_zh, cost)
    CHECKS[code] = check
    return check


@dataclass
class Finding:
    code: str
    result: Result
    message: str
    file: str | None = None  # path inside the transfer payload
    row: int | None = None  # 1-based row of the catalogue sheet (header = row 1)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def check(self) -> CheckDef:
        return CHECKS[self.code]

    @property
    def property(self) -> Property:
        return self.check.property

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "code": self.code,
            "property": self.property,
            "result": self.result,
            "message": self.message,
        }
        if self.file is not None:
            d["file"] = self.file
        if self.row is not None:
            d["row"] = self.row
        if self.details:
            d["details"] = self.details
        return d


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Cheapest checks first, then by code, file and row (stable for reports and tests)."""
    return sorted(
        findings,
        key=lambda f: (f.check.cost, f.code, f.file or "", f.row or 0),
    )


def blocking(findings: Iterable[Finding], blocking_properties: Iterable[str]) -> list[Finding]:
    """The failures that block ingest under the configured policy."""
    props = set(blocking_properties)
    return [f for f in findings if f.result == "fail" and f.property in props]
