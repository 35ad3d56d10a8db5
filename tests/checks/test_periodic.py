"""``preservation check``: the four-property check of stored AIPs finds each kind of
damage, writes reports valid against the ingest report's schema, records an event."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from preservation.catalog.access_models import AccessLogEntry
from preservation.catalog.models import EventRow
from preservation.config import CONFIG_NAME
from preservation.repository import Repository, open_repository
from tests.audit.builders import flip_byte
from tests.checks.conftest import Cli

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "check-report.schema.json"


def _report(path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def _results(report: dict[str, Any]) -> dict[str, str]:
    return {code: c["result"] for code, c in report["checks"].items()}


def test_clean_repository_passes_every_check(
    repo: Repository, aips: list[str], cli: Cli, tmp_path: Path
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    code, data = cli("check", "--all", "--out", str(tmp_path / "reports"))
    assert code == 0, data
    assert data["ok"] and data["checked"] == 3
    for outcome in data["aips"]:
        report = _report(outcome["report_json"])
        jsonschema.Draft202012Validator(schema).validate(report)
        assert report["kind"] == "preservation" and not report["blocked"]
        results = _results(report)
        expected = {"PCK-001", "PCK-002", "PCK-003", "PCK-004", "PCK-101", "PCK-102",
                    "PCK-201", "PCK-202", "PCK-203", "PCK-302"}  # fmt: skip
        if outcome["aip"] != aips[0]:  # restricted: the access log is checked too
            expected.add("PCK-301")
        assert set(results) == expected, results
        assert set(results.values()) == {"pass"}, results
        assert Path(outcome["report_html"]).read_text(encoding="utf-8").count("PCK-") >= 10
    with repo.catalog.session() as s:
        events = s.execute(select(EventRow).where(EventRow.type == "validation")).scalars().all()
        checked = [e for e in events if "long-term preservation" in e.detail]
    assert sorted(str(e.aip_id) for e in checked) == sorted(aips)
    assert {e.outcome for e in checked} == {"success"}
    # a sample of one, on the off-site store
    code, data = cli("check", "--all", "--sample", "1", "--store", "offsite")
    assert code == 0 and data["checked"] == 1 and data["store"] == "offsite"


def test_each_kind_of_damage_is_found(
    repo: Repository, aips: list[str], cli: Cli, tmp_path: Path
) -> None:
    scanned, restricted, other = aips
    # authenticity: a payload byte flipped on the primary
    page = next(i.key for i in repo.primary.list(f"{scanned}/v1/data/") if i.key.endswith(".tif"))
    flip_byte(repo, "primary", page)
    # integrity and security: an object removed, another one added
    gone = f"{restricted}/v1/data/doc-001.txt"
    repo.primary.delete(gone)
    repo.primary.put(f"{restricted}/v1/data/intruder.txt", io.BytesIO(b"x"), size=1)
    # security: an access to the restricted AIP logged as if it were public
    with repo.catalog.session() as s:
        s.add(AccessLogEntry(user_name="eve", role="reader", action="download", status=200,
                             restricted=False, aip_id=restricted))  # fmt: skip
    # usability: plain text declared obsolete by a site override
    path = repo.root / CONFIG_NAME
    path.write_text(path.read_text(encoding="utf-8")
                    + '\n[formats.overrides."x-fmt/111"]\nstatus = "obsolete"\n',
                    encoding="utf-8")  # fmt: skip
    cli.repo = open_repository(repo.root)

    code, data = cli("check", "--all", "--out", str(tmp_path / "r"))
    assert code == 1 and not data["ok"] and data["failed"] == 3
    by_aip = {a["aip"]: _results(_report(a["report_json"])) for a in data["aips"]}
    assert by_aip[scanned]["PCK-001"] == "fail"
    assert by_aip[scanned]["PCK-202"] == "pass"  # a flipped pixel still opens
    assert by_aip[scanned]["PCK-203"] == "pass"  # TIFF only
    assert by_aip[restricted]["PCK-101"] == "fail"
    assert by_aip[restricted]["PCK-302"] == "fail"
    assert by_aip[restricted]["PCK-301"] == "fail"
    assert by_aip[restricted]["PCK-203"] == "fail"
    assert by_aip[other]["PCK-203"] == "fail" and by_aip[other]["PCK-001"] == "pass"
    findings = _report(next(a for a in data["aips"] if a["aip"] == restricted)["report_json"])
    messages = " ".join(f["message"] for f in findings["findings"])
    assert "doc-001.txt: not on store primary" in messages
    assert "intruder.txt" in messages
    with repo.catalog.session() as s:
        outcomes = {
            e.aip_id: e.outcome
            for e in s.execute(select(EventRow).where(EventRow.type == "validation")).scalars()
            if "long-term preservation" in e.detail
        }
    assert outcomes == dict.fromkeys(aips, "failure")
    # one AIP by id; the off-site copy is intact
    code, data = cli("check", "--aip", scanned, "--store", "offsite")
    assert code == 0 and data["ok"]


def test_bad_requests(repo: Repository, aips: list[str], cli: Cli, tmp_path: Path) -> None:
    from preservation.ingest.pipeline import IngestRequest, run_ingest
    from tests.support.transfers import make_folder_transfer

    assert cli("check")[0] == 2  # neither --aip nor --all
    assert cli("check", "--aip", aips[0], "--all")[0] == 2
    code, err = cli("check", "--aip", "no-such-aip")
    assert code == 6 and "no-such-aip" in err
    assert cli("check", "--all", "--store", "nowhere")[0] == 2
    # not replicated yet: the off-site store holds no copy to check
    folder = make_folder_transfer(tmp_path / "late", "T09", n=1)
    late = run_ingest(repo, IngestRequest(source=folder, submitter="t")).aip
    assert late is not None
    code, err = cli("check", "--aip", late, "--store", "offsite")
    assert code == 2 and "holds no copy" in err
