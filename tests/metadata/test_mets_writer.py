"""The METS writer: structure, identifiers, validity, and refusals."""

from __future__ import annotations

import dataclasses
import io
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from lxml import etree

from preservation.errors import MetsBuildError
from preservation.metadata.mets_writer import (
    MetsPackage,
    file_id,
    href,
    write_mets,
    xml_id,
)
from preservation.metadata.namespaces import METS_NS, PREMIS_NS, PROFILE
from preservation.metadata.xmlsafe import parse_untrusted
from preservation.metadata.xsd import validate_mets
from preservation.model import Event, FileEntry, Record
from tests.metadata.builders import AIP, SCHEMAS, chinese_package, digests

NS = {"mets": METS_NS, "premis": PREMIS_NS, "xlink": "http://www.w3.org/1999/xlink"}
NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _write(tmp_path: Path, package: MetsPackage) -> tuple[Path, Any]:
    path = tmp_path / "mets.xml"
    write_mets(path, package)
    assert validate_mets(path, schemas=SCHEMAS) == []
    return path, parse_untrusted(path).getroot()


def _files(package: MetsPackage) -> list[FileEntry]:
    return list(package.files())


def test_header_and_root(tmp_path: Path) -> None:
    pkg = chinese_package()
    _, root = _write(tmp_path, pkg)
    assert root.get("OBJID") == f"urn:uuid:{AIP}"
    assert root.get("PROFILE") == PROFILE
    assert root.get("TYPE") == "AIP"
    assert root.get("LABEL") == "关于开展档案工作的通知"
    hdr = root.find("mets:metsHdr", NS)
    assert hdr.get("CREATEDATE") == "2024-05-06T07:08:09+00:00"
    assert hdr.get("RECORDSTATUS") == "complete"
    agents = {
        (a.get("ROLE"), a.get("TYPE"), a.get("OTHERTYPE"), a.get("OTHERROLE")): a.findtext(
            "mets:name", namespaces=NS
        )
        for a in hdr.findall("mets:agent", NS)
    }
    assert agents == {
        ("CREATOR", "OTHER", "SOFTWARE", None): "preservation",
        ("CREATOR", "ORGANIZATION", None, None): "市档案馆",
        ("OTHER", "INDIVIDUAL", None, "SUBMITTER"): "张三",
    }
    software = hdr.find("mets:agent[@OTHERTYPE='SOFTWARE']", NS)
    assert software.findtext("mets:note", namespaces=NS) == "version 0.1.0"
    alt = {a.get("TYPE"): a.text for a in hdr.findall("mets:altRecordID", NS)}
    assert alt == {"AIP version": "1", "reference code": "Z109-WS·2011-Y-BGS-0001"}


def test_descriptive_sections(tmp_path: Path) -> None:
    _, root = _write(tmp_path, chinese_package())
    dc = root.find("mets:dmdSec[@ID='dmd-aip-dc']/mets:mdWrap", NS)
    assert dc.get("MDTYPE") == "DC"
    values = {
        el.tag.split("}")[1]: el.text
        for el in dc.iterfind(".//{http://purl.org/dc/elements/1.1/}*")
    }
    assert values["title"] == "关于开展档案工作的通知"
    assert values["date"] == "2011"
    assert "保管期限: 永久" in values["rights"]
    identifiers = [el.text for el in dc.iterfind(".//{http://purl.org/dc/elements/1.1/}identifier")]
    assert identifiers == ["Z109-WS·2011-Y-BGS-0001", f"urn:uuid:{AIP}"]
    archival = root.find("mets:dmdSec[@ID='dmd-aip-archival']/mets:mdWrap", NS)
    assert (archival.get("MDTYPE"), archival.get("OTHERMDTYPE")) == ("OTHER", "DA/T 46")
    fields = archival.findall(".//{urn:preservation:archival:1}field")
    by_key = {f.get("key"): (f.get("name"), f.text) for f in fields}
    assert by_key["reference_code"] == ("档号", "Z109-WS·2011-Y-BGS-0001")
    assert by_key["transfer"] == (None, "移交-2024-001")
    records = root.findall("mets:dmdSec", NS)[2:]
    assert [r.get("ID") for r in records] == ["dmd-rec-1", "dmd-rec-2", "dmd-rec-3"]


