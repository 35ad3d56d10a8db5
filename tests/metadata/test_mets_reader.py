"""Reading METS back: round trips (Chinese metadata, Hypothesis) and inconsistencies."""

from __future__ import annotations

import dataclasses
import io
import re
import string
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preservation.errors import MetsInvalid, XMLUnsafe
from preservation.metadata.descriptive import Rights
from preservation.metadata.mets_reader import MetsSummary, read_mets
from preservation.metadata.mets_writer import MetsPackage, TagFile, write_mets
from preservation.metadata.xsd import validate_mets
from preservation.model import ARCHIVAL_FIELDS, Agent, Event, FileEntry, FormatInfo, Record
from preservation.paths import path_problem
from tests.metadata.builders import AIP, SCHEMAS, chinese_package


def _expected_files(pkg: MetsPackage) -> list[FileEntry]:
    out = []
    for e in pkg.files():
        copy = dataclasses.replace(e, record_row=None, source=None, supplied_digests={})
        if copy.original_name == copy.path:
            copy.original_name = None
        out.append(copy)
    return out


def _assert_round_trip(pkg: MetsPackage, s: MetsSummary) -> None:
    assert s.aip_id == pkg.aip_id
    assert s.version == pkg.version
    assert s.previous_version == pkg.previous_version
    assert s.label == pkg.label
    assert s.created == pkg.created
    assert s.record_status == pkg.record_status
    assert s.descriptive == dict(pkg.descriptive)
    # a record's files are a set; METS lists them in path order
    assert [(r.row, r.fields, r.files) for r in s.records] == [
        (r.row, r.fields, sorted(set(r.files))) for r in pkg.records
    ]
    rows_by_path: dict[str, set[int]] = {}
    for r in pkg.records:
        for p in r.files:
            rows_by_path.setdefault(p, set()).add(r.row)
    for f in s.files:
        if f.record_row is not None:
            assert f.record_row in rows_by_path[f.path]
        else:
            assert f.path not in rows_by_path
    got = [dataclasses.replace(f, record_row=None) for f in s.files]
    assert got == _expected_files(pkg)
    expected_stored = {
        e.uuid: v for e in pkg.files() if pkg.stored_in and (v := pkg.stored_in(e)) is not None
    }
    assert s.stored_in == expected_stored
    assert s.events == list(pkg.events)
    assert s.agents == list(pkg.agents)
    assert s.rights == pkg.rights_info
    # the fileSec carries one checksum per file (sha256 first); the bag's tag manifests
    # hold the others
    assert s.tag_files == [
        dataclasses.replace(t, digests={"sha256": t.digests["sha256"]}) for t in pkg.tag_files
    ]


def test_chinese_round_trip(tmp_path: Path) -> None:
    pkg = chinese_package()
    path = tmp_path / "mets.xml"
    write_mets(path, pkg)
    s = read_mets(path)
    _assert_round_trip(pkg, s)
    assert s.descriptive["reference_code"] == "Z109-WS·2011-Y-BGS-0001"
    assert s.records[0].fields["title"] == "关于开展档案工作的通知"
    assert s.records[2].level == "volume"
    assert s.reference_code == "Z109-WS·2011-Y-BGS-0001"
    assert s.dublin_core["title"] == ["关于开展档案工作的通知"]
    assert s.rights is not None and s.rights.security_level == "内部"
    by_path = s.file_by_path()
    assert by_path["2011/Z109-WS·2011-Y-BGS-0001/正文.pdf"].record_row == 2
    assert by_path["readme.txt"].record_row is None
    scan = by_path["2011/Z109-WS·2011-Y-BGS-0002/扫描 件 %1.tif"]
    assert scan.properties["dpi"] == [300.0, 300.0]
    assert scan.properties["note"] == '扫描 <件> & "说明"]]>'
    assert by_path["readme.txt"].properties == {}
    migrated = by_path["2011/Z109-WS·2011-Y-BGS-0001/附件 1.jp2"]
    assert migrated.role == "migrated"
    assert migrated.derived_from == by_path["2011/Z109-WS·2011-Y-BGS-0001/附件 1.jpg"].uuid
    assert by_path["2011/Z109-WS·2011-Y-BGS-0001/正文.pdf"].format == FormatInfo(
        puid="fmt/95",
        mime="application/pdf",
        name="Acrobat PDF/A - Portable Document Format",
        version="1b",
        basis="extension match pdf; byte match at [[0 8] [1200 7]]",
        tool_version="1.11.1",
        signature="default.sig",
    )


