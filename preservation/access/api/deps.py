"""What every router shares: the repository of the app, the error responses that the
OpenAPI document lists, and writing to the access log from a request."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import BaseModel

from preservation.access import accesslog
from preservation.access.auth import app_repo, client_address
from preservation.access.principal import Principal


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error statuses (plus 401 and 422 always)."""
    described = {
        400: "Bad request",
        401: "Not signed in, or the token is not valid (ACC001)",
        403: "The role may not do this (ACC002)",
        404: "Not found, or not visible to this role",
        409: "Conflict",
        413: "Upload too large (ING003)",
        422: "Invalid parameters or input",
        502: "A store failed or returned wrong bytes",
        503: "A store or the catalogue is unavailable",
    }
    return {
        s: {"model": ErrorBody, "description": described.get(s, "Error")}
        for s in sorted({401, 422, *statuses})
    }


def log_access(
    request: Request,
    principal: Principal | None,
    action: str,
    *,
    status: int = 200,
    aip_id: str | None = None,
    restricted: bool = False,
    path: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    accesslog.record(
        app_repo(request),
        action=action,
        status=status,
        principal=principal,
        aip_id=aip_id,
        path=path if path is not None else request.url.path,
        client=client_address(request),
        restricted=restricted,
        detail=detail,
    )
