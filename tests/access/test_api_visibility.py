"""Readers never see a restricted record, by any route; staff see everything."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from preservation.catalog.visibility import is_public
from tests.access.conftest import ROLES, AccessEnv


@pytest.mark.parametrize("role", ROLES)
def test_list_and_counts(client: TestClient, access_env: AccessEnv, role: str) -> None:
    r = client.get("/api/aips?limit=200", headers=access_env.headers(role))
    data = r.json()
    ids = {i["id"] for i in data["items"]}
    assert ids == access_env.visible_to(role)
    assert data["total"] == len(access_env.visible_to(role))


@pytest.mark.parametrize(
    "query",
    [
        "security_level=秘密",
        "open_status=不开放",
        "open_status=控制",
        "security_level=内部",
        "fonds=Z300",
        "year=2012",
        "q=Z109-WS·2012",
        "reference_code=Z400",
    ],
)
def test_searches_that_match_only_restricted_records(
    client: TestClient, access_env: AccessEnv, query: str
) -> None:
    staff = client.get(f"/api/aips?{query}", headers=access_env.headers("auditor")).json()
    reader = client.get(f"/api/aips?{query}", headers=access_env.headers("reader")).json()
    assert staff["total"] >= 1 and {i["id"] for i in staff["items"]} <= access_env.restricted
    assert reader == {"total": 0, "limit": 50, "offset": 0, "items": []}


@pytest.mark.parametrize("key", ["secret", "controlled", "internal"])
def test_restricted_record_is_404_like_a_missing_one(
    client: TestClient, access_env: AccessEnv, key: str
) -> None:
    aip = access_env.aips[key]
    h = access_env.headers("reader")
    missing = "00000000-0000-0000-0000-000000000000"
    for suffix in ("", "/files/data/doc-001.txt", "/files/metadata/mets.xml", "/export"):
        hidden = client.get(f"/api/aips/{aip}{suffix}", headers=h)
        absent = client.get(f"/api/aips/{missing}{suffix}", headers=h)
        assert hidden.status_code == absent.status_code == 404
        assert hidden.json()["error"]["code"] == absent.json()["error"]["code"] == "CAT002"
        assert (
            hidden.json()["error"]["message"].replace(aip, missing)
            == absent.json()["error"]["message"]
        )
        assert (
            client.get(
                f"/api/aips/{aip}{suffix}", headers=access_env.headers("auditor")
            ).status_code
            == 200
        )


def test_restricted_reads_by_staff_are_logged(client: TestClient, access_env: AccessEnv) -> None:
    from preservation.access.accesslog import review
    from preservation.model import utcnow

    start = utcnow()
    aip = access_env.aips["secret"]
    h = access_env.headers("auditor")
    client.get(f"/api/aips/{aip}", headers=h)
    client.get(f"/api/aips/{aip}/files/data/doc-001.txt", headers=h)
    client.get(f"/api/aips/{aip}/export?format=tar", headers=h)
    client.get("/api/aips?security_level=秘密", headers=h)
    client.get(f"/api/aips/{access_env.aips['open-a']}", headers=h)  # public: not logged
    summary = review(access_env.repo, start)
    reads = summary["restricted_reads"]["auditor-user"]
    assert reads["aips"] == {aip: 3, "-": 1}
    assert summary["by_user"]["auditor-user"] == {
        "download": 1,
        "export": 1,
        "search": 1,
        "view": 1,
    }


def test_public_flag_rule() -> None:
    assert is_public({"security_level": "公开", "open_status": "开放"})
    assert is_public({"security_level": "非密", "open_status": "开放"})
    assert not is_public({"security_level": "非密", "open_status": "控制"})
    assert not is_public({"security_level": "秘密", "open_status": "开放"})
    assert not is_public({"security_level": "内部", "open_status": "开放"})
    assert not is_public({"security_level": "", "open_status": "开放"})
    assert not is_public({"security_level": "公开"})
    assert not is_public({})
    assert not is_public({"security_level": "公开; 秘密", "open_status": "开放"})
    assert not is_public({"security_level": "公开", "open_status": "开放; 控制"})


def test_catalogue_public_flag_matches_ingested_fields(access_env: AccessEnv) -> None:
    from preservation.catalog.access_queries import aip_is_public

    with access_env.repo.catalog.session() as s:
        for aip in access_env.public:
            assert aip_is_public(s, aip) is True
        for aip in access_env.restricted:
            assert aip_is_public(s, aip) is False