def test_later_version_round_trip(tmp_path: Path) -> None:
    pkg = chinese_package()
    first = next(iter(pkg.files())).uuid
    v2 = dataclasses.replace(
        pkg, version=2, previous_version=1, stored_in=lambda e: 1 if e.uuid == first else None
    )
    path = tmp_path / "mets.xml"
    write_mets(path, v2)
    s = read_mets(path)
    _assert_round_trip(v2, s)
    assert s.stored_in == {first: 1}


# ----------------------------------------------------------------------------- Hypothesis

_NOT_XML = (
    "\ufffe\uffff"  # noncharacters XML 1.0 cannot carry (controls and surrogates excluded too)
)
cjk = st.sampled_from("档案卷件正文附件扫描号题名责任者·－")
xml_char = (
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters=_NOT_XML)
    | st.sampled_from("\t\n\r")
    | cjk
)
text = st.text(xml_char, max_size=12)
some_text = st.text(xml_char, min_size=1, max_size=12)
segment = st.text(
    st.characters(
        codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="/\\" + _NOT_XML
    )
    | cjk,
    min_size=1,
    max_size=8,
)
rel_path = (
    st.lists(segment, min_size=1, max_size=3)
    .map("/".join)
    .filter(lambda p: path_problem(p) is None)
)
hexdigest = st.binary(min_size=8, max_size=8).map(lambda b: b.hex())
uuids = st.uuids().map(str)
aware = st.builds(
    lambda dt, minutes: dt.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),  # noqa: DTZ001
    st.integers(-14 * 60, 14 * 60),
)
formats = st.none() | st.builds(
    FormatInfo,
    puid=st.none() | st.sampled_from(["fmt/95", "fmt/43", "x-fmt/111"]),
    mime=st.none() | st.sampled_from(["application/pdf", "image/tiff", "text/xml"]),
    name=st.none() | some_text.filter(lambda n: n != "unknown"),
    version=st.none() | some_text,
    basis=st.none() | some_text,
    warning=st.none() | some_text,
    tool=st.sampled_from(["siegfried", "droid"]),
    tool_version=st.none() | some_text,
    signature=st.none() | some_text,
)
field_keys = st.sampled_from(sorted(ARCHIVAL_FIELDS)) | st.text(string.ascii_lowercase, min_size=1)
field_maps = st.dictionaries(field_keys, text, max_size=5)


@st.composite
def packages(draw: Any) -> MetsPackage:
    paths = draw(st.lists(rel_path, min_size=0, max_size=6, unique=True))
    ids = draw(st.lists(uuids, min_size=len(paths), max_size=len(paths), unique=True))
    files: list[FileEntry] = []
    for path, uuid in zip(paths, ids, strict=True):
        files.append(
            FileEntry(
                path=path,
                size=draw(st.integers(0, 2**40)),
                digests={"sha256": draw(hexdigest), "sha512": draw(hexdigest)},
                original_name=draw(st.none() | some_text),
                format=draw(formats),
                uuid=uuid,
                role=draw(st.sampled_from(["original", "migrated", "access"])),
                derived_from=draw(st.none() | st.sampled_from(ids) | uuids),
            )
        )
    records = [
        Record(
            row=draw(st.integers(1, 10_000)),
            fields=draw(field_maps)
            | draw(st.fixed_dictionaries({}, optional={"level": st.sampled_from(["卷", "件"])})),
            files=draw(st.lists(st.sampled_from(paths), max_size=3)) if paths else [],
        )
        for _ in range(draw(st.integers(0, 4)))
    ]
    agents = draw(
        st.lists(
            st.builds(
                Agent,
                identifier=some_text,
                name=text,
                type=st.sampled_from(["software", "organization", "person"]),
                version=st.none() | some_text,
                note=st.none() | some_text,
            ),
            max_size=3,
        )
    )
    agent_ids = [a.identifier for a in agents] or ["nobody"]
    events = draw(
        st.lists(
            st.builds(
                Event,
                type=some_text,
                outcome=st.sampled_from(["success", "failure", "warning", "not performed"]),
                detail=text,
                outcome_detail=text,
                datetime=aware,
                identifier=uuids,
                agents=st.lists(st.tuples(st.sampled_from(agent_ids), text), max_size=2),
                objects=st.lists(st.sampled_from(ids), max_size=2) if ids else st.just([]),
            ),
            max_size=3,
            unique_by=lambda e: e.identifier,
        )
    )
    rights = draw(
        st.none()
        | st.builds(
            Rights,
            security_level=text,
            open_status=text,
            retention=text,
            secrecy_term=text,
            identifier=uuids,
        )
    )
    tags = draw(
        st.lists(
            st.builds(
                TagFile,
                path=st.sampled_from(
                    ["metadata/report.json", "metadata/报告.html", "bag-info.txt"]
                ),
                size=st.integers(0, 10**9),
                digests=st.builds(lambda d: {"sha256": d}, hexdigest),
                mime=st.none() | st.just("application/json"),
            ),
            max_size=2,
            unique_by=lambda t: t.path,
        )
    )
    stored = set(draw(st.lists(st.sampled_from(ids), max_size=2))) if ids else set()
    version = draw(st.integers(1, 5))
    return MetsPackage(
        aip_id=draw(uuids),
        version=version,
        created=draw(aware),
        label=draw(text),
        files=lambda: iter(files),
        agents=agents,
        events=events,
        descriptive=draw(field_maps),
        records=records,
        rights=rights,
        tag_files=tags,
        previous_version=version - 1 if version > 1 else None,
        stored_in=(lambda e: 1 if e.uuid in stored else None) if stored else None,
        record_status=draw(st.sampled_from(["complete", "superseded"])),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packages())
