"""Sign-in form (CSRF, cookie flags), sessions, tokens, users; roles' permissions."""

from __future__ import annotations

import hashlib
import json
import re
import sys

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from preservation.access.api.auth import safe_next
from preservation.access.app import create_app
from preservation.access.auth import CSRF_COOKIE, SESSION_COOKIE
from preservation.access.principal import ACTIONS, Principal, Role
from preservation.catalog.models import User
from preservation.cli import cli, main
from tests.access.conftest import AccessEnv


def _csrf(client: TestClient) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match
    assert page.cookies.get(CSRF_COOKIE) == match.group(1)
    return match.group(1)


def _login(client: TestClient, name: str, token: str, csrf: str | None) -> object:
    data = {"name": name, "token": token, "next": "/api/me"}
    if csrf is not None:
        data["csrf_token"] = csrf
    return client.post("/login", data=data, follow_redirects=False)


def test_login_form_csrf_and_cookie_flags(fresh_env: AccessEnv) -> None:
    app = create_app(fresh_env.repo)
    token = fresh_env.tokens["auditor"]
    with TestClient(app) as c:
        page = c.get("/login")
        cookie_header = page.headers["set-cookie"]
        assert "HttpOnly" in cookie_header and "SameSite=strict" in cookie_header.replace(
            "Strict", "strict"
        )
        assert "Secure" not in cookie_header
        # no CSRF token, a wrong one, a token without the cookie: refused
        csrf = _csrf(c)
        assert _login(c, "auditor-user", token, None).status_code == 403  # type: ignore[attr-defined]
        assert _login(c, "auditor-user", token, csrf + "x").status_code == 403  # type: ignore[attr-defined]
        c.cookies.clear()
        assert _login(c, "auditor-user", token, csrf).status_code == 403  # type: ignore[attr-defined]
        # wrong token, wrong name for a good token
        csrf = _csrf(c)
        assert _login(c, "auditor-user", "prs_nope", csrf).status_code == 401  # type: ignore[attr-defined]
        assert _login(c, "张三", token, _csrf(c)).status_code == 401  # type: ignore[attr-defined]
        assert _login(c, "auditor-user", token, "令牌").status_code == 403  # type: ignore[attr-defined]
        # every form shown carries a new CSRF token (the failed attempt showed one)
        assert _login(c, "reader-user", token, csrf).status_code == 403  # type: ignore[attr-defined]
        assert _login(c, "reader-user", token, _csrf(c)).status_code == 401  # type: ignore[attr-defined]
        assert c.get("/api/me").status_code == 401
        r = _login(c, "auditor-user", token, _csrf(c))
        assert r.status_code == 303 and r.headers["location"] == "/api/me"  # type: ignore[attr-defined]
        set_cookie = r.headers["set-cookie"]  # type: ignore[attr-defined]
        assert f"{SESSION_COOKIE}=" in set_cookie and "HttpOnly" in set_cookie
        assert "samesite=strict" in set_cookie.lower() and "Secure" not in set_cookie
        me = c.get("/api/me").json()
        assert me["name"] == "auditor-user" and me["role"] == "auditor"
        # the session cookie reads restricted records like the token does
        secret = fresh_env.aips["secret"]
        assert c.get(f"/api/aips/{secret}").status_code == 200
        # signing out is a POST with the session's CSRF token, found on every page;
        # a GET only shows the form (a link or an image elsewhere cannot sign out)
        confirm = c.get("/logout", follow_redirects=False)
        assert confirm.status_code == 200 and 'action="/logout"' in confirm.text
        page = c.get("/dashboard/")
        form = re.search(
            r'<form method="post" action="/logout"[^>]*>\s*<input type="hidden"'
            r' name="csrf_token" value="([^"]+)"',
            page.text,
        )
        assert form and form.group(1) in confirm.text
        logout_token = form.group(1)
        assert c.get("/api/me").status_code == 200
        for bad in ({}, {"csrf_token": logout_token + "x"}, {"csrf_token": csrf}):
            refused = c.post("/logout", data=bad, follow_redirects=False)
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "ACC003"
        assert c.get("/api/me").status_code == 200  # still signed in
        # another session's token does not sign this one out
        other = TestClient(app)
        r2 = _login(other, "reader-user", fresh_env.tokens["reader"], _csrf(other))
        assert r2.status_code == 303  # type: ignore[attr-defined]
        other_page = other.get("/dashboard/").text
        assert logout_token not in other_page
        out = c.post("/logout", data={"csrf_token": logout_token}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/login"
        c.cookies.set(SESSION_COOKIE, r.cookies[SESSION_COOKIE])  # type: ignore[attr-defined]
        assert c.get("/api/me").status_code == 401
        assert c.get("/logout", follow_redirects=False).status_code == 303  # to /login
        assert other.get("/api/me").status_code == 200

    import datetime as dt

    from preservation.access.accesslog import review
    from preservation.model import utcnow

    summary = review(fresh_env.repo, utcnow() - dt.timedelta(hours=1))
    assert summary["by_user"]["auditor-user"]["login"] == 1
    assert summary["by_user"]["auditor-user"]["logout"] == 1
    assert {f["user"] for f in summary["failed_logins"]} == {"auditor-user", "reader-user", "张三"}


def test_secure_cookie_when_configured_or_https(fresh_env: AccessEnv) -> None:
    with TestClient(create_app(fresh_env.repo, secure_cookies=True)) as c:
        assert "Secure" in c.get("/login").headers["set-cookie"]
    with TestClient(create_app(fresh_env.repo), base_url="https://testserver") as c:
        csrf = _csrf(c)
        r = _login(c, "reader-user", fresh_env.tokens["reader"], csrf)
        assert "Secure" in r.headers["set-cookie"]  # type: ignore[attr-defined]


def test_open_redirects_are_refused() -> None:
    for value, expected in (
        ("/dashboard", "/dashboard"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil", "/"),
        (None, "/"),
    ):
        assert safe_next(value) == expected


def test_tokens_are_stored_hashed_and_rotation_disables_the_old_one(fresh_env: AccessEnv) -> None:
    repo = fresh_env.repo
    old = fresh_env.tokens["reader"]
    with repo.catalog.session() as s:
        stored = s.execute(select(User.token_hash).where(User.name == "reader-user")).scalar_one()
    assert stored == hashlib.sha256(old.encode()).hexdigest() and old not in stored
    runner = CliRunner()
    r = runner.invoke(cli, ["--repo", str(repo.root), "--json", "users", "token", "reader-user"])
    assert r.exit_code == 0, r.output
    new = json.loads(r.output)["token"]
    with TestClient(create_app(repo)) as c:
        assert c.get("/api/me", headers={"Authorization": f"Bearer {old}"}).status_code == 401
        assert c.get("/api/me", headers={"Authorization": f"Bearer {new}"}).status_code == 200


def _exit_status(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run the console entry point as a user would; its exit status."""
    monkeypatch.setattr(sys, "argv", ["preservation", *args])
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_users_cli(fresh_env: AccessEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = str(fresh_env.repo.root)
    runner = CliRunner()
    r = runner.invoke(cli, ["--repo", repo, "users", "add", "wang", "--role", "archivist"])
    assert r.exit_code == 0, r.output
    token = r.output.strip().splitlines()[-1]
    assert token.startswith("prs_") and len(token) > 40
    assert (
        _exit_status(monkeypatch, "--repo", repo, "users", "add", "wang", "--role", "reader") == 2
    )
    assert (
        _exit_status(monkeypatch, "--repo", repo, "users", "add", "../x", "--role", "reader") == 2
    )
    listed = json.loads(runner.invoke(cli, ["--repo", repo, "--json", "users", "list"]).output)
    assert {"name": "wang", "role": "archivist", "disabled": False} in [
        {k: u[k] for k in ("name", "role", "disabled")} for u in listed
    ]
    assert all("token" not in u for u in listed)
    assert runner.invoke(cli, ["--repo", repo, "users", "disable", "wang"]).exit_code == 0
    with TestClient(create_app(fresh_env.repo)) as c:
        assert c.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert _exit_status(monkeypatch, "--repo", repo, "users", "disable", "nobody") == 10


def test_api_user_management(fresh_client: TestClient, fresh_env: AccessEnv) -> None:
    h = fresh_env.headers("admin")
    r = fresh_client.post("/api/users", json={"name": "zhao", "role": "reader"}, headers=h)
    assert r.status_code == 201
    token = r.json()["token"]
    assert (
        fresh_client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()["role"]
        == "reader"
    )
    assert (
        fresh_client.post(
            "/api/users", json={"name": "zhao", "role": "reader"}, headers=h
        ).status_code
        == 400
    )
    rotated = fresh_client.post("/api/users/zhao/token", headers=h).json()["token"]
    assert rotated != token
    assert fresh_client.post("/api/users/zhao/disable", headers=h).json()["disabled"] is True
    assert (
        fresh_client.get("/api/me", headers={"Authorization": f"Bearer {rotated}"}).status_code
        == 401
    )


@pytest.mark.parametrize("role", list(Role))
def test_role_permissions(role: Role) -> None:
    p = Principal("someone", role)
    may = {a for a in ACTIONS if p.can(a)}
    expected = {
        Role.ADMIN: set(ACTIONS),
        Role.ARCHIVIST: {"read", "export", "read_operations", "ingest", "edit_metadata"},
        Role.AUDITOR: {"read", "export", "read_operations", "read_access_log"},
        Role.READER: {"read", "export"},
    }[role]
    assert may == expected
    assert p.sees_restricted is (role is not Role.READER)
    assert not p.can("launch_missiles")
