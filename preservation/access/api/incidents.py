"""Incidents found by audits, replication and exports, with their evidence."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from preservation.access.api.deps import errors
from preservation.access.auth import app_repo, require
from preservation.access.principal import READ_OPERATIONS, Principal
from preservation.catalog import audit_queries as aud
from preservation.catalog.models import INCIDENT_STATES

router = APIRouter(prefix="/api/incidents", tags=["incidents"])


@router.get("", responses=errors(403))
def incidents(
    request: Request,
    principal: Annotated[Principal, Depends(require(READ_OPERATIONS))],
    state: Annotated[Literal["open", "all"], Query()] = "open",
    store: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 200,
) -> list[dict[str, Any]]:
    """Open incidents (or all of them), newest first."""
    with app_repo(request).catalog.session() as s:
        rows: list[dict[str, Any]] = aud.list_incidents(
            s,
            states=INCIDENT_STATES if state == "all" else aud.OPEN_INCIDENT_STATES,
            store_name=store,
            limit=limit,
        )
    return rows


@router.get("/{incident_id}", responses=errors(403, 404))
def incident(
    request: Request,
    incident_id: Annotated[int, Path(ge=1, le=2**62)],
    principal: Annotated[Principal, Depends(require(READ_OPERATIONS))],
) -> dict[str, Any]:
    with app_repo(request).catalog.session() as s:
        row: dict[str, Any] = aud.get_incident(s, incident_id)
    return row
