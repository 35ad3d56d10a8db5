"""Descriptive metadata: Dublin Core, the archival (DA/T 46) fields, and rights.

Archival fields are written in our own namespace (:data:`~.namespaces.ARCHIVAL_NS`),
one ``field`` element per catalogue column so that any key survives a round trip::

    <arc:record level="item" row="3">
      <arc:field key="reference_code" name="档号">Z109-WS·2011-Y-BGS-0001</arc:field>
      <arc:field key="title" name="题名">关于……的通知</arc:field>
    </arc:record>

``level`` is ``aip`` for the package-level description, otherwise the record's level
(``item`` 件 or ``volume`` 卷); ``row`` is the 1-based row of the catalogue sheet.
``key`` is the canonical key of :data:`preservation.model.ARCHIVAL_FIELDS`, ``name``
its Chinese column name (informational). Known keys come first in the table's order.

Dublin Core is derived from the same fields (``oai_dc:dc`` container, ``dc:`` elements):
title 题名, creator 责任者, date 日期 (or 年度), identifier 档号 and 文件编号 (plus the
AIP's ``urn:uuid:``), description 备注, contributor 机构或问题, and one ``dc:rights``
summarising 密级, 开放状态, 保管期限 and 保密期限.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from lxml import etree

from preservation.errors import MetsBuildError
from preservation.metadata.namespaces import ARCHIVAL_NS, DC_NS, OAI_DC_NS, arc, dc
from preservation.metadata.xmlsafe import xml_text_problem
from preservation.model import ARCHIVAL_FIELDS, new_uuid

Restriction = Literal["Allow", "Conditional", "Disallow"]

DC_ELEMENTS = (
    "title",
    "creator",
    "subject",
    "description",
    "publisher",
    "contributor",
    "date",
    "type",
    "format",
    "identifier",
    "source",
    "language",
    "relation",
    "coverage",
    "rights",
)

# (archival key, DC element), in the order written.
DC_MAPPING: tuple[tuple[str, str], ...] = (
    ("title", "title"),
    ("creator", "creator"),
    ("unit", "contributor"),
    ("date", "date"),
    ("reference_code", "identifier"),
    ("document_number", "identifier"),
    ("notes", "description"),
)

# Security levels (密级) under which nothing may be disseminated without review.
CLASSIFIED = frozenset({"秘密", "机密", "绝密", "secret", "confidential", "top secret"})
INTERNAL = frozenset({"内部", "internal"})
OPEN_ALLOW = frozenset({"开放", "open", "公开"})
OPEN_CONDITIONAL = frozenset({"控制", "控制使用", "限制", "限制开放", "restricted", "controlled"})
OPEN_DISALLOW = frozenset({"不开放", "未开放", "延期开放", "closed"})


def checked(value: str, what: str) -> str:
    """``value`` if XML can carry it, else MetsBuildError naming ``what``."""
    problem = xml_text_problem(value)
    if problem:
        raise MetsBuildError(reason=f"{what} {problem}")
    return value


@dataclass
class Rights:
    """Access rights of an AIP, from the DA/T 46 fields of the same names."""

    KEYS: ClassVar[tuple[str, ...]] = ("security_level", "open_status", "retention", "secrecy_term")

    security_level: str = ""  # 密级
    open_status: str = ""  # 开放状态
    retention: str = ""  # 保管期限
    secrecy_term: str = ""  # 保密期限
    identifier: str = field(default_factory=new_uuid)  # PREMIS rightsStatementIdentifier

    @classmethod
    def from_fields(cls, fields: Mapping[str, str], identifier: str | None = None) -> Rights:
        values = {k: str(fields.get(k) or "").strip() for k in cls.KEYS}
        if identifier:
            return cls(identifier=identifier, **values)
        return cls(**values)

    def fields(self) -> dict[str, str]:
        """The non-empty values by archival key."""
        return {k: v for k in self.KEYS if (v := getattr(self, k))}

    @property
    def restriction(self) -> Restriction:
        """Whether dissemination is allowed; the stricter of 密级 and 开放状态 wins.

        Classified material (秘密/机密/绝密) and closed records (不开放, 延期开放) are
        ``Disallow``; 内部 material, controlled records (控制) and an open status that is
        empty or unknown are ``Conditional``; only open (开放) unclassified records are
        ``Allow``.
        """
        level = self.security_level.strip().lower()
        status = self.open_status.strip().lower()
        if level in CLASSIFIED or status in OPEN_DISALLOW:
            return "Disallow"
        if level in INTERNAL or status not in OPEN_ALLOW:
            return "Conditional"
        return "Allow"


_DAY = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")
_RANGE = re.compile(r"^(.+?)\s*(?:/|~|～|至|[-–—](?=\s*\d{4}-?\d{2}-?\d{2}$))\s*(.+)$")


def _day(text: str) -> dt.date | None:
    m = _DAY.match(text.strip())
    if m is None:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def date_span(text: str) -> tuple[dt.date, dt.date] | None:
    """The first and last day of a 日期 value: ``YYYYMMDD`` or ``YYYY-MM-DD``, or a
    range of two (``20110301-20110315``, ``2011-03-01/2011-03-15``, ``…至…``) as a
    volume's date may be; None for anything else (or a range that ends first)."""
    text = (text or "").strip()
    one = _day(text)
    if one is not None:
        return one, one
    m = _RANGE.match(text)
    if m is None:
        return None
    start, end = _day(m.group(1)), _day(m.group(2))
    if start is None or end is None or end < start:
        return None
    return start, end


