"""The statistics report against a repository whose activity the test made and counted
(tests/reports/scenario.py): every figure of the JSON output is checked; the HTML, CSV
and the PDF (printed by real headless Chromium, turned into PNG) render."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from preservation.checks.drill import DrillRequest, run_drill
from preservation.checks.periodic import CheckRequest, run_check
from preservation.cli import main
from preservation.model import utcnow
from preservation.reports.monthly import make_report
from preservation.reports.period import parse_period
from preservation.repository import Repository
from preservation.storage.replicate import replicate_pending
from tests.catalog.conftest import POSTGRES_URL, fresh_postgres_database
from tests.reports import scenario as sc


def _build(tmp: Path, catalog_url: str | None = None) -> tuple[Repository, sc.Expected]:
    repo, exp = sc.build(tmp, catalog_url)
    sc.migrate_bmp(repo, exp)
    assert replicate_pending(repo).ok
    first = sc.audit_all(repo)
    damage = sc.damage_and_repair(repo, exp)
    exp.fixity_checks = {
        "primary": first["primary"],
        "offsite": first["offsite"] + damage["offsite"],
    }
    exp.fixity_failed = {"primary": 0, "offsite": damage["failed"]}
    exp.extra["first_audit"] = first
    sc.add_access(repo, exp, utcnow())
    assert run_check(repo, CheckRequest(all=True)).ok
    assert run_drill(repo, DrillRequest(count=2, seed=1)).ok
    return repo, exp


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Repository, sc.Expected]]:
    repo, exp = _build(tmp_path_factory.mktemp("report"))
    yield repo, exp
    repo.catalog.dispose()


def _json(repo: Repository) -> dict[str, Any]:
    _, figures = make_report(repo, str(utcnow().year), fmt="json", out=repo.root / "r.json")
    on_disk: dict[str, Any] = json.loads((repo.root / "r.json").read_text(encoding="utf-8"))
    assert on_disk["totals"] == figures["totals"]
    return on_disk


@pytest.fixture(scope="module")
def data(built: tuple[Repository, sc.Expected]) -> dict[str, Any]:
    return _json(built[0])


def test_every_figure(built: tuple[Repository, sc.Expected], data: dict[str, Any]) -> None:
    _check_every_figure(*built, data)


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="PRESERVATION_TEST_POSTGRES_URL not set")
def test_every_figure_on_postgresql(tmp_path: Path) -> None:
    with fresh_postgres_database(POSTGRES_URL) as url:
        repo, exp = _build(tmp_path, url)
        try:
            _check_every_figure(repo, exp, _json(repo))
        finally:
            repo.catalog.dispose()


def _check_every_figure(repo: Repository, exp: sc.Expected, data: dict[str, Any]) -> None:
    now = utcnow()
    assert data["period"]["label"] == str(now.year)
    assert len(data["months"]) == 12
    current = f"{now:%Y-%m}"
    totals = {
        "transfers": exp.transfers,
        "transfers_met": exp.met,
        "transfers_refused": exp.refused + exp.duplicates,
        "aips": len(exp.aips),
        "items": exp.items,
        "volumes": exp.volumes,
        "files": exp.files,
        "pages": exp.pages,
        "images": exp.images,
        "bytes": exp.bytes,
    }
    assert (exp.transfers, exp.met, exp.items, exp.volumes, exp.pages) == (5, 3, 3, 1, 5)
    assert data["totals"] == totals
    for month in data["months"]:
        want = totals if month["month"] == current else dict.fromkeys(totals, 0)
        assert {k: v for k, v in month.items() if k != "month"} == want, month
    assert data["aips_without_received_detail"] == 0
    assert data["aips_without_sheet_counts"] == 0

    assert data["receiving_standard"] == {
        "transfers": 5, "met": 3, "refused": 1, "duplicates": 1, "share": 0.6,
        "target": 1.0, "other_failed_ingests": 0,
    }
    assert data["digitised"] == {
        "scans": 4, "by_resolution": {"300": 4}, "by_colour_mode": {"greyscale": 4},
        "below_minimum": 0,
    }

    fixity = data["fixity"]
    checks = sum(exp.fixity_checks.values())
    failed = sum(exp.fixity_failed.values())
    assert failed == 1
    assert (fixity["checks"], fixity["passed"], fixity["failed"]) == (checks, checks - 1, 1)
    assert fixity["pass_rate"] == round((checks - 1) / checks, 6)
    assert fixity["audit_runs"] == 3
    for store in ("primary", "offsite"):
        by = fixity["by_store"][store]
        assert by["checks"] == exp.fixity_checks[store]
        assert by["passed"] == exp.fixity_checks[store] - exp.fixity_failed[store]
    assert fixity["by_store"]["offsite"]["outcomes"] == {
        "mismatch": 1, "pass": exp.fixity_checks["offsite"] - 1
    }
    assert [m["checks"] for m in fixity["by_month"] if m["month"] == current] == [checks]
    availability = {a["store"]: a for a in data["store_availability"]}
    assert availability["primary"]["checks"] == exp.fixity_checks["primary"]
    assert availability["offsite"]["audit_runs"] == 2
    assert all(a["availability"] == 1.0 and a["unreadable"] == 0 for a in availability.values())

    # coverage: the first full audit checked every file copy; the repair re-verified one
    cov = {c["store"]: c for c in data["audit_coverage"]["stores"]}
    for store in ("primary", "offsite"):
        assert cov[store]["file_copies"] == exp.extra["first_audit"][store]
        assert cov[store]["verified_in_interval"] == cov[store]["file_copies"]
    assert data["audit_coverage"]["coverage"] == 1.0

    rep = data["replication"]
    assert (rep["active_aips"], rep["meeting_policy"], rep["coverage"]) == (3, 3, 1.0)
    assert rep["ndsa_level"] == 1  # two verified copies on two sites, one media type

    fmt = data["formats"]
    assert fmt["files"] == exp.files + 1  # the migrated TIFF
    assert fmt["by_status"]["at-risk"]["files"] == 1  # the BMP original, kept
    assert fmt["by_status"]["preservation"]["files"] == exp.files
    assert (fmt["at_risk_files"], fmt["at_risk_migrated"]) == (0, 1)

    assert data["migrations"] == {"versions": 1, "files": 1, "events": {"success": 1}}
    assert data["new_versions"] == {"migration": 1}
    assert data["incidents"] == {
        "opened": 1, "repaired": 1, "by_kind": {"mismatch": {"repaired": 1}}
    }
    assert data["access"] == {
        "log_present": True, "entries": 6, "restricted": 3, "denied_or_failed": 1,
        "downloads": 2, "views": 2, "exports": 1,
        "by_action": {"download": 2, "export": 1, "view": 2},
        "by_role": {"archivist": {"download": 1, "export": 1},
                    "reader": {"download": 1, "view": 2}},
    }
    assert data["preservation_checks"] == {"runs": 1, "passed": 1, "failed": 0, "pass_rate": 1.0}
    assert data["restore_drills"] == {"runs": 1, "passed": 1, "failed": 0, "pass_rate": 1.0}


def test_rebuilt_catalogue_gives_the_same_figures(
    built: tuple[Repository, sc.Expected],
    data: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each file's properties (dpi, colour mode, pages) are in the METS, so a
    catalogue rebuilt from a store alone reports the same digitised pages; only the
    sheet's item and volume counts (kept in ingest job rows) are not reconstructible."""
    from preservation.recovery.rebuild import rebuild_catalog
    from preservation.repository import open_repository

    repo, exp = built
    url = f"sqlite:///{tmp_path / 'rebuilt.sqlite'}"
    report = rebuild_catalog(repo, source="offsite", into=url)
    assert report.problems == [] and report.chain_ok
    monkeypatch.setenv("PRESERVATION_CATALOG_URL", url)
    rebuilt_repo = open_repository(repo.root)
    try:
        _, again = make_report(
            rebuilt_repo, str(utcnow().year), fmt="json", out=tmp_path / "rebuilt.json"
        )
        html, _ = make_report(
            rebuilt_repo, str(utcnow().year), fmt="html", lang="en", out=tmp_path / "r.html"
        )
        assert "items and volumes not counted: 3" in html.read_text(encoding="utf-8")
    finally:
        rebuilt_repo.catalog.dispose()
    assert again["digitised"] == data["digitised"]
    assert again["digitised"]["by_resolution"] == {"300": exp.scans}
    unknown = ("items", "volumes", "transfers", "transfers_met", "transfers_refused")
    for key, value in data["totals"].items():
        assert again["totals"][key] == (0 if key in unknown else value), key
    assert again["aips_without_received_detail"] == 0
    assert again["aips_without_sheet_counts"] == len(exp.aips)


