"""The dashboard pages over a repository built with the real pipeline
(tests/access/dashboard_fixtures.py): figures match what was ingested, readers see
public records only, staff pages are refused to readers, languages, the ingest
reports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import lxml.etree
import lxml.html
import pytest
from fastapi.testclient import TestClient

from preservation.access import charts, i18n
from preservation.access.app import create_app
from preservation.catalog import access_queries as aq
from preservation.model import utcnow
from preservation.storage.health import health
from tests.access.conftest import AccessEnv
from tests.access.dashboard_fixtures import World, bearer, build_world, expected, shared_world
from tests.catalog.conftest import POSTGRES_URL, fresh_postgres_database

PAGES = (
    "/dashboard/",
    "/dashboard/replication",
    "/dashboard/audits",
    "/dashboard/formats",
    "/dashboard/ingests",
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return shared_world(tmp_path_factory)


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.repo), follow_redirects=False) as c:
        yield c


def get(client: TestClient, world: World, role: str, path: str) -> lxml.html.HtmlElement:
    r = client.get(path, headers=bearer(world, role))
    assert r.status_code == 200, (path, r.status_code, r.text[:500])
    assert "script-src" not in r.headers["content-security-policy"]
    assert "<script" not in r.text
    return lxml.html.fromstring(r.text)


def figures(doc: lxml.html.HtmlElement) -> dict[str, str]:
    return {e.get("data-figure"): e.get("data-value") for e in doc.xpath("//*[@data-figure]")}


def secret_marks(world: World) -> list[str]:
    secret = next(a for a in world.aips if not a.public)
    return [secret.aip, secret.reference_code]


@pytest.mark.parametrize("role", ["reader", "auditor", "admin"])
def test_overview_figures_match_the_catalogue(client: TestClient, world: World, role: str) -> None:
    doc = get(client, world, role, "/dashboard/?lang=en")
    found = figures(doc)
    want = expected(world, sees_restricted=role != "reader")
    for key, value in want.items():
        assert int(found[key]) == value, key
    assert found["last-audit"]  # the builder ran a full audit of the primary
    # a reader is told that only public records are counted
    assert bool(doc.xpath("//*[@id='public-only']")) == (role == "reader")
    # the copies chart is inline SVG drawn by pygal, labels as text
    svg = doc.xpath("//*[@id='chart-copies']//*[local-name()='svg']")
    assert svg and svg[0].get("class") == "pygal-chart"


def test_overview_ndsa_level_agrees_with_health(client: TestClient, world: World) -> None:
    found = figures(get(client, world, "auditor", "/dashboard/"))
    assert int(found["ndsa-level"]) == health(world.repo).ndsa["level"]


def test_reader_pages_never_show_restricted_records(client: TestClient, world: World) -> None:
    marks = secret_marks(world)
    headers = {"Authorization": f"Bearer {world.tokens['reader']}"}
    for path in PAGES:
        r = client.get(path, headers=headers)
        for mark in marks:
            assert mark not in r.text, (path, mark)
    # the restricted AIP's ingest job and report are not found for a reader
    secret = next(a for a in world.aips if not a.public)
    job = _job_of(client, world, secret.aip)
    for path in (f"/dashboard/ingests/{job}", f"/dashboard/ingests/{job}/report"):
        r = client.get(path, headers=headers)
        assert r.status_code == 404 and secret.reference_code not in r.text


def test_staff_pages_are_refused_to_readers(client: TestClient, world: World) -> None:
    headers = {"Authorization": f"Bearer {world.tokens['reader']}"}
    for path in ("/dashboard/replication", "/dashboard/audits"):
        r = client.get(path, headers=headers)
        assert r.status_code == 403
        nav = lxml.html.fromstring(r.text).xpath("//nav//a/@href")
        assert "/dashboard/formats" in nav and "/dashboard/replication" not in nav
    with world.repo.catalog.session() as s:
        denied = [
            e
            for e in aq.access_entries(s, since=utcnow() - dt.timedelta(hours=1))
            if e["action"] == "denied" and e["user_name"] == "reader1"
        ]
    assert {e["path"] for e in denied} >= {"/dashboard/replication", "/dashboard/audits"}
    nav = get(client, world, "auditor", "/dashboard/").xpath("//nav//a/@href")
    assert "/dashboard/replication" in nav and "/dashboard/audits" in nav


def test_pages_redirect_to_sign_in(client: TestClient) -> None:
    for path in PAGES:
        r = client.get(path + "?lang=en")
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=" + path.replace("/", "%2F") + "%3Flang%3Den"


def _rows(doc: lxml.html.HtmlElement, table: str, key: str) -> dict[str, dict[str, str]]:
    out = {}
    for tr in doc.xpath(f"//table[@id='{table}']//tr[@{key}]"):
        out[tr.get(key)] = {
            td.get("data-col"): td.text_content().strip() for td in tr.xpath("td[@data-col]")
        }
    return out


def test_replication_health_per_store_and_site(client: TestClient, world: World) -> None:
    doc = get(client, world, "auditor", "/dashboard/replication?lang=en")
    stores = _rows(doc, "stores", "data-store")
    replicated = sum(1 for a in world.aips if a.replicated)
    unreplicated = [a for a in world.aips if not a.replicated]
    assert stores["primary"] == {"verified": "3", "pending": "0", "failed": "0", "stale": "0"}
    assert stores["offsite"] == {
        "verified": str(replicated), "pending": str(len(unreplicated)), "failed": "0", "stale": "0",
    }  # fmt: skip
    sites = _rows(doc, "sites", "data-site")
    assert sites["site-a"]["verified"] == "3" and sites["site-b"]["pending"] == "1"
    # the AIP left on the primary alone is below policy, and only it
    below = doc.xpath("//table[@id='below-policy']//tr[@data-aip]/@data-aip")
    assert below == [a.aip for a in unreplicated]
    assert figures(doc)["below-policy"] == str(len(unreplicated))
    assert doc.xpath("//*[@id='chart-replication']//*[local-name()='svg']")


def test_audits_chart_and_coverage(client: TestClient, world: World) -> None:
    doc = get(client, world, "auditor", "/dashboard/audits?lang=en")
    found = figures(doc)
    # one fixity check event per copy audited: the full audit read the 3 primary copies
    assert found["checks-passed"] == "3" and found["checks-failed"] == "0"
    cover = _rows(doc, "coverage", "data-store")
    total_files = sum(a.files for a in world.aips) + 0
    primary_files = int(cover["primary"]["file_copies"].replace(",", ""))
    assert primary_files >= total_files  # payload and tag files of every copy
    assert cover["primary"]["in_interval"] == cover["primary"]["file_copies"]
    assert cover["primary"]["overdue"] == "0" and cover["primary"]["failing"] == "0"
    assert int(found["incidents"]) == len(world.incidents)
    svg = doc.xpath("//*[@id='chart-audits']//*[local-name()='svg']")
    assert svg and "Checks per day" in svg[0].get("aria-label")


@pytest.mark.parametrize("role", ["reader", "archivist"])
def test_formats_page_counts_the_visible_files(client: TestClient, world: World, role: str) -> None:
    doc = get(client, world, role, "/dashboard/formats")
    seen = world.visible(role != "reader")
    found = figures(doc)
    assert int(found["files"]) == sum(a.files for a in seen)
    per_format = _rows(doc, "formats", "data-puid")
    assert sum(int(r["files"]) for r in per_format.values()) == sum(a.files for a in seen)
    assert per_format["fmt/353"]["files"] == "1"  # the one TIFF page
    statuses = sum(int(v) for k, v in found.items() if k.startswith("status-"))
    assert statuses == sum(a.files for a in seen)
    assert doc.xpath("//*[@id='chart-formats']//*[local-name()='svg']")


def _job_of(client: TestClient, world: World, aip: str) -> str:
    doc = get(client, world, "admin", "/dashboard/ingests")
    return str(doc.xpath(f"//tr[@data-aip='{aip}']/@data-job")[0])


def test_ingest_history_and_reports(client: TestClient, world: World) -> None:
    staff = get(client, world, "archivist", "/dashboard/ingests?lang=en")
    rows = staff.xpath("//table[@id='ingests']//tr[@data-job]")
    assert len(rows) == len(world.aips) + 1  # and the refused ingest
    assert figures(staff)["ingests"] == str(len(world.aips) + 1)
    reader = get(client, world, "reader", "/dashboard/ingests")
    assert sorted(reader.xpath("//tr[@data-job]/@data-aip")) == sorted(
        a.aip for a in world.aips if a.public
    )
    # the report kept in the AIP (v1 metadata/report.html on the primary store)
    public = next(a for a in world.aips if a.public)
    job = _job_of(client, world, public.aip)
    page = get(client, world, "reader", f"/dashboard/ingests/{job}")
    assert page.xpath("//a[@id='report-link']")
    r = client.get(f"/dashboard/ingests/{job}/report", headers=bearer(world, "reader"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "sandbox" in r.headers["content-security-policy"]
    assert "四性检测报告" in r.text and public.aip in r.text
    # the refused ingest's report, kept under staging/reports, for staff
    failed = staff.xpath("//tr[@data-aip=''][1]/@data-job")[0]
    r = client.get(f"/dashboard/ingests/{failed}/report", headers=bearer(world, "auditor"))
    assert r.status_code == 200 and "missing.txt" in r.text
    assert (
        client.get(f"/dashboard/ingests/{failed}", headers=bearer(world, "reader")).status_code
        == 404
    )
    # a job id that is not a UUID is simply not found
    r = client.get("/dashboard/ingests/..%2F..%2Fetc/report", headers=bearer(world, "admin"))
    assert r.status_code == 404


def test_restricted_report_reads_are_logged(client: TestClient, world: World) -> None:
    secret = next(a for a in world.aips if not a.public)
    job = _job_of(client, world, secret.aip)
    r = client.get(f"/dashboard/ingests/{job}/report", headers=bearer(world, "auditor"))
    assert r.status_code == 200 and secret.aip in r.text
    with world.repo.catalog.session() as s:
        entries = list(aq.access_entries(s, since=utcnow() - dt.timedelta(hours=1)))
    assert any(
        e["aip_id"] == secret.aip and e["restricted"] and e["user_name"] == "auditor1"
        for e in entries
    )


def test_language_choice(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.tokens['admin']}"}
    with TestClient(create_app(world.repo)) as client:
        r = client.get("/dashboard/", headers={**headers, "Accept-Language": "en-GB,en;q=0.9"})
        assert "<h1>Overview</h1>" in r.text and 'lang="en"' in r.text
        r = client.get("/dashboard/", headers={**headers, "Accept-Language": "fr, zh-CN;q=0.5"})
        assert "<h1>概览</h1>" in r.text and 'lang="zh-CN"' in r.text
        assert client.get("/dashboard/", headers=headers).text.count("<h1>概览</h1>") == 1
        # ?lang is remembered in a cookie, which then wins over Accept-Language
        r = client.get("/dashboard/?lang=en", headers=headers)
        assert "<h1>Overview</h1>" in r.text and client.cookies.get(i18n.COOKIE) == "en"
        r = client.get("/dashboard/formats", headers={**headers, "Accept-Language": "zh"})
        assert "<h1>File formats</h1>" in r.text
        # and ?lang wins over the cookie
        r = client.get("/dashboard/formats?lang=zh", headers=headers)
        assert "<h1>文件格式</h1>" in r.text and client.cookies.get(i18n.COOKIE) == "zh"


def test_accept_language_parsing() -> None:
    assert i18n.parse_accept_language("en-US,en;q=0.9,zh-CN;q=0.8") == "en"
    assert i18n.parse_accept_language("zh-TW;q=0.4, en;q=0.3") == "zh"
    assert i18n.parse_accept_language("fr, de;q=0.9") is None
    assert i18n.parse_accept_language("en;q=0, zh;q=0.1") == "zh"
    assert i18n.parse_accept_language("en;q=bad, zh") == "zh"
    assert i18n.choose({}, {}, None) == "zh"
    assert i18n.choose({"lang": "xx"}, {"lang": "en"}, "zh") == "en"


def test_every_label_has_both_languages() -> None:
    from preservation.catalog.models import COPY_STATES, INCIDENT_SEVERITIES, JOB_STATES
    from preservation.formats.policy import STATUSES

    for key, (zh, en) in i18n.LABELS.items():
        assert zh.strip() and en.strip(), key
        assert zh.count("{") == en.count("{"), key
    # every state, severity and format status the pages show has its label
    keys = [f"state.{s}" for s in (*COPY_STATES, *JOB_STATES)]
    keys += [f"severity.{s}" for s in INCIDENT_SEVERITIES]
    keys += [f"fmt.status.{s}" for s in STATUSES]
    assert [k for k in keys if k not in i18n.LABELS] == []


def test_templates_exist_for_the_sign_in_page() -> None:
    base = Path(__file__).resolve().parents[2] / "preservation/access/templates/base.html"
    assert "{% block content %}" in base.read_text(encoding="utf-8")


def test_charts_escape_labels_and_carry_no_script() -> None:
    svg = str(
        charts.stacked_bars(
            "<b>t</b>", ["<img src=x>", "ok"], {"a": [3, 0], "b": [1, 12]}, {"a": "<script>x"}
        )
    )
    assert "<script" not in svg and "<img" not in svg and "&lt;img src=x&gt;" in svg
    tree = lxml.etree.fromstring(svg.encode())
    assert tree.get("role") == "img" and tree.get("aria-label") == "<b>t</b>"
    assert charts.integer_ticks(13) == [0, 5, 10, 15]
    assert charts.integer_ticks(0) == [0, 1]
    assert all(b % 200 == 0 for b in charts.integer_ticks(999))


@pytest.mark.parametrize("role", ["reader", "archivist"])
def test_overview_over_the_shared_access_fixture(access_env: AccessEnv, role: str) -> None:
    """The API tests' repository (two public AIPs, three restricted ones, two files
    each): the overview counts what the role may see."""
    seen = access_env.visible_to(role)
    with TestClient(create_app(access_env.repo)) as client:
        r = client.get("/dashboard/", headers=access_env.headers(role))
    found = figures(lxml.html.fromstring(r.text))
    assert int(found["aips"]) == len(seen)
    assert int(found["files"]) == 2 * len(seen)
    for aip in access_env.restricted - seen:
        assert aip not in r.text


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="PRESERVATION_TEST_POSTGRES_URL not set")
def test_pages_and_metrics_on_postgresql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_postgres_database(POSTGRES_URL) as url:
        monkeypatch.setenv("PRESERVATION_CATALOG_URL", url)
        pg = build_world(tmp_path)
        try:
            with TestClient(create_app(pg.repo)) as client:
                for role in ("reader", "auditor"):
                    doc = lxml.html.fromstring(
                        client.get("/dashboard/", headers=bearer(pg, role)).text
                    )
                    found = figures(doc)
                    for key, value in expected(pg, role != "reader").items():
                        assert int(found[key]) == value, (role, key)
                audits = lxml.html.fromstring(
                    client.get("/dashboard/audits", headers=bearer(pg, "auditor")).text
                )
                assert figures(audits)["checks-passed"] == "3"
                ingests = client.get("/dashboard/ingests", headers=bearer(pg, "reader")).text
                assert all(a.aip in ingests for a in pg.aips if a.public)
                metrics = client.get("/metrics", headers=bearer(pg, "auditor")).text
                assert f"preservation_aips {float(len(pg.aips))}" in metrics
                assert 'preservation_job_last_success_timestamp_seconds{job="audit"}' in metrics
        finally:
            pg.repo.catalog.dispose()


def test_ingest_history_pages(world: World) -> None:
    from preservation.access.dashboard import data
    from preservation.access.principal import Principal, Role

    staff = Principal("a", Role.ADMIN)
    pages = [data.ingests(world.repo, staff, page, per_page=3) for page in (1, 2)]
    assert [len(p["rows"]) for p in pages] == [3, 1]
    assert pages[0]["pages"] == 2 and pages[0]["total"] == len(world.aips) + 1
    newest_first = [r.started for p in pages for r in p["rows"]]
    assert newest_first == sorted(newest_first, reverse=True)
    reader = data.ingests(world.repo, Principal("r", Role.READER), 1, per_page=3)
    assert reader["total"] == sum(a.public for a in world.aips)
    assert reader["states"] == {"done": reader["total"]}


def test_ndsa_levels_follow_health_with_damaged_copies(tmp_path: Path) -> None:
    from sqlalchemy import select, update

    from preservation.access.dashboard import data
    from preservation.access.principal import Principal, Role
    from preservation.catalog import stats_queries as sq
    from preservation.catalog.models import AipVersion, Copy, FileCopy
    from tests.audit.builders import build_aip, make_repo, place_replica

    repo = make_repo(tmp_path / "repo")
    both = build_aip(repo, {"a.txt": b"a" * 10})
    place_replica(repo, both, "offsite")
    build_aip(repo, {"b.txt": b"b" * 10})  # primary only
    stores = list(repo.config.settings.stores)
    staff = Principal("s", Role.AUDITOR)

    def agree() -> dict[frozenset[str], int]:
        o = data.overview(repo, staff)
        ndsa = health(repo).ndsa
        assert o.ndsa_level == ndsa["level"]
        assert {str(k): v for k, v in o.aips_by_level.items()} == ndsa["aips_by_level"]
        with repo.catalog.session() as s:
            return sq.verified_store_sets(s, True, stores)

    assert agree() == {frozenset({"primary", "offsite"}): 1, frozenset({"primary"}): 1}
    # an audit found a bad file in the off-site copy: that copy no longer counts
    with repo.catalog.session() as s:
        offsite = (
            select(Copy.id)
            .join(AipVersion, AipVersion.id == Copy.version_id)
            .where(AipVersion.aip_id == both, Copy.store_name == "offsite")
        )
        s.execute(update(FileCopy).where(FileCopy.copy_id.in_(offsite)).values(outcome="fail"))
    assert agree() == {frozenset({"primary"}): 2}
    # readers: no public AIP here, so nothing is counted
    with repo.catalog.session() as s:
        assert sq.verified_store_sets(s, False, stores) == {}
