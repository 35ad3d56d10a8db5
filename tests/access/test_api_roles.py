"""Every endpoint, every role: who may call what, and what the others get.

Calls that would change data are made with input that is refused after the role
check (an unknown field, an unknown upload, an invalid role), so the shared
repository stays as it is while the permission check is still exercised.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from tests.access.conftest import ROLES, AccessEnv

STAFF = {"admin", "archivist", "auditor"}
EDITORS = {"admin", "archivist"}
EVERYONE = set(ROLES)


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # {public}, {restricted} are AIP ids
    allowed: frozenset[str]
    status: int  # for allowed roles
    json: object = None
    reader_status: int = 403  # what a role outside ``allowed`` gets

    def url(self, env: AccessEnv) -> str:
        return self.path.format(public=env.aips["open-a"], restricted=env.aips["secret"])


def call(method: str, path: str, allowed: set[str], status: int = 200, **kw: object) -> Call:
    return Call(method, path, frozenset(allowed), status, **kw)  # type: ignore[arg-type]


CALLS = (
    call("GET", "/api/me", EVERYONE),
    call("GET", "/api/aips", EVERYONE),
    call("GET", "/api/aips?fonds=Z109&year=2011", EVERYONE),
    call("GET", "/api/aips/{public}", EVERYONE),
    call("GET", "/api/aips/{restricted}", STAFF, reader_status=404),
    call("GET", "/api/aips/{public}/files/data/doc-001.txt", EVERYONE),
    call("GET", "/api/aips/{restricted}/files/data/doc-001.txt", STAFF, reader_status=404),
    call("GET", "/api/aips/{public}/export?format=zip", EVERYONE),
    call("GET", "/api/aips/{restricted}/export?format=tar", STAFF, reader_status=404),
    call("PATCH", "/api/aips/{public}/metadata", EDITORS, 400, json={"fields": {"bogus": "x"}}),
    call("POST", "/api/ingest/uploads", EDITORS, 400),
    call("POST", "/api/ingest/jobs", EDITORS, 404, json={"upload": "no-such-upload"}),
    call("GET", "/api/ingest/jobs/no-such-job", STAFF, 404),
    call("GET", "/api/ingest/jobs/no-such-job/report", STAFF, 404),
    call("GET", "/api/health", STAFF),
    call("GET", "/api/audits", STAFF),
    call("GET", "/api/incidents", STAFF),
    call("GET", "/api/incidents/999999", STAFF, 404),
    call("GET", "/api/formats/report", STAFF),
    call("GET", "/api/formats/policy", STAFF),
    call("GET", "/api/jobs", STAFF),
    call("GET", "/api/jobs/no-such-job", STAFF, 404),
    call("GET", "/api/events", STAFF),
    call("GET", "/api/users", {"admin"}),
    call("POST", "/api/users", {"admin"}, 422, json={"name": "x", "role": "emperor"}),
    call("POST", "/api/users/nobody/token", {"admin"}, 404),
    call("POST", "/api/users/nobody/disable", {"admin"}, 404),
    call("GET", "/api/access-log/review?since=2020-01-01T00:00:00Z", {"admin", "auditor"}),
)


def _ids(c: Call) -> str:
    return f"{c.method} {c.path}"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("c", CALLS, ids=_ids)
def test_every_endpoint_for_every_role(
    client: TestClient, access_env: AccessEnv, c: Call, role: str
) -> None:
    r = client.request(c.method, c.url(access_env), headers=access_env.headers(role), json=c.json)
    expected = c.status if role in c.allowed else c.reader_status
    assert r.status_code == expected, (role, r.text[:300])
    if r.status_code >= 400:
        body = r.json()
        assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]
    if expected == 403:
        assert r.json()["error"]["code"] == "ACC002"


@pytest.mark.parametrize("c", CALLS, ids=_ids)
@pytest.mark.parametrize(
    "auth", [None, "Bearer prs_forged-token", "Bearer ", "Basic YWRtaW46YWRtaW4=", "disabled"]
)
def test_missing_forged_or_disabled_token_is_401(
    client: TestClient, access_env: AccessEnv, c: Call, auth: str | None
) -> None:
    headers = {}
    if auth == "disabled":
        headers = access_env.headers("disabled")
    elif auth is not None:
        headers = {"Authorization": auth}
    r = client.request(c.method, c.url(access_env), headers=headers, json=c.json)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "ACC001"
    assert r.headers["www-authenticate"] == "Bearer"


def test_denials_are_in_the_access_log(client: TestClient, access_env: AccessEnv) -> None:
    from preservation.access.accesslog import review
    from preservation.model import utcnow

    start = utcnow()
    client.get("/api/users", headers=access_env.headers("reader"))
    client.get("/api/users", headers={"Authorization": "Bearer prs_forged"})
    summary = review(access_env.repo, start)
    denials = {(d["user"], d["count"]) for d in summary["denials"]}
    assert ("reader-user", 1) in denials
    assert ("-", 1) in denials


def test_openapi_is_published(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths = set(doc["paths"])
    for p in (
        "/api/aips",
        "/api/aips/{aip_id}",
        "/api/aips/{aip_id}/files/{path}",
        "/api/aips/{aip_id}/export",
        "/api/aips/{aip_id}/metadata",
        "/api/ingest/uploads",
        "/api/ingest/jobs",
        "/api/ingest/jobs/{job_id}",
        "/api/ingest/jobs/{job_id}/report",
        "/api/health",
        "/api/audits",
        "/api/incidents",
        "/api/formats/report",
        "/api/jobs",
        "/api/events",
        "/api/users",
        "/api/access-log/review",
    ):
        assert p in paths, p