def test_one_techmd_per_file_with_premis_object(tmp_path: Path) -> None:
    pkg = chinese_package()
    files = _files(pkg)
    _, root = _write(tmp_path, pkg)
    techmds = root.findall("mets:amdSec/mets:techMD", NS)
    assert len(techmds) == len(files)
    first = techmds[0].find(".//premis:object", NS)
    assert first.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "premis:file"
    idents = [
        (
            i.findtext("premis:objectIdentifierType", namespaces=NS),
            i.findtext("premis:objectIdentifierValue", namespaces=NS),
        )
        for i in first.findall("premis:objectIdentifier", NS)
    ]
    assert idents == [("UUID", files[0].uuid), ("local path", f"data/{files[0].path}")]
    fixity = first.findall(".//premis:fixity", NS)
    assert [f.findtext("premis:messageDigestAlgorithm", namespaces=NS) for f in fixity] == [
        "SHA-256",
        "SHA-512",
    ]
    alg = fixity[0].find("premis:messageDigestAlgorithm", NS)
    assert alg.get("authority") == "cryptographicHashFunctions"
    assert first.findtext(".//premis:compositionLevel", namespaces=NS) == "0"
    assert first.findtext(".//premis:formatRegistryKey", namespaces=NS) == "fmt/95"
    assert first.findtext(".//premis:formatRegistryName", namespaces=NS) == "PRONOM"
    migrated = techmds[-1].find(".//premis:relationship", NS)
    assert migrated.findtext("premis:relationshipType", namespaces=NS) == "derivation"
    assert migrated.findtext("premis:relationshipSubType", namespaces=NS) == "has source"
    assert migrated.findtext(".//premis:relatedObjectIdentifierValue", namespaces=NS) == (
        files[1].uuid
    )
    renamed = techmds[1].findtext(".//premis:originalName", namespaces=NS)
    assert renamed == "附件 1.JPG"


def test_one_digiprov_per_event_and_agent(tmp_path: Path) -> None:
    pkg = chinese_package()
    _, root = _write(tmp_path, pkg)
    events = root.findall("mets:amdSec/mets:digiprovMD/mets:mdWrap[@MDTYPE='PREMIS:EVENT']", NS)
    agents = root.findall("mets:amdSec/mets:digiprovMD/mets:mdWrap[@MDTYPE='PREMIS:AGENT']", NS)
    assert len(events) == len(pkg.events) == 2
    assert len(agents) == len(pkg.agents) == 3
    ingest = events[0].find(".//premis:event", NS)
    etype = ingest.find("premis:eventType", NS)
    assert etype.text == "ingestion start"
    assert etype.get("authorityURI") == "http://id.loc.gov/vocabulary/preservation/eventType"
    # an event over the whole package lists no objects; one naming a file lists it
    assert ingest.find("premis:linkingObjectIdentifier", NS) is None
    ident = events[1].find(".//premis:linkingObjectIdentifierValue", NS)
    assert ident.text == pkg.events[1].objects[0]
    roles = [r.text for r in ingest.iterfind(".//premis:linkingAgentRole", NS)]
    assert roles == ["executing program", "submitter"]


def test_rights(tmp_path: Path) -> None:
    _, root = _write(tmp_path, chinese_package())
    rights = root.find("mets:amdSec/mets:rightsMD/mets:mdWrap", NS)
    assert rights.get("MDTYPE") == "PREMIS:RIGHTS"
    statement = rights.find(".//premis:rightsStatement", NS)
    assert statement.findtext("premis:rightsBasis", namespaces=NS) == "Statute"
    notes = [n.text for n in statement.iterfind(".//premis:statuteNote", NS)]
    assert notes == [
        "开放状态 [open_status]: 控制",
        "保管期限 [retention]: 永久",
        "密级 [security_level]: 内部",
    ]
    assert statement.findtext(".//premis:restriction", namespaces=NS) == "Conditional"
    assert statement.findtext(".//premis:act", namespaces=NS) == "disseminate"


