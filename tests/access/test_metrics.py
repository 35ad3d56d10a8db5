"""``/metrics``: Prometheus text of the catalogue (per the scraper's visibility) and of
the HTTP server, from a repository built with the real pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from preservation.access import auth
from preservation.access.app import create_app
from preservation.access.metrics import HttpMetricsMiddleware
from preservation.catalog import audit_queries as aq
from preservation.model import utcnow
from preservation.repository import init_repository
from tests.access.dashboard_fixtures import World, bearer, expected, shared_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return shared_world(tmp_path_factory)


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.repo)) as c:
        yield c


def scrape(client: TestClient, token: str) -> Samples:
    r = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


INCIDENTS = "preservation_open_incidents_by_severity"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[key(name, **labels)]


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def test_metrics_need_a_signed_in_principal(client: TestClient) -> None:
    r = client.get("/metrics")
    assert r.status_code == 401 and r.json()["error"]["code"] == "ACC001"
    r = client.get("/metrics", headers={"Authorization": "Bearer prs_forged"})
    assert r.status_code == 401


@pytest.mark.parametrize("role", ["reader", "auditor"])
def test_catalogue_metrics_match_what_was_ingested(
    client: TestClient,
    world: World,
    role: str,
) -> None:
    sees = role != "reader"
    m = scrape(client, world.tokens[role])
    want = expected(world, sees)
    seen = world.visible(sees)
    assert value(m, "preservation_aips") == want["aips"]
    assert value(m, "preservation_files") == want["files"]
    assert value(m, "preservation_bytes") == want["bytes"]
    # every AIP is on the primary; only the replicated ones are verified off site
    assert value(m, "preservation_store_aips", store="primary") == len(seen)
    assert value(m, "preservation_store_bytes", store="primary") == want["bytes"]
    replicated = [a for a in seen if a.replicated]
    assert value(m, "preservation_store_aips", store="offsite") == len(replicated)
    assert value(m, "preservation_store_files", store="offsite") == sum(a.files for a in replicated)
    assert value(m, "preservation_copies", store="offsite", state="verified") == len(replicated)
    assert value(m, "preservation_copies", store="offsite", state="pending") == len(seen) - len(
        replicated
    )
    assert value(m, "preservation_copies", store="primary", state="verified") == len(seen)
    assert value(m, "preservation_overdue_file_copies", store="primary") == 0
    by_severity = {s: 0 for s in ("warning", "error", "critical")}
    for aip, severity in world.incidents:
        if aip in {a.aip for a in seen}:
            by_severity[severity] += 1
    for severity, n in by_severity.items():
        assert value(m, "preservation_open_incidents_by_severity", severity=severity) == n
    if not sees:
        # the journal counts every record's runs (one replication per AIP): staff only
        assert not any(k[0].startswith("preservation_job_") for k in m)
        return
    for job in ("ingest", "audit", "replication"):
        assert value(m, "preservation_job_last_success_timestamp_seconds", job=job) > 0
    assert value(m, "preservation_job_duration_seconds_count", kind="audit", state="done") == 1
    assert value(
        m, "preservation_job_duration_seconds_count", kind="replication", state="done"
    ) == len([a for a in world.aips if a.replicated])


def test_no_record_appears_in_any_label(client: TestClient, world: World) -> None:
    # requests for record pages are labelled by the route template, never the path
    secret = next(a for a in world.aips if not a.public)
    client.get(f"/dashboard/ingests/{secret.aip}", headers=bearer(world, "admin"))
    for role in ("reader", "auditor"):
        text = client.get("/metrics", headers=bearer(world, role)).text
        for a in world.aips:
            assert a.aip not in text and a.reference_code not in text
    m = scrape(client, world.tokens["auditor"])
    routes = {dict(k[1]).get("route") for k in m if k[0] == "preservation_http_requests_total"}
    assert "/dashboard/ingests/{job_id}" in routes
    assert all(r is None or "{" in r or r.count("/") <= 2 or r == "<unmatched>" for r in routes)


def test_http_requests_are_counted(client: TestClient, world: World) -> None:
    token = world.tokens["auditor"]
    formats = key("preservation_http_requests_total", method="GET", route="/dashboard/formats",
                  status="200")  # fmt: skip
    before = scrape(client, token).get(formats, 0.0)
    for _ in range(3):
        client.get("/dashboard/formats", headers={"Authorization": f"Bearer {token}"})
    client.get("/no/such/page", headers={"Authorization": f"Bearer {token}"})
    after = scrape(client, token)
    assert after[formats] == before + 3
    unmatched = key("preservation_http_requests_total", method="GET", route="<unmatched>",
                    status="404")  # fmt: skip
    assert after[unmatched] >= 1
    count = key("preservation_http_request_duration_seconds_count", method="GET",
                route="/dashboard/formats")  # fmt: skip
    assert after[count] >= 3


def test_each_app_has_its_own_registry_and_a_short_cache(tmp_path: Path) -> None:
    repo = init_repository(tmp_path / "repo")
    _, token = auth.add_user(repo, "mon", "auditor")
    first, second = create_app(repo), create_app(repo)
    assert first.state.metrics.http is not second.state.metrics.http
    with TestClient(first) as a, TestClient(second) as b:
        a.get("/dashboard/", headers={"Authorization": f"Bearer {token}"})
        ma = scrape(a, token)
        mb = scrape(b, token)
        dash = key("preservation_http_requests_total", method="GET", route="/dashboard/",
                   status="200")  # fmt: skip
        assert dash in ma and dash not in mb
        assert value(ma, INCIDENTS, severity="error") == 0
        with repo.catalog.session() as s:
            aq.add_incident(
                s, aip_id=None, version_id=None, store_name="primary", path=None,
                kind="unreachable", severity="error", evidence={}, when=utcnow(),
            )  # fmt: skip
        # cached for a few seconds: the same figures until the cache expires
        assert value(scrape(a, token), INCIDENTS, severity="error") == 0
        for collector in first.state.metrics.catalog.values():
            collector.ttl = 0.0
        assert value(scrape(a, token), INCIDENTS, severity="error") == 1
        # an incident of no AIP is never counted for a reader
        _, reader = auth.add_user(repo, "reader", "reader")
        assert value(scrape(a, reader), INCIDENTS, severity="error") == 0


def test_create_app_installs_the_http_middleware(tmp_path: Path) -> None:
    repo = init_repository(tmp_path / "repo")
    app = create_app(repo)
    assert app.state.metrics.middleware
    assert HttpMetricsMiddleware in [getattr(m, "cls", None) for m in app.user_middleware]
