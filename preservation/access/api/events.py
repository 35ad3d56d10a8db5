"""PREMIS events recorded after ingest (the tamper-evident chain), newest first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from preservation.access.api.deps import errors
from preservation.access.auth import app_repo, require
from preservation.access.principal import READ_OPERATIONS, Principal
from preservation.catalog import access_queries as aq

router = APIRouter(prefix="/api/events", tags=["events"])


@router.get("", responses=errors(403))
def events(
    request: Request,
    principal: Annotated[Principal, Depends(require(READ_OPERATIONS))],
    aip: Annotated[str | None, Query(max_length=64)] = None,
    type: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=aq.MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Events, optionally of one AIP or one type."""
    with app_repo(request).catalog.session() as s:
        total, items = aq.events_page(
            s,
            sees_restricted=principal.sees_restricted,
            aip_id=aip,
            event_type=type,
            limit=limit,
            offset=offset,
        )
    return {"total": total, "limit": limit, "offset": offset, "items": items}