def test_file_sec(tmp_path: Path) -> None:
    pkg = chinese_package()
    files = _files(pkg)
    _, root = _write(tmp_path, pkg)
    groups = root.findall("mets:fileSec/mets:fileGrp", NS)
    assert [g.get("USE") for g in groups] == ["original", "migrated", "metadata"]
    originals = groups[0].findall("mets:file", NS)
    assert len(originals) == 5
    scan = originals[2]
    assert scan.get("ID") == file_id(files[2].uuid)
    assert scan.get("ADMID") == f"techMD-{files[2].uuid}"
    assert scan.get("CHECKSUMTYPE") == "SHA-256"
    assert scan.get("CHECKSUM") == files[2].digests["sha256"]
    assert scan.get("SIZE") == "55"
    loc = scan.find("mets:FLocat", NS)
    assert (loc.get("LOCTYPE"), loc.get("OTHERLOCTYPE")) == ("OTHER", "SYSTEM")
    target = loc.get("{http://www.w3.org/1999/xlink}href")
    assert (
        target == "data/2011/Z109-WS%C2%B72011-Y-BGS-0002/%E6%89%AB%E6%8F%8F%20%E4%BB%B6%20%251.tif"
    )
    assert unquote(target) == files[2].bag_path
    assert originals[0].get("MIMETYPE") == "application/pdf"
    tag = groups[2].find("mets:file", NS)
    assert tag.find("mets:FLocat", NS).get("{http://www.w3.org/1999/xlink}href") == (
        "metadata/report.json"
    )


def test_ids_are_ncnames_and_unique(tmp_path: Path) -> None:
    _, root = _write(tmp_path, chinese_package())
    ids = [el.get("ID") for el in root.iter() if el.get("ID") is not None]
    assert len(ids) == len(set(ids))
    assert all(NCNAME.match(i) for i in ids)
    assert xml_id("file", "a/b 档") != xml_id("file", "a/b 案")
    assert NCNAME.match(xml_id("file", "a/b 档"))
    assert xml_id("file", "plain-token") == "file-plain-token"


def _div_tree(div: Any) -> Any:
    kids = [_div_tree(d) for d in div.findall("mets:div", NS)]
    fptrs = [f.get("FILEID") for f in div.findall("mets:fptr", NS)]
    return (div.get("TYPE"), div.get("LABEL"), fptrs, kids)


def test_physical_struct_map(tmp_path: Path) -> None:
    pkg = chinese_package()
    f = {e.path: file_id(e.uuid) for e in _files(pkg)}
    _, root = _write(tmp_path, pkg)
    physical = root.find("mets:structMap[@TYPE='physical']/mets:div", NS)
    item1 = "2011/Z109-WS·2011-Y-BGS-0001/"
    assert _div_tree(physical) == (
        "folder",
        "data",
        [],
        [
            (
                "folder",
                "2011",
                [],
                [
                    (
                        "folder",
                        "Z109-WS·2011-Y-BGS-0001",
                        [],
                        [
                            ("file", "正文.pdf", [f[item1 + "正文.pdf"]], []),
                            ("file", "附件 1.jp2", [f[item1 + "附件 1.jp2"]], []),
                            ("file", "附件 1.jpg", [f[item1 + "附件 1.jpg"]], []),
                        ],
                    ),
                    (
                        "folder",
                        "Z109-WS·2011-Y-BGS-0002",
                        [],
                        [
                            (
                                "file",
                                "扫描 件 %1.tif",
                                [f["2011/Z109-WS·2011-Y-BGS-0002/扫描 件 %1.tif"]],
                                [],
                            )
                        ],
                    ),
                    ("folder", "卷", [], [("file", "0001.pdf", [f["2011/卷/0001.pdf"]], [])]),
                ],
            ),
            ("file", "readme.txt", [f["readme.txt"]], []),
        ],
    )


def test_physical_map_same_for_sorted_and_unsorted_input(tmp_path: Path) -> None:
    pkg = chinese_package()
    files = _files(pkg)
    ordered = dataclasses.replace(pkg, files=lambda: iter(sorted(files, key=lambda e: e.path)))
    shuffled = dataclasses.replace(pkg, files=lambda: iter(list(reversed(files))))
    maps = []
    for n, variant in enumerate((ordered, shuffled)):
        path = tmp_path / f"{n}.xml"
        write_mets(path, variant)
        root = parse_untrusted(path).getroot()
        maps.append(_div_tree(root.find("mets:structMap[@TYPE='physical']/mets:div", NS)))
    assert maps[0] == maps[1]


