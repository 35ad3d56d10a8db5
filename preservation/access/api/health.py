"""Replication health: copies per store, site and AIP; the NDSA storage level."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from preservation.access.api.deps import errors
from preservation.access.auth import app_repo, require
from preservation.access.principal import READ_OPERATIONS, Principal

router = APIRouter(prefix="/api/health", tags=["health"])


@router.get("", responses=errors(403))
def health(
    request: Request,
    principal: Annotated[Principal, Depends(require(READ_OPERATIONS))],
    include_all: Annotated[bool, Query(alias="all")] = False,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> dict[str, Any]:
    """What ``preservation health`` reports, with ``exit_status`` (0 policy met, 1 an
    AIP below policy, 2 a store unreachable)."""
    from preservation.storage.health import health as health_report

    report = health_report(app_repo(request), include_all=include_all, limit=limit)
    data: dict[str, Any] = report.to_dict()
    data["exit_status"] = report.exit_status
    return data
