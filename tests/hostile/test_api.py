"""Hostile requests to the REST API: each refused with the right status AND logged.

tests/access/ proves the statuses in depth: every endpoint for every role
(test_api_roles.py test_every_endpoint_for_every_role), missing, forged and disabled
tokens (test_missing_forged_or_disabled_token_is_401), injection-looking search values
that match nothing and leave the catalogue intact (test_api_search.py
test_injection_looking_values_match_nothing, test_bad_values_are_422), path tricks in
the download route (test_api_download.py test_path_tricks_never_escape_the_bag),
oversized uploads (test_api_ingest.py test_oversized_upload_is_413_and_leaves_nothing)
and the login form's CSRF check (test_auth.py test_login_form_csrf_and_cookie_flags).
Here one request of each kind, and the access-log entry it must leave behind.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from preservation.access.app import create_app
from preservation.catalog import access_queries as aq
from preservation.model import utcnow
from tests.access.conftest import SPECS, AccessEnv, build_env

MAX_UPLOAD = 64 * 1024


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> AccessEnv:
    return build_env(tmp_path_factory.mktemp("hostile-api"), (SPECS[0], SPECS[2]))


@pytest.fixture
def client(env: AccessEnv) -> Iterator[TestClient]:
    with TestClient(create_app(env.repo, max_upload_bytes=MAX_UPLOAD)) as c:
        yield c


@dataclass(frozen=True)
class Hostile:
    send: Callable[[TestClient, AccessEnv], Any]
    status: set[int]
    code: str | None  # the error code of the body (None: not a JSON error body)


Send = Callable[[TestClient, AccessEnv], Any]


def _get(path: str, role: str | None = "reader", auth: str | None = None) -> Send:
    def send(c: TestClient, env: AccessEnv) -> Any:
        headers = env.headers(role) if role else {}
        if auth is not None:
            headers = {"Authorization": auth}
        return c.get(path.format(**env.aips), headers=headers)

    return send


def _upload(c: TestClient, env: AccessEnv) -> Any:
    return c.post(
        "/api/ingest/uploads",
        files={"transfer": ("big.zip", b"x" * (MAX_UPLOAD + 1024))},
        headers=env.headers("archivist"),
    )


def _login_without_csrf(c: TestClient, env: AccessEnv) -> Any:
    c.get("/login")
    return c.post(
        "/login",
        data={"name": "admin-user", "token": env.tokens["admin"], "next": "/api/me"},
        follow_redirects=False,
    )


def _login_cross_site(c: TestClient, env: AccessEnv) -> Any:
    page = c.get("/login").text
    m = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert m is not None
    c.cookies.clear()  # the form's token, but not the cookie it goes with: another site
    return c.post(
        "/login",
        data={"name": "admin-user", "token": env.tokens["admin"], "csrf_token": m.group(1)},
        follow_redirects=False,
    )


def _reader_adds_a_user(c: TestClient, env: AccessEnv) -> Any:
    return c.post("/api/users", json={"name": "mallory", "role": "admin"},
                  headers=env.headers("reader"))  # fmt: skip


CASES: dict[str, Hostile] = {
    "SQL injection in a number": Hostile(_get("/api/aips?year=2011 OR 1=1"), {422}, "USE001"),
    "SQL injection in a date": Hostile(
        _get("/api/aips?date_from=2011-01-01';DROP TABLE aips;--"), {422}, "USE001"),
    "path traversal in a download": Hostile(  # the client resolves '..': no such AIP
        _get("/api/aips/{open-a}/files/data/../../../preservation.toml", "admin"),
        {404}, "CAT002"),
    "encoded traversal in a download": Hostile(
        _get("/api/aips/{open-a}/files/data%2F..%2F..%2Fpreservation.toml", "admin"),
        {404, 422}, "PTH001"),
    "absolute path in a download": Hostile(
        _get("/api/aips/{open-a}/files/%2Fetc%2Fpasswd", "admin"), {404, 422}, "PTH001"),
    "oversized upload": Hostile(_upload, {413}, "ING003"),
    "missing token": Hostile(_get("/api/aips", None), {401}, "ACC001"),
    "forged token": Hostile(
        _get("/api/aips", None, auth="Bearer prs_forged"), {401}, "ACC001"),
    "login form without CSRF token": Hostile(_login_without_csrf, {403}, None),
    "login form posted cross-site": Hostile(_login_cross_site, {403}, None),
    "reader creates a user": Hostile(_reader_adds_a_user, {403}, "ACC002"),
    "reader reads the access log": Hostile(
        _get("/api/access-log/review?since=2020-01-01T00:00:00Z"), {403}, "ACC002"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_request_is_refused_and_logged(
    name: str, client: TestClient, env: AccessEnv
) -> None:
    case = CASES[name]
    start = utcnow() - dt.timedelta(seconds=1)
    r = case.send(client, env)
    assert r.status_code in case.status, (name, r.status_code, r.text[:300])
    if case.code is not None:
        assert r.json()["error"]["code"] == case.code, r.text[:300]
    if r.status_code == 404:
        return  # nothing was refused: the client itself resolved the path to a missing AIP
    assert b"root:" not in r.content and b"[repository]" not in r.content
    with env.repo.catalog.session() as s:
        entries = [e for e in aq.access_entries(s, start) if e["status"] == r.status_code]
    assert entries, f"{name}: refused with {r.status_code} but not in the access log"


def test_catalogue_intact_after_the_injections(client: TestClient, env: AccessEnv) -> None:
    for name in ("SQL injection in a number", "SQL injection in a date"):
        CASES[name].send(client, env)
    r = client.get("/api/aips", headers=env.headers("auditor"))
    assert r.status_code == 200 and r.json()["total"] == 2


def test_uploads_folder_is_empty_after_the_oversized_upload(
    client: TestClient, env: AccessEnv, tmp_path: Path
) -> None:
    _upload(client, env)
    leftovers = [p for p in (env.repo.root / "staging").rglob("*") if p.is_file()
                 and "upload" in str(p)]  # fmt: skip
    assert leftovers == []
