"""The check report: sorted findings, counts, blocking, stable JSON valid against its
schema, and a bilingual HTML page with everything escaped."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pypdf
import pytest
from lxml import html as lhtml
from PIL import Image

from preservation.ingest.findings import Finding
from preservation.ingest.identify import check_formats, identify_files, load_accepted_formats
from preservation.ingest.report import CheckReport
from preservation.ingest.usability import check_usability, usability_summary
from preservation.ingest.virus import scan
from preservation.model import FileEntry

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "check-report.schema.json"
T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)


def findings() -> list[Finding]:
    return [
        Finding("VIR-001", "not performed", "no virus scanner configured"),
        Finding(
            "OPEN-001", "fail", "a.pdf: PDF does not open (EOF marker not found)", file="a.pdf"
        ),
        Finding("FMT-003", "warn", "b.jpg: extension mismatch", file="b.jpg"),
        Finding("FMT-002", "warn", "c.webp: not on the accepted-format list", file="c.webp"),
        Finding("OPEN-001", "pass", "3 of 4 files opened"),
        Finding(
            "OPEN-002",
            "fail",
            "<script>alert('x')</script> & 密件.pdf: encrypted",
            file="<b>密件</b>.pdf",
            row=7,
        ),
    ]


def report(items: Iterable[Finding] | None = None, **kw: Any) -> CheckReport:
    return CheckReport(
        transfer=kw.pop("transfer", "2026年 文书档案 移交"),
        aip=kw.pop("aip", "3f1c1e0e-8a9e-4c61-9a55-1b1f2a3b4c5d"),
        started=T0,
        finished=T0 + timedelta(minutes=3),
        findings=findings() if items is None else items,
        **kw,
    )


def validate(data: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(data)


def test_findings_are_sorted_cheapest_first() -> None:
    r = report()
    assert [f.code for f in r.findings] == [
        "FMT-002",
        "FMT-003",
        "OPEN-001",
        "OPEN-001",
        "OPEN-002",
        "VIR-001",
    ]
    costs = [f.check.cost for f in r.findings]
    assert costs == sorted(costs)


def test_summary_counts_checks_per_property_and_result() -> None:
    # Each check counts once, with its worst result: OPEN-001 passed for one file and
    # failed for another, so it failed.
    s = report().summary()
    assert s["usability"] == {"pass": 0, "fail": 2, "warn": 1, "not performed": 0}
    assert s["authenticity"] == {"pass": 0, "fail": 0, "warn": 1, "not performed": 0}
    assert s["security"] == {"pass": 0, "fail": 0, "warn": 0, "not performed": 1}
    assert s["integrity"] == {"pass": 0, "fail": 0, "warn": 0, "not performed": 0}
    assert report().totals() == {"pass": 0, "fail": 2, "warn": 2, "not performed": 1}


def test_a_check_that_ran_and_found_nothing_passed() -> None:
    import preservation.ingest.pathcheck  # noqa: F401  (defines the PATH checks)

    r = report(performed={"PATH-001", "OPEN-001"})
    checks = r.checks_used()
    assert checks["PATH-001"]["result"] == "pass"  # ran, no finding
    assert checks["OPEN-001"]["result"] == "fail"  # ran, worst finding
    assert "SHEET-017" not in checks  # did not run: never reported as passed
    assert r.summary()["integrity"]["pass"] == 1


def test_blocking_follows_the_configured_properties() -> None:
    assert not report().blocked  # default policy: authenticity and integrity only
    r = report(blocking_properties=("usability",))
    assert r.blocked
    assert [f.file for f in r.blocking] == ["a.pdf", "<b>密件</b>.pdf"]
    data = json.loads(r.to_json())
    assert data["blocked"] is True
    assert [f["code"] for f in data["blocking"]] == ["OPEN-001", "OPEN-002"]


def test_json_is_stable_utf8_and_valid() -> None:
    r = report(settings={"virus_scanner": "none", "blocking": ["authenticity", "integrity"]})
    raw = r.to_json()
    assert raw == report(settings=r.settings).to_json()  # stable
    text = raw.decode("utf-8")
    assert "2026年 文书档案 移交" in text and "\\u" not in text  # ensure_ascii off
    data = json.loads(raw)
    validate(data)
    assert data["started"] == "2026-03-01T08:00:00+00:00"
    assert data["checks"]["OPEN-002"]["title_zh"] == "无加密或口令保护"
    assert data["findings"][-1] == {
        "code": "VIR-001",
        "property": "security",
        "result": "not performed",
        "message": "no virus scanner configured",
    }
    encrypted = next(f for f in data["findings"] if f["code"] == "OPEN-002")
    assert encrypted["row"] == 7 and encrypted["file"] == "<b>密件</b>.pdf"
    assert list(data)[:4] == ["format", "standard", "kind", "transfer"]


def test_schema_rejects_a_broken_report() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data = json.loads(report().to_json())
    data["findings"][0]["result"] = "maybe"
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(data)


def test_naive_times_are_refused() -> None:
    r = CheckReport("t", None, datetime(2026, 1, 1), datetime(2026, 1, 1), [])  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        r.to_json()


def cells(table: Any) -> list[list[str]]:
    return [
        [" ".join(" ".join(c.itertext()).split()) for c in tr.xpath("./th|./td")]
        for tr in table.xpath(".//tr")
    ]


def test_html_is_bilingual_escaped_and_complete() -> None:
    r = report(blocking_properties=("usability", "security"))
    page = r.to_html().decode("utf-8")
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; 密件.pdf" in page
    assert "&lt;b&gt;密件&lt;/b&gt;.pdf" in page
    doc = lhtml.fromstring(page)
    assert "四性检测报告" in doc.findtext(".//title") and "2026年" in doc.findtext(".//title")
    summary = cells(doc.xpath("//table[@class='summary']")[0])
    assert summary[0] == [
        "性质 Property",
        "通过 pass",
        "不通过 fail",
        "警告 warn",
        "未执行 not performed",
    ]
    assert summary[1] == ["真实性 authenticity", "0", "0", "1", "0"]
    assert summary[3] == ["可用性 usability", "0", "2", "1", "0"]
    assert summary[4] == ["安全性 security", "0", "0", "0", "1"]
    assert summary[5] == ["合计 Total", "0", "2", "2", "1"]
    rows = cells(doc.xpath("//table[@class='findings']")[0])[1:]
    assert len(rows) == len(r.findings)
    enc = next(row for row in rows if row[0] == "OPEN-002")
    assert enc[1] == "无加密或口令保护 No encryption or password protection"
    assert enc[2] == "不通过 fail"
    assert enc[3] == "<b>密件</b>.pdf (row 7 行)"
    assert "Refused: 2 blocking finding(s)" in page and "不予接收" in page


def test_html_without_blocking_says_accepted() -> None:
    page = report().to_html().decode("utf-8")
    assert "检测通过,可以接收" in page and "Blocking findings" not in page


def test_report_from_real_checks_validates(tmp_path: Path) -> None:
    """A report built from the real checks over real files validates against the schema."""
    pdf = pypdf.PdfWriter()
    pdf.add_blank_page(100, 100)
    buf = io.BytesIO()
    pdf.write(buf)
    (tmp_path / "a.pdf").write_bytes(buf.getvalue())
    (tmp_path / "b.pdf").write_bytes(buf.getvalue()[:60])
    Image.new("RGB", (20, 20)).save(tmp_path / "scan.tif", dpi=(150, 150))
    (tmp_path / "mystery").write_bytes(bytes(range(256)) * 3)
    paths = sorted(p for p in tmp_path.iterdir() if p.is_file())
    infos = identify_files(paths, workers=2)
    entries = [
        FileEntry(path=p.name, size=p.stat().st_size, digests={}, source=p, format=infos[p])
        for p in paths
    ]
    found, props = check_usability(entries, workers=2)
    found += usability_summary(props)
    found += check_formats(entries, load_accepted_formats())
    found += scan(tmp_path, "none")
    r = CheckReport(
        "real",
        None,
        datetime.now(UTC),
        datetime.now(UTC),
        found,
        blocking_properties=("usability",),
        settings={"identify_workers": 2},
    )
    data = json.loads(r.to_json())
    validate(data)
    assert data["blocked"] is True
    assert {f["file"] for f in data["blocking"]} == {"b.pdf"}
    assert any(f["code"] == "OPEN-004" and f["file"] == "scan.tif" for f in data["findings"])
    page = r.to_html().decode("utf-8")
    assert "scan.tif" in page and "mystery" in page


def many_findings(n: int, seed: int = 7) -> list[Finding]:
    import random

    rng = random.Random(seed)
    codes = ["FMT-002", "FMT-003", "OPEN-001", "OPEN-002", "VIR-001"]
    return [
        Finding(
            rng.choice(codes),
            rng.choice(["pass", "fail", "warn", "not performed"]),
            f"finding {i} <{i}>",
            file=rng.choice([None, f"dir/f{rng.randint(0, n // 3):05d}.bin"]),
            row=rng.choice([None, rng.randint(2, 9)]),
            details={"i": i} if i % 4 else {},
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("buffer", [1, 7, 50, 100_000])
def test_store_streams_findings_sorted_like_sort_findings(buffer: int) -> None:
    # buffer 1 and 7 spill more runs than MAX_RUNS: the runs of a code are merged.
    from preservation.ingest.finding_store import FindingStore
    from preservation.ingest.findings import sort_findings

    items = many_findings(600)
    store = FindingStore(items, buffer=buffer)
    assert store.spilled == (buffer < len(items))
    assert len(store) == 600 and bool(store)
    expected = sort_findings(items)
    assert list(store) == expected
    assert list(store) == expected  # iterable again
    assert store.count("OPEN-002", "fail") == sum(
        1 for f in items if f.code == "OPEN-002" and f.result == "fail"
    )
    assert list(store.blocking(["usability"])) == [
        f for f in expected if f.result == "fail" and f.property == "usability"
    ]
    store.close()
    assert len(store) == 0 and list(store) == []


def test_store_spills_to_its_folder_and_cleans_up(tmp_path: Path) -> None:
    from preservation.ingest.finding_store import FindingStore

    folder = tmp_path / "work" / "findings"
    store = FindingStore(many_findings(300), directory=folder, buffer=20)
    assert any(folder.iterdir())
    expected = list(store)
    # the owner of the folder removes it; detached runs live on beside it
    store.detach(tmp_path)
    assert not any(folder.iterdir())
    assert list(store) == expected
    moved = next(p for p in tmp_path.iterdir() if p.name.startswith("findings-"))
    store.close()
    assert not moved.exists()


def test_report_from_a_spilled_store_is_the_same_report() -> None:
    from preservation.ingest.finding_store import FindingStore

    items = many_findings(500)
    kw: dict[str, Any] = {"blocking_properties": ("usability",), "performed": {"FMT-001"}}
    small = report(items, **kw)
    spilled = report(FindingStore(items, buffer=13), **kw)
    assert spilled.findings.spilled
    assert spilled.to_json() == small.to_json()
    assert spilled.to_html() == small.to_html()
    data = json.loads(spilled.to_json())
    validate(data)
    assert len(data["findings"]) == 500
    assert len(data["blocking"]) == spilled.blocking_count == len(small.blocking)
    assert data["blocking"] == [f.to_dict() for f in small.blocking]
    out = io.BytesIO()
    spilled.write_html(out)
    doc = lhtml.fromstring(out.getvalue().decode("utf-8"))
    assert len(cells(doc.xpath("//table[@class='findings']")[0])) == 501


def test_empty_report_json_is_valid() -> None:
    data = json.loads(report([]).to_json())
    validate(data)
    assert data["findings"] == [] and data["blocking"] == [] and data["blocked"] is False


def test_store_reads_back_shared_objects_of_each_finding() -> None:
    # One string object twice in a finding is pickled as a back reference: it must
    # resolve within that finding's pickle, never to an object of an earlier one.
    from preservation.ingest.finding_store import FindingStore

    items = []
    for i in range(40):
        shared = f"value {i}"
        items.append(
            Finding("FMT-002", "warn", shared, file=f"f{i:02d}", details={"a": shared, "b": shared})
        )
    store = FindingStore(items, buffer=9)
    assert store.spilled
    assert [(f.message, f.details) for f in store] == [
        (f"value {i}", {"a": f"value {i}", "b": f"value {i}"}) for i in range(40)
    ]
