"""Regression tests of the access layer's security review (issue 7).

Each test pins one hole found in the review: cookie-authenticated API writes without
a CSRF token, an existence oracle through ``?version=``, upload folders left behind
by a cancelled request, and markup in chart labels.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from preservation.access import charts
from preservation.access.auth import CSRF_HEADER, SESSION_COOKIE, sign_in
from preservation.access.ingest_jobs import receive_upload, uploads_dir
from preservation.repository import init_repository
from tests.access.conftest import AccessEnv

MISSING = "00000000-0000-0000-0000-000000000000"


def _session(client: TestClient, env: AccessEnv, role: str) -> str:
    """Sign ``role`` in (a browser session cookie on ``client``); returns the
    session's CSRF token, as the pages and ``/api/me`` give it."""
    _principal, secret = sign_in(env.repo, f"{role}-user", env.tokens[role], "testclient")
    client.cookies.set(SESSION_COOKIE, secret)
    me = client.get("/api/me")
    assert me.status_code == 200, me.text
    token = me.json()["csrf_token"]
    assert isinstance(token, str) and len(token) == 64
    return token


@pytest.mark.parametrize(
    ("role", "method", "path", "body"),
    [
        ("admin", "POST", "/api/users/no-such-user/disable", None),
        ("admin", "POST", "/api/users/no-such-user/token", None),
        ("archivist", "PATCH", f"/api/aips/{MISSING}/metadata", {"fields": {"title": "x"}}),
        ("archivist", "POST", "/api/ingest/jobs", {"upload": MISSING}),
    ],
)
def test_cookie_authenticated_api_writes_need_the_csrf_header(
    client: TestClient,
    access_env: AccessEnv,
    role: str,
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    # Each target is a missing object, so that a request that gets through changes
    # nothing in the shared repository: it answers 404; a refused one 403 ACC003.
    token = _session(client, access_env, role)
    try:
        bare = client.request(method, path, json=body)
        assert bare.status_code == 403, bare.text
        assert bare.json()["error"]["code"] == "ACC003"
        other = token[:-1] + ("1" if token[-1] == "0" else "0")
        wrong = client.request(method, path, json=body, headers={CSRF_HEADER: other})
        assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "ACC003"
        good = client.request(method, path, json=body, headers={CSRF_HEADER: token})
        assert good.status_code == 404, good.text
        # reads need no token; bearer-token writes need none either
        assert client.get("/api/aips").status_code == 200
    finally:
        client.cookies.clear()
    bearer = client.request(method, path, json=body, headers=access_env.headers(role))
    assert bearer.status_code == 404, bearer.text


def test_api_me_gives_no_csrf_token_to_bearer_clients(
    client: TestClient, access_env: AccessEnv
) -> None:
    me = client.get("/api/me", headers=access_env.headers("reader")).json()
    assert "csrf_token" not in me


def test_session_csrf_is_the_page_token(client: TestClient, access_env: AccessEnv) -> None:
    token = _session(client, access_env, "auditor")
    try:
        page = client.get("/dashboard/")
        assert page.status_code == 200 and token in page.text
    finally:
        client.cookies.clear()


@pytest.mark.parametrize(
    "suffix",
    [
        "/files/data/doc-001.txt?version=99",
        "/files/data/doc-001.txt?version=1",
        "/export?version=99",
        "/export?version=1",
        "/files/metadata/mets.xml?version=2",
    ],
)
def test_version_parameter_does_not_reveal_a_restricted_aip(
    client: TestClient, access_env: AccessEnv, suffix: str
) -> None:
    h = access_env.headers("reader")
    for key in ("secret", "controlled", "internal"):
        aip = access_env.aips[key]
        hidden = client.get(f"/api/aips/{aip}{suffix}", headers=h)
        absent = client.get(f"/api/aips/{MISSING}{suffix}", headers=h)
        assert hidden.status_code == absent.status_code == 404
        assert hidden.json()["error"]["message"].replace(aip, MISSING) == (
            absent.json()["error"]["message"]
        )
        assert hidden.headers["content-length"] == absent.headers["content-length"]


def test_cancelled_upload_leaves_no_folder(tmp_path: Path) -> None:
    repo = init_repository(tmp_path / "repo")
    boundary = "b0undary"
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"transfer\";"
        ' filename="t.zip"\r\nContent-Type: application/zip\r\n\r\n'
    ).encode()

    async def body() -> AsyncIterator[bytes]:
        yield head
        yield b"x" * 4096
        raise asyncio.CancelledError  # the client went away, the server is stopping

    async def run() -> None:
        await receive_upload(
            repo, f"multipart/form-data; boundary={boundary}", None, body(), 1 << 20
        )

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())
    folder = uploads_dir(repo)
    assert not folder.exists() or not any(folder.iterdir())


def test_chart_labels_are_escaped() -> None:
    evil = '<script>alert(1)</script>"&'
    svg = str(charts.stacked_bars(evil, [evil], {"k": [3]}, {"k": evil}))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    pie = str(charts.pie(evil, {"k": 2}, {"k": evil}))
    assert "<script>" not in pie and "&lt;script&gt;" in pie