def date_fields(values: Iterable[str]) -> dict[str, str]:
    """AIP-level date fields from the 日期 of its records: ``date`` when they all
    share one value, and ``date_from``/``date_to`` (ISO dates) spanning every value
    that :func:`date_span` reads; empty when there is none."""
    distinct = {v.strip() for v in values} - {""}
    out: dict[str, str] = {}
    if len(distinct) == 1:
        out["date"] = next(iter(distinct))
    spans = [s for v in distinct if (s := date_span(v)) is not None]
    if spans:
        out["date_from"] = min(s[0] for s in spans).isoformat()
        out["date_to"] = max(s[1] for s in spans).isoformat()
    return out


def _ordered(fields: Mapping[str, str]) -> list[tuple[str, str]]:
    known = [(k, fields[k]) for k in ARCHIVAL_FIELDS if k in fields]
    rest = [(k, v) for k, v in fields.items() if k not in ARCHIVAL_FIELDS]
    return known + rest


def archival_element(
    fields: Mapping[str, str],
    *,
    level: str,
    row: int | None = None,
    nsmap: Mapping[str | None, str] | None = None,
) -> Any:
    """``<arc:record>`` holding every field (empty values included)."""
    ns: dict[str | None, str] = dict(nsmap or {"arc": ARCHIVAL_NS})
    el = etree.Element(arc("record"), nsmap=ns)
    el.set("level", checked(level, "record level"))
    if row is not None:
        el.set("row", str(int(row)))
    for key, value in _ordered(fields):
        f = etree.SubElement(el, arc("field"))
        f.set("key", checked(str(key), "archival field name"))
        name = ARCHIVAL_FIELDS.get(key)
        if name:
            f.set("name", name)
        f.text = checked(str(value), f"archival field {key!r} (row {row})")
    return el


def read_archival(el: Any) -> tuple[str, int | None, dict[str, str]]:
    """``(level, row, fields)`` from an ``<arc:record>`` element."""
    level = el.get("level") or "item"
    row_text = el.get("row")
    row = int(row_text) if row_text is not None and row_text.strip().isdigit() else None
    fields: dict[str, str] = {}
    for f in el.iterchildren(arc("field")):
        key = f.get("key")
        if key is not None:
            fields[key] = f.text or ""
    return level, row, fields


def dublin_core(
    fields: Mapping[str, str],
    *,
    title: str = "",
    identifiers: Iterable[str] = (),
    rights: Rights | None = None,
    nsmap: Mapping[str | None, str] | None = None,
) -> Any:
    """``<oai_dc:dc>`` built from archival fields (see the module docstring)."""
    ns: dict[str | None, str] = dict(nsmap or {"oai_dc": OAI_DC_NS, "dc": DC_NS})
    el = etree.Element(f"{{{OAI_DC_NS}}}dc", nsmap=ns)
    values: list[tuple[str, str]] = []
    main_title = title or fields.get("title", "")
    if main_title:
        values.append(("title", main_title))
    for key, element in DC_MAPPING:
        value = (fields.get(key) or "").strip()
        if key == "title" or not value:
            continue
        values.append((element, value))
    if not fields.get("date") and fields.get("year"):
        values.append(("date", fields["year"].strip()))
    values.extend(("identifier", i) for i in identifiers if i)
    summary = rights_summary(rights or Rights.from_fields(fields))
    if summary:
        values.append(("rights", summary))
    for element, value in values:
        etree.SubElement(el, dc(element)).text = checked(value, f"Dublin Core {element}")
    return el


def rights_summary(rights: Rights) -> str:
    parts = [f"{ARCHIVAL_FIELDS[k]}: {v}" for k, v in rights.fields().items()]
    return "; ".join(parts)


def read_dublin_core(el: Any) -> dict[str, list[str]]:
    """DC element name -> values, in document order."""
    out: dict[str, list[str]] = {}
    for child in el.iter():
        if not isinstance(child.tag, str) or not child.tag.startswith(f"{{{DC_NS}}}"):
            continue
        out.setdefault(child.tag[len(DC_NS) + 2 :], []).append(child.text or "")
    return out
