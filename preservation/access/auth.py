"""Users, API tokens, browser sessions and the FastAPI dependencies that check them.

**Tokens.** ``users add`` and ``users token`` make a token of 32 random bytes
(``secrets.token_urlsafe``, prefixed ``prs_``), print it once and store only its
sha256. A slow password KDF (scrypt, Argon2) protects *low-entropy* secrets against
guessing after a database leak; a 256-bit random token cannot be guessed whatever
the hash, so sha256 is enough, and it lets a request find its user by an indexed
lookup instead of trying a slow hash against every user.

**Browser sign-in.** No passwords: the sign-in form takes the user's name and token.
A successful sign-in makes a session (another 32 random bytes; the catalogue keeps
its sha256, the browser gets it in the ``prs_session`` cookie: ``HttpOnly``,
``SameSite=Strict``, ``Path=/``, and ``Secure`` when the request came over https or
the app was made with ``secure_cookies=True``; ``preservation serve
--secure-cookies`` behind a TLS proxy). Sessions last :data:`SESSION_HOURS`; rotating
the token or disabling the user ends them.

**CSRF.** The sign-in form uses the double-submit pattern: ``GET /login`` sets a
random ``prs_csrf`` cookie (HttpOnly, SameSite=Strict) and puts the same value in a
hidden field; ``POST /login`` refuses a request whose field and cookie are missing
or differ (compared in constant time). Signing out is a POST form on every page
(``GET /logout`` only shows that form): its token is bound to the session,
sha256 of a fixed label and the session secret (:func:`session_csrf`), so that it
needs no cookie of its own, survives several open tabs, and cannot be made without
the HttpOnly session cookie. API requests with a bearer token need no CSRF token:
browsers never send that header on their own. A state-changing API request
(POST, PATCH, DELETE...) authenticated by the session cookie must send that same
session token in the ``X-CSRF-Token`` header (``GET /api/me`` returns it to a
session): the cookie alone is refused with 403 ACC003.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Callable
from typing import Any, cast

from fastapi import Request

from preservation.access.principal import Principal, Role
from preservation.catalog import access_queries as aq
from preservation.errors import CsrfRejected, NotAuthenticated, PermissionDenied, UsageError
from preservation.model import utcnow
from preservation.repository import Repository

TOKEN_PREFIX = "prs_"
SESSION_COOKIE = "prs_session"
CSRF_COOKIE = "prs_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_HOURS = 12
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def new_secret() -> str:
    """32 random bytes, URL-safe text."""
    return secrets.token_urlsafe(32)


def new_token() -> str:
    return TOKEN_PREFIX + new_secret()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise UsageError(
            f"role {role!r} is not one of {', '.join(r.value for r in Role)}"
        ) from None


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(
            f"user name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-',"
            " starting with a letter or digit"
        )
    return name


# --- user management (CLI and API) -------------------------------------------------


def add_user(repo: Repository, name: str, role: str) -> tuple[aq.UserInfo, str]:
    """Create a user; returns it and its token (shown once, never stored)."""
    check_name(name)
    check_role(role)
    token = new_token()
    with repo.catalog.session() as s:
        if aq.get_user(s, name) is not None:
            raise UsageError(f"a user named {name!r} already exists")
        info = aq.add_user(s, name, role, hash_secret(token))
    return info, token


def rotate_token(repo: Repository, name: str) -> tuple[aq.UserInfo, str]:
    """A new token for ``name`` (the old one stops working, sessions end)."""
    token = new_token()
    with repo.catalog.session() as s:
        info = aq.set_user_token(s, name, hash_secret(token))
    return info, token


def disable_user(repo: Repository, name: str, disabled: bool = True) -> aq.UserInfo:
    with repo.catalog.session() as s:
        return aq.set_user_disabled(s, name, disabled)


def list_users(repo: Repository) -> list[aq.UserInfo]:
    with repo.catalog.session() as s:
        return aq.list_users(s)


def _principal(info: aq.UserInfo) -> Principal:
    return Principal(name=info.name, role=Role(info.role), user_id=info.id)


def principal_for_token(repo: Repository, token: str) -> Principal | None:
    """The principal holding this API token, or None (unknown, or user disabled)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    with repo.catalog.session() as s:
        info = aq.user_by_token_hash(s, hash_secret(token))
    return _principal(info) if info is not None else None


