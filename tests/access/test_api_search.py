"""Search: every criterion, pagination, and hostile values (bound parameters only)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.access.conftest import AccessEnv


def _ids(client: TestClient, env: AccessEnv, query: str, role: str = "auditor") -> set[str]:
    r = client.get(f"/api/aips?{query}", headers=env.headers(role))
    assert r.status_code == 200, r.text
    return {i["id"] for i in r.json()["items"]}


@pytest.mark.parametrize(
    ("query", "keys"),
    [
        ("fonds=Z109", {"open-a", "secret"}),
        ("fonds=Z109&year=2011", {"open-a"}),
        ("year=2015", {"open-b"}),
        ("reference_code=Z200-WS", {"open-b"}),
        ("q=Z300", {"controlled"}),
        ("title=T-open", {"open-a", "open-b"}),
        ("creator=办公室", {"open-a", "open-b", "secret", "controlled", "internal"}),
        ("creator=nobody", set()),
        ("security_level=公开", {"open-a", "controlled"}),
        ("open_status=开放", {"open-a", "open-b", "internal"}),
        ("date_from=2013-01-01&date_to=2014-12-31", {"controlled", "internal"}),
        ("date_from=2015-01-01", {"open-b"}),
        ("date_to=2011-12-31", {"open-a"}),
        # the day matters, not only the year: open-a's records are dated 2011-03-01
        # and 2011-03-02, open-b's 2015-03-01 and 2015-03-02
        ("date_from=2011-03-02&date_to=2011-03-02", {"open-a"}),
        ("date_from=2011-03-03&date_to=2011-12-31", set()),
        ("date_from=2011-01-01&date_to=2011-02-28", set()),
        ("date_from=2015-02-01&date_to=2015-03-01", {"open-b"}),
        ("date_to=2011-03-01", {"open-a"}),
        ("format=x-fmt/111", {"open-a", "open-b", "secret", "controlled", "internal"}),
        ("format=fmt/353", set()),
    ],
)
def test_criteria(client: TestClient, access_env: AccessEnv, query: str, keys: set[str]) -> None:
    assert _ids(client, access_env, query) == {access_env.aips[k] for k in keys}


def test_pagination(client: TestClient, access_env: AccessEnv) -> None:
    h = access_env.headers("auditor")
    pages = [client.get(f"/api/aips?limit=2&offset={o}", headers=h).json() for o in (0, 2, 4)]
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert all(p["total"] == 5 for p in pages)
    ids = [i["id"] for p in pages for i in p["items"]]
    assert len(set(ids)) == 5
    assert client.get("/api/aips?limit=0", headers=h).status_code == 422
    assert client.get("/api/aips?limit=100000", headers=h).status_code == 422
    assert client.get("/api/aips?offset=-1", headers=h).status_code == 422


@pytest.mark.parametrize(
    "value",
    [
        "' OR '1'='1",
        "'; DROP TABLE aips; --",
        "%",
        "_",
        "\\",
        "%' OR 1=1 --",
        '") OR ("a"="a',
        "Z109%",
    ],
)
@pytest.mark.parametrize("field", ["q", "reference_code", "title", "creator", "fonds", "format"])
def test_injection_looking_values_match_nothing(
    client: TestClient, access_env: AccessEnv, field: str, value: str
) -> None:
    r = client.get("/api/aips", params={field: value}, headers=access_env.headers("reader"))
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 0
    # the catalogue is intact
    after = client.get("/api/aips", headers=access_env.headers("auditor")).json()
    assert after["total"] == 5


def test_bad_values_are_422(client: TestClient, access_env: AccessEnv) -> None:
    h = access_env.headers("reader")
    for query in ("year=abc", "date_from=2011-13-45", "year=1 OR 1=1"):
        r = client.get(f"/api/aips?{query}", headers=h)
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "USE001"
    for value in ("\x00", "a\nb", "x\x7f"):
        r = client.get("/api/aips", params={"title": value}, headers=h)
        assert r.status_code == 400, value
        assert r.json()["error"]["code"] == "USE001"


def test_aip_date_span_in_detail(client: TestClient, access_env: AccessEnv) -> None:
    """Ingest keeps the records' 日期 as the AIP-level span the date search uses."""
    r = client.get(f"/api/aips/{access_env.aips['open-a']}", headers=access_env.headers("reader"))
    assert r.status_code == 200, r.text
    descriptive = r.json()["versions"][0]["descriptive"]
    assert descriptive["date_from"] == "2011-03-01"
    assert descriptive["date_to"] == "2011-03-02"
    assert "date" not in descriptive  # the two records do not share one date
