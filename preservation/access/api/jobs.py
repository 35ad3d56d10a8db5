"""The job journal: ingests, versions, replication, audits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from preservation.access.api.deps import errors
from preservation.access.auth import app_repo, require
from preservation.access.principal import READ_OPERATIONS, Principal
from preservation.catalog import access_queries as aq
from preservation.catalog.models import JOB_STATES
from preservation.errors import NotInCatalog, UsageError

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.get("", responses=errors(403))
def jobs(
    request: Request,
    principal: Annotated[Principal, Depends(require(READ_OPERATIONS))],
    kind: Annotated[str | None, Query(max_length=32)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=aq.MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Journal rows newest first."""
    if state is not None and state not in JOB_STATES:
        raise UsageError(f"job state {state!r} is not one of {', '.join(JOB_STATES)}")
    with app_repo(request).catalog.session() as s:
        total, items = aq.jobs_page(
            s,
            sees_restricted=principal.sees_restricted,
            kind=kind,
            state=state,
            limit=limit,
            offset=offset,
        )
    return {"total": total, "limit": limit, "offset": offset, "items": items}


@router.get("/{job_id}", responses=errors(403, 404))
def job(
    request: Request,
    job_id: Annotated[str, Path(min_length=1, max_length=64)],
    principal: Annotated[Principal, Depends(require(READ_OPERATIONS))],
) -> dict[str, Any]:
    with app_repo(request).catalog.session() as s:
        found = aq.job_visible(s, job_id, sees_restricted=principal.sees_restricted)
    if found is None:
        raise NotInCatalog(kind="job", ident=job_id)
    return found
