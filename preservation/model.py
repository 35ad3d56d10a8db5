"""Plain data shared by ingest, metadata and the catalogue.

These are in-memory descriptions of a package being built or read back; the
catalogue's SQLAlchemy models are separate (only ``preservation.catalog`` speaks SQL).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

# Canonical keys of the DA/T 46 catalogue fields, with their Chinese column names.
ARCHIVAL_FIELDS: dict[str, str] = {
    "reference_code": "档号",
    "fonds": "全宗号",
    "year": "年度",
    "retention": "保管期限",
    "unit": "机构或问题",
    "item_number": "件号",
    "title": "题名",
    "creator": "责任者",
    "date": "日期",
    "document_number": "文件编号",
    "security_level": "密级",
    "secrecy_term": "保密期限",
    "pages": "页数",
    "open_status": "开放状态",
    "notes": "备注",
    # columns that tie rows to files and structure, and digitisation properties
    "path": "文件路径",
    "level": "著录层次",
    "volume": "案卷号",
    "resolution": "分辨率",
    "colour_mode": "色彩模式",
    "compression": "压缩方式",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_uuid() -> str:
    return str(uuid.uuid4())


@dataclass
class FormatInfo:
    puid: str | None  # PRONOM id, e.g. fmt/276; None when unidentified
    mime: str | None
    name: str | None
    version: str | None
    basis: str | None  # why Siegfried says so
    warning: str | None = None
    tool: str = "siegfried"
    tool_version: str | None = None
    signature: str | None = None  # signature file version

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return str(value)


def stored_properties(properties: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """:attr:`FileEntry.properties` as the catalogue and the METS keep them: JSON
    values only (tuples as lists, a non-finite number as null, anything else as
    text); None when there is nothing."""
    if not properties:
        return None
    return {str(k): _json_value(v) for k, v in properties.items()}


@dataclass
class FileEntry:
    """One payload file of a package."""

    path: str  # NFC, '/'-separated, relative to the payload root (without 'data/')
    size: int
    digests: dict[str, str]
    source: Path | None = None  # where it is read from during ingest
    original_name: str | None = None  # the name as received, if it differed (NFD etc.)
    format: FormatInfo | None = None
    record_row: int | None = None  # sheet row describing it
    uuid: str = field(default_factory=new_uuid)
    supplied_digests: dict[str, str] = field(default_factory=dict)
    role: Literal["original", "migrated", "access"] = "original"
    derived_from: str | None = None  # uuid of the source file for migrations
    # what opening the file found: pages, pixel size, dpi, colour mode, compression...
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def bag_path(self) -> str:
        return f"data/{self.path}"


@dataclass
class Record:
    """One row of the catalogue sheet: an item (件) or a volume (卷)."""

    row: int  # 1-based sheet row (header is row 1)
    fields: dict[str, str]  # canonical keys of ARCHIVAL_FIELDS -> values
    files: list[str] = field(default_factory=list)  # payload paths linked to it

    @property
    def reference_code(self) -> str:
        return self.fields.get("reference_code", "")

    @property
    def level(self) -> Literal["item", "volume"]:
        return "volume" if self.fields.get("level", "").strip() in ("卷", "volume") else "item"


@dataclass
class Agent:
    identifier: str  # e.g. 'preservation/0.1.0' or 'urn:uuid:…'
    name: str
    type: Literal["software", "organization", "person"]
    version: str | None = None
    note: str | None = None

    @property
    def identifier_type(self) -> str:
        return {"software": "software", "organization": "organization", "person": "person"}[
            self.type
        ]


@dataclass
class Event:
    """A PREMIS event."""

    type: str  # LoC event type label, e.g. 'ingestion start', 'message digest calculation'
    outcome: Literal["success", "failure", "warning", "not performed"]
    detail: str = ""
    outcome_detail: str = ""
    datetime: datetime = field(default_factory=utcnow)
    identifier: str = field(default_factory=new_uuid)
    agents: list[tuple[str, str]] = field(default_factory=list)  # (agent identifier, role)
    objects: list[str] = field(default_factory=list)  # object identifiers (file uuids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "type": self.type,
            "datetime": self.datetime.isoformat(),
            "outcome": self.outcome,
            "detail": self.detail,
            "outcome_detail": self.outcome_detail,
            "agents": [list(a) for a in self.agents],
            "objects": list(self.objects),
        }


# PREMIS eventType values are labels of the Library of Congress vocabulary.
EVENT_TYPE_AUTHORITY = "eventType"
EVENT_TYPE_AUTHORITY_URI = "http://id.loc.gov/vocabulary/preservation/eventType"
