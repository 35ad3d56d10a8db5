"""Users and tokens (admins), and the access-log review (admins and auditors)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from preservation.access import accesslog, auth
from preservation.access.api.deps import errors, log_access
from preservation.access.auth import app_repo, require
from preservation.access.principal import MANAGE_USERS, READ_ACCESS_LOG, Principal, Role

router = APIRouter(prefix="/api", tags=["users"])

UserName = Annotated[str, Path(min_length=1, max_length=64)]


class NewUser(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: Role


@router.get("/users", responses=errors(403))
def users(
    request: Request, principal: Annotated[Principal, Depends(require(MANAGE_USERS))]
) -> list[dict[str, Any]]:
    return [u.to_dict() for u in auth.list_users(app_repo(request))]


@router.post("/users", status_code=201, responses=errors(400, 403))
def add_user(
    request: Request,
    body: Annotated[NewUser, Body()],
    principal: Annotated[Principal, Depends(require(MANAGE_USERS))],
) -> dict[str, Any]:
    """Create a user; the response holds its token, shown this once only."""
    info, token = auth.add_user(app_repo(request), body.name, body.role.value)
    log_access(request, principal, "user_added", status=201, detail={"user": info.name})
    return {**info.to_dict(), "token": token}


@router.post("/users/{name}/token", responses=errors(403, 404))
def rotate_token(
    request: Request,
    name: UserName,
    principal: Annotated[Principal, Depends(require(MANAGE_USERS))],
) -> dict[str, Any]:
    """A new token for the user (shown this once); the old one stops working."""
    info, token = auth.rotate_token(app_repo(request), name)
    log_access(request, principal, "token_rotated", detail={"user": name})
    return {**info.to_dict(), "token": token}


@router.post("/users/{name}/disable", responses=errors(403, 404))
def disable_user(
    request: Request,
    name: UserName,
    principal: Annotated[Principal, Depends(require(MANAGE_USERS))],
) -> dict[str, Any]:
    info = auth.disable_user(app_repo(request), name)
    log_access(request, principal, "user_disabled", detail={"user": name})
    return info.to_dict()


@router.get("/access-log/review", responses=errors(403))
def access_log_review(
    request: Request,
    since: Annotated[dt.datetime, Query()],
    principal: Annotated[Principal, Depends(require(READ_ACCESS_LOG))],
    until: Annotated[dt.datetime | None, Query()] = None,
) -> dict[str, Any]:
    """The periodic review summary of the access log (NDSA control level 4)."""
    return accesslog.review(app_repo(request), _aware(since), _aware(until) if until else None)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