def test_round_trip_property(pkg: MetsPackage) -> None:
    buf = io.BytesIO()
    write_mets(buf, pkg)
    data = buf.getvalue()
    assert validate_mets(io.BytesIO(data), schemas=SCHEMAS) == []
    _assert_round_trip(pkg, read_mets(data))


# ----------------------------------------------------------------------------- refusals


@pytest.fixture
def mets_text(tmp_path: Path) -> str:
    path = tmp_path / "mets.xml"
    write_mets(path, chinese_package())
    return path.read_text(encoding="utf-8")


def test_fixity_disagreement_is_invalid(mets_text: str) -> None:
    first = next(iter(chinese_package().files()))
    sha = first.digests["sha256"]
    bad = mets_text.replace(f'CHECKSUM="{sha}"', f'CHECKSUM="{"0" * 64}"')
    with pytest.raises(MetsInvalid) as info:
        read_mets(bad.encode(), label="mets.xml")
    assert info.value.code == "MET001"
    assert "fileSec SHA-256 differs from the PREMIS fixity" in str(info.value)
    assert "mets.xml" in str(info.value)


def test_properties_that_are_not_a_json_object_are_invalid(mets_text: str) -> None:
    found = re.search(r"(<arc:properties [^>]*>)([^<]*)(</arc:properties>)", mets_text)
    assert found is not None
    for bad_json in ("[1, 2]", "{not json", "[" * 100_000 + "]" * 100_000):
        bad = mets_text.replace(found.group(0), found.group(1) + bad_json + found.group(3))
        with pytest.raises(MetsInvalid, match=r"properties|JSON|Expecting"):
            read_mets(bad.encode(), label="mets.xml")


def test_file_missing_from_file_sec_is_invalid(mets_text: str) -> None:
    bad = re.sub(
        r'<mets:file ID="file-[^"]+"[^>]*>\s*<mets:FLocat[^>]*></mets:FLocat>\s*</mets:file>',
        "",
        mets_text,
        count=1,
    )
    assert bad != mets_text
    with pytest.raises(MetsInvalid, match="no fileSec entry"):
        read_mets(bad.encode())


def test_not_a_mets_document() -> None:
    with pytest.raises(MetsInvalid, match="no METS element"):
        read_mets(b"<root/>")
    with pytest.raises(MetsInvalid, match="not mets:mets"):
        read_mets(b'<root><m:div xmlns:m="http://www.loc.gov/METS/"/></root>')
    with pytest.raises(MetsInvalid, match="urn:uuid"):
        read_mets(b'<mets:mets xmlns:mets="http://www.loc.gov/METS/" OBJID="x"/>')


def test_reader_refuses_entities(mets_text: str) -> None:
    bad = mets_text.replace(
        "<?xml version='1.0' encoding='utf-8'?>",
        '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    )
    with pytest.raises(XMLUnsafe):
        read_mets(bad.encode())


def test_rights_restriction() -> None:
    assert Rights(security_level="机密", open_status="开放").restriction == "Disallow"
    assert Rights(open_status="延期开放").restriction == "Disallow"
    assert Rights(security_level="内部", open_status="开放").restriction == "Conditional"
    assert Rights(open_status="控制").restriction == "Conditional"
    assert Rights().restriction == "Conditional"
    assert Rights(security_level="", open_status="开放").restriction == "Allow"
    assert Rights.from_fields({"open_status": " 开放 ", "title": "x"}).fields() == {
        "open_status": "开放"
    }


def test_summary_created_is_aware(mets_text: str) -> None:
    s = read_mets(mets_text.encode())
    assert s.created == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert s.aip_id == AIP


def test_unparsable_number_is_invalid(mets_text: str) -> None:
    bad = mets_text.replace('SIZE="1234"', 'SIZE="many"', 1)
    with pytest.raises(MetsInvalid, match="file at line"):
        read_mets(bad.encode())
