"""The format-risk check, the report with its trend, re-identification, and the CLI."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from preservation.catalog.models import EventRow
from preservation.catalog.version_record import current_payload_files, set_file_format
from preservation.cli import cli
from preservation.errors import ToolMissing
from preservation.formats.migrate import run_migrations
from preservation.formats.risk import format_report, reidentify, run_format_risk_check
from preservation.repository import Repository
from tests.formats import builders as b
from tests.formats.conftest import Ingest, with_formats_toml


def test_obsolete_format_is_reported_and_alerted_once(
    repo: Repository, ingest: Ingest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    note = tmp_path / "note.txt"
    note.write_text("hello\n", encoding="utf-8")
    aip = ingest(
        {
            "p1.tif": b.make_image(tmp_path / "p1.tif", "TIFF"),
            "p2.tif": b.make_image(tmp_path / "p2.tif", "TIFF", (40, 30)),
            "note.txt": note,
        }
    )
    caplog.set_level(logging.INFO, logger="preservation.alerts")
    first = run_format_risk_check(repo)
    assert first.files == 3 and first.at_risk_files == 0 and not first.alerted

    repo = with_formats_toml(repo, '[formats.overrides."fmt/353"]\nstatus = "obsolete"\n')
    caplog.clear()
    second = run_format_risk_check(repo)
    assert second.at_risk_files == 2 and second.newly_at_risk_count == 2
    assert second.alerted
    assert {n["path"] for n in second.newly_at_risk} == {"p1.tif", "p2.tif"}
    alerts = [r for r in caplog.records if r.name == "preservation.alerts"]
    assert len(alerts) == 1 and "2 file(s) newly at risk" in alerts[0].getMessage()

    caplog.clear()
    third = run_format_risk_check(repo)
    assert third.at_risk_files == 2 and third.newly_at_risk_count == 0 and not third.alerted
    assert not [r for r in caplog.records if r.name == "preservation.alerts"]

    report = format_report(repo)
    assert report["by_status"]["obsolete"] == {
        "files": 2,
        "bytes": report["by_status"]["obsolete"]["bytes"],
    }
    assert [f["path"] for f in report["at_risk_by_aip"][aip]] == ["p1.tif", "p2.tif"]
    trend = report["trend"]
    assert len(trend) == 3
    assert "obsolete" not in trend[0]["by_status"]
    assert trend[1]["by_status"]["obsolete"]["files"] == 2


def test_reidentify_records_changes_as_events(
    repo: Repository, ingest: Ingest, tmp_path: Path
) -> None:
    aip = ingest({"scan.tif": b.make_image(tmp_path / "scan.tif", "TIFF")})
    with repo.catalog.session() as s:
        [f] = list(current_payload_files(s, aip_id=aip))
        assert f.puid == "fmt/353"
        # as an older signature file might have said
        set_file_format(s, f.file_id, puid="fmt/7", mime="image/tiff", name="TIFF", version="3")

    report = reidentify(repo, aip)
    assert report.files == 1
    assert [(c["path"], c["old"], c["new"]) for c in report.changed] == [
        ("scan.tif", "fmt/7", "fmt/353")
    ]
    with repo.catalog.session() as s:
        [f] = list(current_payload_files(s, aip_id=aip))
        assert f.puid == "fmt/353"
        events = [
            e
            for e in s.query(EventRow).filter_by(aip_id=aip, type="format identification")
            if e.detail.startswith("re-identification")
        ]
        assert (
            len(events) == 1
            and "fmt/7 (image/tiff) -> fmt/353 (image/tiff)" in events[0].outcome_detail
        )
    assert [i.key for i in repo.primary.list(f"{aip}/events/")]
    assert reidentify(repo, aip).changed == []


def test_missing_tool_names_its_package(
    repo: Repository, ingest: Ingest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aip = ingest({"letter.docx": b.make_docx(tmp_path / "src")})
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ToolMissing, match="libreoffice-writer-nogui"):
        run_migrations(repo, puid="fmt/412")
    with repo.catalog.session() as s:
        assert [f.path for f in current_payload_files(s, aip_id=aip)] == ["data/letter.docx"]


def test_cli_commands(repo: Repository, ingest: Ingest, tmp_path: Path) -> None:
    aip = ingest({"old.bmp": b.make_image(tmp_path / "old.bmp", "BMP")})
    runner = CliRunner()

    def invoke(*args: str) -> object:
        result = runner.invoke(cli, ["--repo", str(repo.root), *args], env=dict(os.environ))
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    policy = invoke("formats", "policy", "--json")
    assert any(e["key"] == "fmt/116" and e["status"] == "at-risk" for e in policy["formats"])  # type: ignore[index]
    check = invoke("formats", "check", "--json")
    assert check["at_risk_files"] == 1 and check["alerted"]  # type: ignore[index]
    report = invoke("formats", "report", "--json")
    assert list(report["at_risk_by_aip"]) == [aip] and len(report["trend"]) == 1  # type: ignore[index]
    plan = invoke("migrate", "--all-at-risk", "--dry-run", "--json")
    assert [(c["path"], c["action"]) for c in plan["planned"]] == [("old.bmp", "pillow-tiff")]  # type: ignore[index]
    done = invoke("migrate", "--aip", aip, "--json")
    assert done["versions"] == {aip: 2} and done["migrated"] == 1  # type: ignore[index]
    after = invoke("formats", "check", "--json")
    assert after["at_risk_files"] == 0 and after["at_risk_migrated"] == 1  # type: ignore[index]
    assert not after["alerted"]  # type: ignore[index]
    again = invoke("formats", "reidentify", "--aip", aip, "--json")
    assert again["files"] == 2 and again["changed"] == []  # type: ignore[index]