def test_endless_part_header_is_refused_and_removed(tmp_path: Path) -> None:
    # python-multipart caps a part's headers (8 lines of about 4 KiB): memory stays
    # bounded however long a header line is sent
    from preservation.errors import UsageError

    repo = init_repository(tmp_path / "repo")
    boundary = "b0undary"

    async def body() -> AsyncIterator[bytes]:
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="transfer"'.encode()
        for _ in range(64):  # one header line that never ends, 64 KiB at a time
            yield b"; x=" + b"y" * (64 * 1024)

    async def run() -> None:
        await receive_upload(
            repo, f"multipart/form-data; boundary={boundary}", None, body(), 1 << 30
        )

    with pytest.raises(UsageError, match="header size"):
        asyncio.run(run())
    assert not any(uploads_dir(repo).iterdir())


@pytest.mark.parametrize(
    ("name", "fallback", "encoded"),
    [
        ("a.pdf", "a.pdf", "a.pdf"),
        ('x"; filename="evil.exe', "x__ filename=_evil.exe", "x%22%3B%20filename%3D%22evil.exe"),
        ("档案 1.pdf", "__ 1.pdf", "%E6%A1%A3%E6%A1%88%201.pdf"),
        ("a\r\nSet-Cookie: x=1", "a__Set-Cookie: x=1", "a%0D%0ASet-Cookie%3A%20x%3D1"),
        ("文件", "__", "%E6%96%87%E4%BB%B6"),
    ],
)
def test_content_disposition_is_quoted_both_ways(name: str, fallback: str, encoded: str) -> None:
    from preservation.access.api.aips import content_disposition

    value = content_disposition(name)
    assert value == f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    assert "\r" not in value and "\n" not in value and value.isascii()


def test_download_names_the_file_for_every_client(
    client: TestClient, access_env: AccessEnv
) -> None:
    aip = access_env.aips["open-a"]
    r = client.get(f"/api/aips/{aip}/files/data/doc-001.txt", headers=access_env.headers("reader"))
    assert r.status_code == 200
    assert r.headers["content-disposition"] == (
        "attachment; filename=\"doc-001.txt\"; filename*=UTF-8''doc-001.txt"
    )


def test_a_claimed_upload_cannot_be_started_again(tmp_path: Path) -> None:
    from preservation.access.ingest_jobs import find_upload
    from preservation.errors import NotInCatalog
    from preservation.model import new_uuid

    repo = init_repository(tmp_path / "repo")
    upload, job = new_uuid(), new_uuid()
    for name in (upload, f"{upload}.job-{job}"):  # a finished upload, one a job runs on
        folder = uploads_dir(repo) / name
        (folder / "transfer").mkdir(parents=True)
        (folder / "transfer" / "t.zip").write_bytes(b"x")
        (folder / "upload.json").write_text("{}", encoding="utf-8")
    assert find_upload(repo, upload).files["transfer"].name == "t.zip"
    for bad in (f"{upload}.job-{job}", upload.upper(), "..", "upload.json"):
        with pytest.raises(NotInCatalog):
            find_upload(repo, bad)


def test_request_bodies_are_capped_before_authentication(
    client: TestClient, access_env: AccessEnv
) -> None:
    from preservation.access.app import MAX_BODY_BYTES

    def body():  # type: ignore[no-untyped-def]
        chunk = b" " * (256 * 1024)
        for _ in range(4 * MAX_BODY_BYTES // len(chunk)):  # never a Content-Length
            yield chunk

    for headers in ({}, access_env.headers("admin")):
        r = client.post(
            "/api/users", content=body(), headers={**headers, "Content-Type": "application/json"}
        )
        assert r.status_code == 413, r.text
    big = b"{" + b" " * (2 * MAX_BODY_BYTES) + b"}"
    r = client.patch(f"/api/aips/{MISSING}/metadata", content=big,
                     headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 413
    r = client.post("/login", content=b"name=" + b"a" * (2 * MAX_BODY_BYTES),
                    headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == 413


def test_uploads_are_not_held_to_the_body_cap(tmp_path: Path) -> None:
    from preservation.access.app import MAX_BODY_BYTES, create_app
    from preservation.access.auth import add_user

    repo = init_repository(tmp_path / "repo")
    _, token = add_user(repo, "arch", "archivist")
    size = 3 * MAX_BODY_BYTES
    with TestClient(create_app(repo, max_upload_bytes=4 * MAX_BODY_BYTES)) as c:
        r = c.post(
            "/api/ingest/uploads",
            files={"transfer": ("t.zip", b"z" * size, "application/zip")},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["files"]["transfer"]["size"] == size
        r = c.post(
            "/api/ingest/uploads",
            files={"transfer": ("t.zip", b"z" * (5 * MAX_BODY_BYTES), "application/zip")},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 413 and r.json()["error"]["code"] == "ING003"


def test_aip_detail_bounds_its_events(client: TestClient, access_env: AccessEnv) -> None:
    aip = access_env.aips["open-a"]
    h = access_env.headers("reader")
    full = client.get(f"/api/aips/{aip}", headers=h).json()
    assert full["events_total"] == len(full["events"]) >= 2 and not full["events_truncated"]
    one = client.get(f"/api/aips/{aip}?events_limit=1", headers=h).json()
    assert one["events"] == full["events"][-1:]  # the newest
    assert one["events_total"] == full["events_total"] and one["events_truncated"]
    assert client.get(f"/api/aips/{aip}?events_limit=10001", headers=h).status_code == 422
