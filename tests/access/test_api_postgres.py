"""The access queries on PostgreSQL: visibility, search criteria (JSONB fields),
hostile values, and a correction. Skipped without PRESERVATION_TEST_POSTGRES_URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from preservation.access.app import create_app
from tests.access.conftest import SPECS, AccessEnv, build_env
from tests.catalog.conftest import POSTGRES_URL, fresh_postgres_database

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="PRESERVATION_TEST_POSTGRES_URL not set")


@pytest.fixture(scope="module")
def pg_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AccessEnv]:
    with fresh_postgres_database(POSTGRES_URL) as url:
        env = build_env(tmp_path_factory.mktemp("pg"), (SPECS[0], SPECS[2], SPECS[3]), url)
        assert env.repo.catalog.dialect == "postgresql"
        yield env
        env.repo.catalog.dispose()


@pytest.fixture
def pg_client(pg_env: AccessEnv) -> Iterator[TestClient]:
    with TestClient(create_app(pg_env.repo)) as c:
        yield c


def test_visibility_and_search(pg_client: TestClient, pg_env: AccessEnv) -> None:
    def ids(query: str, role: str) -> set[str]:
        r = pg_client.get(f"/api/aips?{query}", headers=pg_env.headers(role))
        assert r.status_code == 200, r.text
        return {i["id"] for i in r.json()["items"]}

    assert ids("", "reader") == pg_env.public
    assert ids("", "auditor") == pg_env.public | pg_env.restricted
    a = pg_env.aips
    assert ids("creator=办公", "auditor") == set(a.values())
    assert ids("creator=办公", "reader") == {a["open-a"]}
    assert ids("date_from=2012-01-01&date_to=2013-12-31", "auditor") == {
        a["secret"],
        a["controlled"],
    }
    assert ids("format=x-fmt/111&fonds=Z109", "auditor") == {a["open-a"], a["secret"]}
    assert ids("security_level=秘密", "reader") == set()
    for value in ("' OR 1=1 --", "%", "_", "\\"):
        r = pg_client.get("/api/aips", params={"title": value}, headers=pg_env.headers("reader"))
        assert r.status_code == 200 and r.json()["total"] == 0
    secret = a["secret"]
    assert pg_client.get(f"/api/aips/{secret}", headers=pg_env.headers("reader")).status_code == 404
    assert (
        pg_client.get(f"/api/aips/{secret}", headers=pg_env.headers("auditor")).status_code == 200
    )


def test_correction_on_postgres(pg_client: TestClient, pg_env: AccessEnv) -> None:
    aip = pg_env.aips["controlled"]
    r = pg_client.patch(
        f"/api/aips/{aip}/metadata",
        json={"fields": {"open_status": "开放"}},
        headers=pg_env.headers("archivist"),
    )
    assert r.status_code == 200 and r.json()["public"] is True
    got = pg_client.get(f"/api/aips/{aip}", headers=pg_env.headers("reader"))
    assert got.status_code == 200 and got.json()["aip"]["current_version"] == 2