def sign_in(repo: Repository, name: str, token: str, client: str | None) -> tuple[Principal, str]:
    """Check a name and token; returns the principal and a new session secret.
    NotAuthenticated when they do not match an enabled user."""
    principal = principal_for_token(repo, token)
    if principal is None or not secrets.compare_digest(
        principal.name.encode("utf-8"), name.encode("utf-8")
    ):
        raise NotAuthenticated(reason="unknown user name or token")
    secret = new_secret()
    expires = utcnow() + dt.timedelta(hours=SESSION_HOURS)
    assert principal.user_id is not None
    with repo.catalog.session() as s:
        aq.delete_expired_sessions(s, utcnow())
        aq.add_session(s, hash_secret(secret), principal.user_id, expires, client)
    return principal, secret


def sign_out(repo: Repository, session_secret: str) -> None:
    with repo.catalog.session() as s:
        aq.delete_session(s, hash_secret(session_secret))


def principal_for_session(repo: Repository, session_secret: str) -> Principal | None:
    with repo.catalog.session() as s:
        info = aq.user_by_session(s, hash_secret(session_secret), utcnow())
    return _principal(info) if info is not None else None


# --- request handling --------------------------------------------------------------


def app_repo(request: Request) -> Repository:
    repo: Repository = request.app.state.repo
    return repo


def client_address(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise NotAuthenticated(reason="the Authorization header is not 'Bearer <token>'")
    return value.strip()


def _resolve(request: Request) -> Principal | None:
    cached: Any = getattr(request.state, "principal", _MISSING)
    if cached is not _MISSING:
        return cast("Principal | None", cached)
    repo = app_repo(request)
    token = _bearer(request)
    principal: Principal | None = None
    via: str | None = None
    if token is not None:
        principal = principal_for_token(repo, token)
        if principal is None:
            raise NotAuthenticated(reason="the token is not valid")
        via = "bearer"
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            principal = principal_for_session(repo, cookie)
            via = "session" if principal is not None else None
    request.state.principal = principal
    request.state.auth_via = via
    return principal


_MISSING = object()


def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the signed-in principal (bearer token or session cookie);
    NotAuthenticated (HTTP 401, ACC001) when there is none or the token is forged."""
    principal = _resolve(request)
    if principal is None:
        raise NotAuthenticated(reason="send 'Authorization: Bearer <token>' or sign in")
    if getattr(request.state, "auth_via", None) == "session":
        check_session_request(request)
    return principal


def optional_principal(request: Request) -> Principal | None:
    """FastAPI dependency for pages: the principal, or None when not signed in (a
    forged bearer token still raises NotAuthenticated)."""
    try:
        return _resolve(request)
    except NotAuthenticated:
        return None


def require(action: str) -> Callable[[Request], Principal]:
    """A dependency that returns the principal if its role may perform ``action``,
    else raises PermissionDenied (HTTP 403, ACC002)."""

    def dependency(request: Request) -> Principal:
        principal = current_principal(request)
        if not principal.can(action):
            raise PermissionDenied(user=principal.name, role=principal.role.value, action=action)
        return principal

    dependency.__name__ = f"require_{action}"
    return dependency


def secure_cookie(request: Request) -> bool:
    """Whether cookies get the Secure flag: https requests, or the app's setting."""
    return request.url.scheme == "https" or bool(request.app.state.secure_cookies)


def check_csrf(request: Request, submitted: str | None) -> None:
    """Double-submit check of a form post (CsrfRejected, HTTP 403, ACC003)."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if (
        not cookie
        or not submitted
        or not secrets.compare_digest(cookie.encode("utf-8"), submitted.encode("utf-8"))
    ):
        raise CsrfRejected()


def session_csrf(request: Request) -> str | None:
    """The CSRF token of the browser session's forms (None without a session)."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    return hashlib.sha256(b"prs-csrf\x00" + secret.encode("utf-8")).hexdigest()


def check_session_request(request: Request) -> None:
    """A state-changing request (any method but GET, HEAD, OPTIONS) authenticated by
    the session cookie must carry the session's CSRF token in the
    :data:`CSRF_HEADER` header (CsrfRejected, HTTP 403, ACC003, otherwise).

    SameSite=Strict keeps the cookie off cross-site requests, but not off requests
    from a sibling site (another host under the same registrable domain) or from
    browsers that ignore SameSite; a custom header cannot be sent cross-origin
    without a CORS preflight this app never grants, and its value cannot be made
    without the HttpOnly session cookie. Bearer-token requests need no token."""
    if request.method in SAFE_METHODS:
        return
    check_session_csrf(request, request.headers.get(CSRF_HEADER))


def check_session_csrf(request: Request, submitted: str | None) -> None:
    """A form post of a signed-in browser carries its session's token (CsrfRejected,
    HTTP 403, ACC003, otherwise)."""
    expected = session_csrf(request)
    if (
        not expected
        or not submitted
        or not secrets.compare_digest(expected.encode("utf-8"), submitted.encode("utf-8"))
    ):
        raise CsrfRejected()
