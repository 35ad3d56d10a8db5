"""Format reports: the effective policy and files and bytes per format and status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from preservation.access.api.deps import errors
from preservation.access.auth import app_repo, require
from preservation.access.principal import READ_OPERATIONS, Principal

router = APIRouter(prefix="/api/formats", tags=["formats"])


@router.get("/report", responses=errors(403))
def format_report(
    request: Request, principal: Annotated[Principal, Depends(require(READ_OPERATIONS))]
) -> dict[str, Any]:
    """What ``preservation formats report`` reports."""
    from preservation.formats.risk import format_report as report

    data: dict[str, Any] = report(app_repo(request))
    return data


@router.get("/policy", responses=errors(403))
def format_policy(
    request: Request, principal: Annotated[Principal, Depends(require(READ_OPERATIONS))]
) -> dict[str, Any]:
    """The effective format policy (the registry with this site's overrides)."""
    from preservation.formats.policy import policy_for

    data: dict[str, Any] = policy_for(app_repo(request)).to_dict()
    return data
