"""Small packages for the metadata tests, built in memory."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from preservation.metadata.mets_writer import MetsPackage, TagFile
from preservation.model import Agent, Event, FileEntry, FormatInfo, Record

SCHEMAS = Path(__file__).resolve().parents[2] / ".." / "shared" / "schemas"
AIP = "3f2a6e0c-1d5b-4c8e-9a77-0b6f1c2d3e4f"
CREATED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def digests(seed: str) -> dict[str, str]:
    data = seed.encode()
    return {"sha256": hashlib.sha256(data).hexdigest(), "sha512": hashlib.sha512(data).hexdigest()}


def pdf_format() -> FormatInfo:
    return FormatInfo(
        puid="fmt/95",
        mime="application/pdf",
        name="Acrobat PDF/A - Portable Document Format",
        version="1b",
        basis="extension match pdf; byte match at [[0 8] [1200 7]]",
        tool_version="1.11.1",
        signature="default.sig",
    )


def agents() -> list[Agent]:
    return [
        Agent("preservation/0.1.0", "preservation", "software", version="0.1.0"),
        Agent("organization:市档案馆", "市档案馆", "organization"),
        Agent("person:张三", "张三", "person", note="档案室"),
    ]


def chinese_package() -> MetsPackage:
    """Two items of fonds Z109 / 2011, one volume, a migrated copy and a loose file."""
    files = [
        FileEntry("2011/Z109-WS·2011-Y-BGS-0001/正文.pdf", 1234, digests("a"), format=pdf_format()),
        FileEntry(
            "2011/Z109-WS·2011-Y-BGS-0001/附件 1.jpg",
            999,
            digests("b"),
            original_name="附件 1.JPG",
            format=FormatInfo("fmt/43", "image/jpeg", "JPEG File Interchange Format", "1.01", None),
        ),
        FileEntry(
            "2011/Z109-WS·2011-Y-BGS-0002/扫描 件 %1.tif",
            55,
            digests("c"),
            # what opening it found: kept in the PREMIS object (objectCharacteristicsExtension)
            properties={
                "image_format": "TIFF",
                "dpi": [300.0, 300.0],
                "colour_mode": "greyscale",
                "frames": 2,
                "dpi_below_minimum": False,
                "note": "扫描 <件> & \"说明\"]]>",
            },
        ),
        FileEntry("2011/卷/0001.pdf", 77, digests("d")),
        FileEntry("readme.txt", 5, digests("e")),
    ]
    files.append(
        FileEntry(
            "2011/Z109-WS·2011-Y-BGS-0001/附件 1.jp2",
            4321,
            digests("f"),
            role="migrated",
            derived_from=files[1].uuid,
        )
    )
    common = {"fonds": "Z109", "year": "2011", "retention": "永久", "unit": "BGS"}
    records = [
        Record(
            2,
            {
                **common,
                "reference_code": "Z109-WS·2011-Y-BGS-0001",
                "item_number": "0001",
                "title": "关于开展档案工作的通知",
                "creator": "办公室",
                "date": "20110315",
                "security_level": "内部",
                "open_status": "控制",
                "pages": "3",
            },
            files=[files[0].path, files[1].path],
        ),
        Record(
            3,
            {
                **common,
                "reference_code": "Z109-WS·2011-Y-BGS-0002",
                "item_number": "0002",
                "title": "会议纪要",
                "resolution": "300",
                "volume": "0007",
            },
            files=[files[2].path],
        ),
        Record(
            4,
            {**common, "level": "卷", "volume": "0007", "title": "2011年会议纪要卷"},
            files=[files[3].path],
        ),
    ]
    events = [
        Event(
            "ingestion start",
            "success",
            "transfer received",
            datetime=CREATED,
            agents=[("preservation/0.1.0", "executing program"), ("person:张三", "submitter")],
        ),
        Event(
            "format identification",
            "warning",
            "siegfried 1.11.1",
            "1 file not identified",
            datetime=CREATED,
            agents=[("preservation/0.1.0", "executing program")],
            objects=[files[4].uuid],
        ),
    ]
    return MetsPackage(
        aip_id=AIP,
        version=1,
        created=CREATED,
        label="关于开展档案工作的通知",
        files=lambda: iter(files),
        agents=agents(),
        events=events,
        descriptive={
            "title": "关于开展档案工作的通知",
            "reference_code": "Z109-WS·2011-Y-BGS-0001",
            "fonds": "Z109",
            "year": "2011",
            "retention": "永久",
            "security_level": "内部",
            "open_status": "控制",
            "transfer": "移交-2024-001",
        },
        records=records,
        rights={"security_level": "内部", "open_status": "控制", "retention": "永久"},
        tag_files=[TagFile("metadata/report.json", 10, digests("r"), "application/json")],
    )