def test_other_periods_are_empty(built: tuple[Repository, sc.Expected]) -> None:
    repo, _ = built
    last_year = str(utcnow().year - 1)
    _, data = make_report(repo, last_year, fmt="json", out=repo.root / "old.json")
    assert set(data["totals"].values()) == {0}
    assert data["fixity"]["checks"] == 0 and data["receiving_standard"]["share"] is None
    # the one access-log row of the year before (400 days ago) may fall in it
    assert data["access"]["entries"] in (0, 1)
    quarter = f"{utcnow().year}-Q{(utcnow().month - 1) // 3 + 1}"
    _, q = make_report(repo, quarter, fmt="json", out=repo.root / "q.json")
    assert q["totals"]["transfers"] == 5 and len(q["months"]) == 3


def test_html_csv_render(built: tuple[Repository, sc.Expected], data: dict[str, Any]) -> None:
    repo = built[0]
    period = str(utcnow().year)
    zh, _ = make_report(repo, period, fmt="html", lang="zh", out=repo.root / "r.html")
    en, _ = make_report(repo, period, fmt="html", lang="en", out=repo.root / "r-en.html")
    text_zh = zh.read_text(encoding="utf-8")
    text_en = en.read_text(encoding="utf-8")
    assert "长期保存统计报表" in text_zh and "符合接收标准的移交比例" in text_zh
    assert "Preservation statistics" in text_en and "Items (件)" in text_en
    for text in (text_zh, text_en):
        assert text.count("<svg") >= 5  # monthly, pages, formats, access, resolution, colour
        assert "<script" not in text
        assert "60.0%" in text  # share of transfers meeting the standard
    csv_path, _ = make_report(repo, period, fmt="csv", out=repo.root / "r.csv")
    rows = list(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8-sig"))))
    assert rows[0] == ["section", "metric", "value"]
    values = {(r[0], r[1]): r[2] for r in rows[1:]}
    assert values[("totals", "transfers")] == "5"
    assert values[("receiving_standard", "share")] == "0.6"
    assert values[("access", "by_role.reader.view")] == "2"


@pytest.mark.slow
def test_pdf_renders_and_is_not_blank(
    built: tuple[Repository, sc.Expected], tmp_path: Path
) -> None:
    from PIL import Image

    if shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils (pdftoppm) is not installed")
    repo, _ = built
    pdf, _ = make_report(repo, str(utcnow().year), fmt="pdf", lang="zh", out=tmp_path / "r.pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    subprocess.run(["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "2", str(pdf),
                    str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) == 2
    for page in pages:
        with Image.open(page) as im:
            grey = im.convert("L")
            dark = sum(grey.histogram()[:200])
        assert dark > 2000, f"{page.name}: {dark} non-white pixels"


def test_pdf_without_chromium_is_a_clear_error(
    built: tuple[Repository, sc.Expected], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, _ = built
    monkeypatch.setenv("PRESERVATION_CHROMIUM", "no-such-chromium")
    monkeypatch.setattr(sys, "argv", ["preservation", "--repo", str(repo.root), "report",
                                      "--period", "2022", "--format", "pdf",
                                      "--out", str(tmp_path / "x.pdf")])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 7
    assert "TOOL001" in capsys.readouterr().err
    assert not (tmp_path / "x.pdf").exists()


def test_cli_report_json_and_bad_period(
    built: tuple[Repository, sc.Expected], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, _ = built

    def run(*args: str) -> int:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["preservation", "--repo", str(repo.root), *args])
        try:
            main()
        except SystemExit as e:
            return int(e.code or 0)
        return 0

    out = tmp_path / "cli.json"
    assert run("--json", "report", "--period", str(utcnow().year), "--format", "json",
               "--out", str(out)) == 0
    assert json.loads(capsys.readouterr().out)["report"]["totals"]["transfers"] == 5
    assert json.loads(out.read_text(encoding="utf-8"))["totals"]["aips"] == 3
    assert run("report", "--period", "2022-13") == 2
    assert "2022-13" in capsys.readouterr().err


def test_monthly_job_from_the_scheduler(
    built: tuple[Repository, sc.Expected], monkeypatch: pytest.MonkeyPatch
) -> None:
    from preservation.audit.scheduler import job_specs, run_once
    from preservation.reports.period import previous_month

    repo, _ = built
    monkeypatch.setenv("PRESERVATION_CHROMIUM", "no-such-chromium")  # keep it quick
    assert {s.id: s.registered for s in job_specs(repo)}["report"]
    result = run_once(repo, "report")["result"]
    label = previous_month(utcnow()).label
    assert result["period"] == label
    folder = repo.root / "reports" / "statistics"
    for fmt in ("json", "html", "csv"):
        assert (folder / f"{label}.{fmt}").stat().st_size > 0
    assert result["files"]["pdf"].startswith("not written: TOOL001")
    written = json.loads((folder / f"{label}.json").read_text(encoding="utf-8"))
    assert written["period"]["kind"] == "month"


def test_period_parsing() -> None:
    from preservation.errors import UsageError

    q3 = parse_period("2022-Q3")
    assert (q3.start, q3.end) == (dt.datetime(2022, 7, 1, tzinfo=dt.UTC),
                                  dt.datetime(2022, 10, 1, tzinfo=dt.UTC))
    assert q3.months == ("2022-07", "2022-08", "2022-09")
    dec = parse_period("2022-12")
    assert dec.end == dt.datetime(2023, 1, 1, tzinfo=dt.UTC) and dec.months == ("2022-12",)
    assert len(parse_period("2022").months) == 12
    for bad in ("22", "2022-Q5", "2022-00", "2022-7", "last year"):
        with pytest.raises(UsageError):
            parse_period(bad)
