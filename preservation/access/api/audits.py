"""Audit status: coverage within interval, overdue copies, open incidents, last runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from preservation.access.api.deps import errors
from preservation.access.auth import app_repo, require
from preservation.access.principal import READ_OPERATIONS, Principal

router = APIRouter(prefix="/api/audits", tags=["audits"])


@router.get("", responses=errors(403))
def audit_status(
    request: Request,
    principal: Annotated[Principal, Depends(require(READ_OPERATIONS))],
    runs: Annotated[int, Query(ge=0, le=1000)] = 10,
) -> dict[str, Any]:
    """What ``preservation audit status`` reports."""
    from preservation.audit.status import audit_status as status

    result: dict[str, Any] = status(app_repo(request), runs)
    return result
