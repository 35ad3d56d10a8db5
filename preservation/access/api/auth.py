"""Sign-in form, sign-out, and who am I.

``GET /login`` shows the form with a CSRF token (double submit: the same random value
in a ``prs_csrf`` cookie and a hidden field); ``POST /login`` checks it, then the user
name and token, and sets the session cookie (see :mod:`preservation.access.auth` for
its flags). Every sign-in, failed sign-in and sign-out is in the access log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from preservation.access import accesslog
from preservation.access.api.deps import errors
from preservation.access.auth import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    SESSION_HOURS,
    app_repo,
    check_csrf,
    check_session_csrf,
    client_address,
    current_principal,
    new_secret,
    optional_principal,
    secure_cookie,
    session_csrf,
    sign_in,
    sign_out,
)
from preservation.access.principal import Principal
from preservation.errors import CsrfRejected, NotAuthenticated

router = APIRouter(tags=["auth"])
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))
MAX_FIELD = 4096


def safe_next(value: str | None) -> str:
    """A local path to go to after sign-in ('/' for anything else: no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 32 for c in value):
        return "/"
    return value


def _form(
    request: Request,
    *,
    status: int = 200,
    error: str | None = None,
    name: str = "",
    next_url: str = "/",
    signed_in: str | None = None,
) -> Response:
    csrf = new_secret()
    response = templates.TemplateResponse(
        request,
        "login.html",
        {
            "csrf_token": csrf,
            "error": error,
            "name": name,
            "next": next_url,
            "signed_in": signed_in,
            "logout_token": session_csrf(request) if signed_in else None,
        },
        status_code=status,
    )
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request),
        path="/",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(
    request: Request,
    principal: Annotated[Principal | None, Depends(optional_principal)],
    next: str | None = None,
) -> Response:
    return _form(
        request,
        next_url=safe_next(next),
        signed_in=principal.name if principal is not None else None,
    )


@router.post("/login", response_class=HTMLResponse, include_in_schema=False)
async def login(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=10, max_part_size=MAX_FIELD)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    name = fields.get("name", "")[:64]
    next_url = safe_next(fields.get("next"))
    repo = app_repo(request)
    client = client_address(request)
    try:
        check_csrf(request, fields.get(CSRF_FIELD))
    except CsrfRejected as e:
        accesslog.record_quietly(
            repo,
            action="denied",
            status=403,
            user_name=name or None,
            path="/login",
            client=client,
            detail={"code": e.code},
        )
        return _form(request, status=403, error=e.message, name=name, next_url=next_url)
    try:
        principal, secret = sign_in(repo, name, fields.get("token", ""), client)
    except NotAuthenticated:
        accesslog.record(
            repo,
            action="login_failed",
            status=401,
            user_name=name or None,
            path="/login",
            client=client,
        )
        return _form(
            request,
            status=401,
            error="用户名或令牌不正确 Unknown user name or token",
            name=name,
            next_url=next_url,
        )
    accesslog.record(
        repo, action="login", status=303, principal=principal, path="/login", client=client
    )
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=SESSION_HOURS * 3600,
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request),
        path="/",
    )
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


def _logout(request: Request) -> Response:
    repo = app_repo(request)
    secret = request.cookies.get(SESSION_COOKIE)
    principal = optional_principal(request)
    if secret:
        sign_out(repo, secret)
    if principal is not None:
        accesslog.record(
            repo,
            action="logout",
            status=303,
            principal=principal,
            path="/logout",
            client=client_address(request),
        )
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    """Sign out: the form on every page posts its session's CSRF token."""
    form = await request.form(max_files=0, max_fields=5, max_part_size=MAX_FIELD)
    submitted = form.get(CSRF_FIELD)
    if request.cookies.get(SESSION_COOKIE) is None:
        return RedirectResponse("/login", status_code=303)  # no session: nothing to end
    # a wrong token: CsrfRejected, 403 and an access-log denial (the app's handler)
    check_session_csrf(request, submitted if isinstance(submitted, str) else None)
    return _logout(request)


@router.get("/logout", response_class=HTMLResponse, include_in_schema=False)
def logout_form(request: Request) -> Response:
    """A confirmation form: a GET (a link, an image, a prefetch) never signs out."""
    principal = optional_principal(request)
    if principal is None or request.cookies.get(SESSION_COOKIE) is None:
        return RedirectResponse("/login", status_code=303)
    response = templates.TemplateResponse(
        request,
        "logout.html",
        {"signed_in": principal.name, "logout_token": session_csrf(request)},
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/api/me", responses=errors())
def me(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> dict[str, Any]:
    """The signed-in user, the role and what it may do; for a browser session also
    ``csrf_token``, the value its state-changing API calls send in ``X-CSRF-Token``."""
    from preservation.access.principal import ACTIONS

    body: dict[str, Any] = {
        "name": principal.name,
        "role": principal.role.value,
        "sees_restricted": principal.sees_restricted,
        "may": [a for a in ACTIONS if principal.can(a)],
    }
    if getattr(request.state, "auth_via", None) == "session":
        body["csrf_token"] = session_csrf(request)
    return body