def test_logical_struct_map(tmp_path: Path) -> None:
    pkg = chinese_package()
    f = {e.path: file_id(e.uuid) for e in _files(pkg)}
    _, root = _write(tmp_path, pkg)
    logical = root.find("mets:structMap[@TYPE='logical']/mets:div", NS)
    assert logical.get("DMDID") == "dmd-aip-dc dmd-aip-archival"
    assert logical.get("ADMID") == "rightsMD-aip"
    fonds = logical.find("mets:div", NS)
    assert (fonds.get("TYPE"), fonds.get("LABEL")) == ("fonds", "Z109")
    year = fonds.find("mets:div", NS)
    assert (year.get("TYPE"), year.get("LABEL")) == ("year", "2011")
    volume, item1 = year.findall("mets:div", NS)
    assert (volume.get("TYPE"), volume.get("LABEL"), volume.get("DMDID")) == (
        "volume",
        "0007",
        "dmd-rec-3",
    )
    vol_doc, item2 = volume.findall("mets:div", NS)
    assert vol_doc.get("TYPE") == "document"
    assert vol_doc.find("mets:fptr", NS).get("FILEID") == f["2011/卷/0001.pdf"]
    assert (item2.get("TYPE"), item2.get("DMDID"), item2.get("ORDER")) == ("item", "dmd-rec-2", "2")
    page = item2.find("mets:div", NS)
    assert page.get("TYPE") == "page"  # digitised (分辨率 given)
    assert (item1.get("TYPE"), item1.get("DMDID"), item1.get("LABEL")) == (
        "item",
        "dmd-rec-1",
        "Z109-WS·2011-Y-BGS-0001",
    )
    docs = item1.findall("mets:div", NS)
    assert [d.get("ORDER") for d in docs] == ["1", "2"]
    assert [d.find("mets:fptr", NS).get("FILEID") for d in docs] == [
        f["2011/Z109-WS·2011-Y-BGS-0001/正文.pdf"],
        f["2011/Z109-WS·2011-Y-BGS-0001/附件 1.jpg"],
    ]
    migrated = docs[1].find("mets:div", NS)
    assert migrated.get("TYPE") == "migrated"
    assert (
        migrated.find("mets:fptr", NS).get("FILEID") == f["2011/Z109-WS·2011-Y-BGS-0001/附件 1.jp2"]
    )
    unassigned = logical.find("mets:div[@TYPE='unassigned']", NS)
    assert [d.find("mets:fptr", NS).get("FILEID") for d in unassigned] == [f["readme.txt"]]


def test_no_unassigned_div_when_every_file_is_described(tmp_path: Path) -> None:
    entry = FileEntry("a.pdf", 1, digests("a"))
    pkg = dataclasses.replace(
        chinese_package(),
        files=lambda: iter([entry]),
        records=[Record(2, {"title": "t"}, files=["a.pdf"])],
    )
    _, root = _write(tmp_path, pkg)
    assert root.find(".//mets:div[@TYPE='unassigned']", NS) is None


def test_empty_package_is_valid(tmp_path: Path) -> None:
    pkg = MetsPackage(
        aip_id=AIP, version=1, created=chinese_package().created, label="", files=lambda: iter(())
    )
    _, root = _write(tmp_path, pkg)
    assert root.find("mets:fileSec", NS) is None


def test_later_version_marks_files_of_earlier_versions(tmp_path: Path) -> None:
    pkg = chinese_package()
    kept = {e.uuid for e in _files(pkg)[:2]}
    v2 = dataclasses.replace(
        pkg, version=2, previous_version=1, stored_in=lambda e: 1 if e.uuid in kept else None
    )
    _, root = _write(tmp_path, v2)
    alt = {a.get("TYPE"): a.text for a in root.iterfind("mets:metsHdr/mets:altRecordID", NS)}
    assert alt["AIP version"] == "2" and alt["previous AIP version"] == "1"
    locations = root.findall(".//premis:storage/premis:contentLocation", NS)
    assert len(locations) == 2
    assert {loc.findtext("premis:contentLocationValue", namespaces=NS) for loc in locations} == {
        "1"
    }


