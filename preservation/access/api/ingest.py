"""Ingest over HTTP: upload a transfer, start a job, follow it, fetch its report.

See :mod:`preservation.access.ingest_jobs` for how uploads are streamed and jobs run.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from preservation.access.api.deps import errors, log_access
from preservation.access.auth import app_repo, client_address, require
from preservation.access.ingest_jobs import (
    JOB_KIND,
    IngestJobs,
    IngestOptions,
    receive_upload,
    reports_dir,
)
from preservation.access.principal import INGEST, Principal
from preservation.catalog import access_queries as aq
from preservation.catalog import queries as q
from preservation.errors import NotInCatalog, PermissionDenied
from preservation.paths import join_key

router = APIRouter(prefix="/api/ingest", tags=["ingest"])

UPLOAD_ROUTE_BODY_BYTES = 2**62
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"

JobId = Annotated[str, Path(min_length=1, max_length=64)]

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["transfer"],
                    "properties": {
                        "transfer": {"type": "string", "format": "binary"},
                        "metadata": {"type": "string", "format": "binary"},
                        "register": {"type": "string", "format": "binary"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/uploads",
    status_code=201,
    openapi_extra=_UPLOAD_BODY,
    responses=errors(400, 403, 413),
    # not the app's small body cap: receive_upload streams to disk and enforces the
    # server's --max-upload itself (413 ING003, partial folder removed)
    max_body_size=UPLOAD_ROUTE_BODY_BYTES,
)
async def upload_transfer(
    request: Request, principal: Annotated[Principal, Depends(require(INGEST))]
) -> dict[str, Any]:
    """Stream a transfer (and its catalogue sheet and register) to the staging area;
    refused with 413 (ING003) beyond the server's upload limit."""
    upload = await receive_upload(
        app_repo(request),
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
        request.app.state.max_upload_bytes,
    )
    return upload.to_dict()


class StartIngest(BaseModel):
    upload: str = Field(min_length=1, max_length=64)
    reference_code: Annotated[str | None, Field(max_length=255)] = None
    allow_duplicate: bool = False
    dry_run: bool = False
    replicate: bool = True


def _jobs(request: Request) -> IngestJobs:
    jobs: IngestJobs = request.app.state.ingest_jobs
    return jobs


@router.post("/jobs", status_code=202, responses=errors(400, 403, 404))
def start_ingest(
    request: Request,
    body: Annotated[StartIngest, Body()],
    principal: Annotated[Principal, Depends(require(INGEST))],
) -> dict[str, Any]:
    """Start ingesting an upload; follow the job at ``/api/ingest/jobs/{job}``."""
    job_id = _jobs(request).start(
        IngestOptions(**body.model_dump()), principal, client_address(request)
    )
    return {"job": job_id, "state": "running", "status_url": f"/api/ingest/jobs/{job_id}"}


def _job(
    request: Request, principal: Principal, job_id: str, what: str = "ingest job"
) -> dict[str, Any]:
    """An ingest job for its starter, any archivist or admin, and auditors; reading
    the job (``what``) of a record that is not public goes to the access log."""
    if not (principal.can(INGEST) or principal.can("read_operations")):
        raise PermissionDenied(user=principal.name, role=principal.role.value, action="read jobs")
    with app_repo(request).catalog.session() as s:
        job = q.get_job(s, job_id)
        public = (
            aq.aip_is_public(s, job["aip_id"]) if job is not None and job["aip_id"] else None
        )
    if job is None or job["kind"] != JOB_KIND:
        raise NotInCatalog(kind="ingest job", ident=job_id)
    if public is False:  # the job of a restricted record: a restricted read
        log_access(
            request,
            principal,
            "view",
            aip_id=job["aip_id"],
            restricted=True,
            detail={"what": what, "job": job_id},
        )
    return job


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


@router.get("/jobs/{job_id}", responses=errors(403, 404))
def ingest_job(
    request: Request, job_id: JobId, principal: Annotated[Principal, Depends(require("read"))]
) -> dict[str, Any]:
    """State of an ingest job; its receipt when done, its error when failed."""
    job = _job(request, principal, job_id)
    return {k: _iso(v) for k, v in job.items() if k not in ("host", "pid")}


@router.get(
    "/jobs/{job_id}/report",
    responses={
        200: {"content": {"application/json": {}, "text/html": {}}},
        **errors(403, 404),
    },
)
def ingest_report(
    request: Request,
    job_id: JobId,
    principal: Annotated[Principal, Depends(require("read"))],
    format: Annotated[Literal["json", "html"], Query()] = "json",
) -> Response:
    """The check report of an ingest job (the AIP's own report when it was ingested;
    the kept report of a refused ingest or a dry run)."""
    job = _job(request, principal, job_id, "ingest report")
    repo = app_repo(request)
    media = "application/json" if format == "json" else "text/html; charset=utf-8"
    name = f"report.{format}"
    # the report holds names and values from the transfer: served like the
    # dashboard's copy, sandboxed (no script, no same-origin rights) and never sniffed
    headers = {
        "Content-Security-Policy": REPORT_CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
    local = reports_dir(repo, job_id) / name
    if local.is_file():
        return FileResponse(local, media_type=media, headers=headers)
    if job["state"] == "done" and job["aip_id"]:
        store = repo.primary
        key = join_key(job["aip_id"], "v1", "metadata", name)
        store.head(key)  # a missing report: its error now, not a broken 200

        def chunks() -> Any:
            with store.open(key) as fh:
                while block := fh.read(1024 * 1024):
                    yield block

        return StreamingResponse(chunks(), media_type=media, headers=headers)
    if job["state"] in ("running", "staging", "finalising"):
        return JSONResponse(
            {"error": {"code": "USE001", "message": f"job {job_id} is still {job['state']}"}},
            status_code=409,
        )
    raise NotInCatalog(kind="report of ingest job", ident=job_id)