def test_writes_to_a_stream(tmp_path: Path) -> None:
    buf = io.BytesIO()
    write_mets(buf, chinese_package())
    assert validate_mets(etree.fromstring(buf.getvalue()), schemas=SCHEMAS) == []
    assert buf.getvalue().startswith(b"<?xml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda p: dataclasses.replace(
                p, records=[Record(9, {"reference_code": "X-1"}, files=["missing.pdf"])]
            ),
            "record row 9 (X-1) links 'missing.pdf'",
        ),
        (
            lambda p: dataclasses.replace(
                p, files=lambda: iter([FileEntry("../escape.txt", 1, digests("x"))]), records=[]
            ),
            "'..' segment",
        ),
        (
            lambda p: dataclasses.replace(p, descriptive={"title": "bad\x0bvalue"}),
            "U+000B",
        ),
        (
            lambda p: dataclasses.replace(p, created=datetime(2024, 1, 1)),  # noqa: DTZ001
            "naive datetime",
        ),
        (
            lambda p: dataclasses.replace(
                p,
                events=[Event("ingestion", "success", datetime=datetime(2024, 1, 1))],  # noqa: DTZ001
            ),
            "naive datetime",
        ),
    ],
)
def test_refusals_leave_no_file(tmp_path: Path, change: Any, message: str) -> None:
    path = tmp_path / "mets.xml"
    with pytest.raises(MetsBuildError) as info:
        write_mets(path, change(chinese_package()))
    assert info.value.code == "MET002"
    assert message in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_all_problems_reported_together(tmp_path: Path) -> None:
    files = [FileEntry("../a", 1, digests("a")), FileEntry("/b", 1, digests("b"))]
    pkg = dataclasses.replace(
        chinese_package(),
        files=lambda: iter(files),
        records=[Record(5, {}, files=["x", "y"])],
    )
    with pytest.raises(MetsBuildError) as info:
        write_mets(tmp_path / "m.xml", pkg)
    problems = info.value.fields["problems"]
    assert len(problems) == 4


def test_href_encoding() -> None:
    assert href("data/a b/%/档.pdf") == "data/a%20b/%25/%E6%A1%A3.pdf"
    assert href("data/c:d#e?f") == "data/c%3Ad%23e%3Ff"


def test_derivation_chain_nests_and_orphan_volume_gets_a_div(tmp_path: Path) -> None:
    a = FileEntry("a.tif", 1, digests("a"))
    b = FileEntry("a.jp2", 1, digests("b"), role="migrated", derived_from=a.uuid)
    c = FileEntry("a.jpg", 1, digests("c"), role="access", derived_from=b.uuid)
    records = [
        Record(2, {"fonds": "F", "year": "2020", "volume": "0009", "item_number": "2"}, ["a.tif"]),
        Record(3, {"fonds": "F", "year": "2020", "volume": "0009", "item_number": "10"}, []),
    ]
    pkg = dataclasses.replace(
        chinese_package(), files=lambda: iter([a, b, c]), records=records, rights=None
    )
    _, root = _write(tmp_path, pkg)
    logical = root.find("mets:structMap[@TYPE='logical']/mets:div", NS)
    assert logical.get("ADMID") is None
    assert logical.find("mets:div[@TYPE='unassigned']", NS) is None
    volume = logical.find("mets:div/mets:div/mets:div", NS)
    assert (volume.get("TYPE"), volume.get("LABEL"), volume.get("DMDID")) == (
        "volume",
        "0009",
        None,
    )
    items = volume.findall("mets:div", NS)
    assert [i.get("ORDER") for i in items] == ["2", "10"]  # natural order of 件号
    doc = items[0].find("mets:div", NS)
    assert _div_tree(doc) == (
        "document",
        "a.tif",
        [file_id(a.uuid)],
        [("migrated", "a.jp2", [file_id(b.uuid)], [("access", "a.jpg", [file_id(c.uuid)], [])])],
    )
    assert [g.get("USE") for g in root.iterfind("mets:fileSec/mets:fileGrp", NS)] == [
        "original",
        "migrated",
        "access",
        "metadata",
    ]
