"""AIPs: list and search, detail, file download, whole-AIP export, metadata correction.

Readers see public AIPs only, by every route: an AIP they may not see answers 404
exactly like one that does not exist. Reads of records that are not public are
written to the access log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from preservation.access.api.deps import errors, log_access
from preservation.access.auth import app_repo, client_address, require
from preservation.access.principal import EDIT_METADATA, EXPORT, READ, Principal
from preservation.catalog import access_queries as aq
from preservation.errors import NotInCatalog, UnsafePath, UsageError
from preservation.paths import path_problem

router = APIRouter(prefix="/api/aips", tags=["aips"])

AipId = Annotated[str, Path(min_length=1, max_length=64, description="AIP UUID")]


class AipPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[dict[str, Any]]


@router.get("", response_model=AipPage, responses=errors(403))
def list_aips(
    request: Request,
    principal: Annotated[Principal, Depends(require(READ))],
    q: Annotated[
        str | None, Query(max_length=200, description="in reference code or title")
    ] = None,
    reference_code: Annotated[str | None, Query(max_length=255)] = None,
    title: Annotated[str | None, Query(max_length=500)] = None,
    creator: Annotated[str | None, Query(max_length=255)] = None,
    fonds: Annotated[str | None, Query(max_length=64)] = None,
    year: Annotated[int | None, Query(ge=1, le=9999)] = None,
    date_from: Annotated[dt.date | None, Query()] = None,
    date_to: Annotated[dt.date | None, Query()] = None,
    format: Annotated[str | None, Query(max_length=64, description="PRONOM PUID")] = None,
    security_level: Annotated[str | None, Query(max_length=64)] = None,
    open_status: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=aq.MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AipPage:
    """AIPs newest first, filtered by every criterion given (all must hold)."""
    for name, value in (
        ("q", q),
        ("reference_code", reference_code),
        ("title", title),
        ("creator", creator),
        ("fonds", fonds),
        ("format", format),
        ("security_level", security_level),
        ("open_status", open_status),
    ):
        if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise UsageError(f"search value {name} contains a control character")
    f = aq.AipFilter(
        q=q,
        reference_code=reference_code,
        title=title,
        creator=creator,
        fonds=fonds,
        year=year,
        date_from=date_from,
        date_to=date_to,
        puid=format,
        security_level=security_level,
        open_status=open_status,
    )
    with app_repo(request).catalog.session() as s:
        total, items = aq.search_aips(
            s, f, sees_restricted=principal.sees_restricted, limit=limit, offset=offset
        )
    hidden = [i["id"] for i in items if not i["public"]]
    if hidden:
        criteria = {k: v for k, v in request.query_params.items() if k not in ("limit", "offset")}
        log_access(
            request,
            principal,
            "search" if criteria else "list",
            restricted=True,
            detail={"criteria": criteria, "restricted_aips": hidden, "total": total},
        )
    return AipPage(total=total, limit=limit, offset=offset, items=items)


@router.get("/{aip_id}", responses=errors(403, 404))
def aip_detail(
    request: Request,
    aip_id: AipId,
    principal: Annotated[Principal, Depends(require(READ))],
    files_limit: Annotated[int, Query(ge=0, le=100_000)] = 1000,
    events_limit: Annotated[int, Query(ge=0, le=10_000)] = 1000,
) -> dict[str, Any]:
    """The AIP, its versions, the files of its current version, its copies with their
    state, and its newest events (``events_total``: all of them; the whole chain is
    at ``/api/events?aip=``)."""
    with app_repo(request).catalog.session() as s:
        data = aq.aip_detail(
            s,
            aip_id,
            sees_restricted=principal.sees_restricted,
            file_limit=files_limit,
            event_limit=events_limit,
        )
    if data is None:
        raise NotInCatalog(kind="AIP", ident=aip_id)
    if not data["aip"]["public"]:
        log_access(request, principal, "view", aip_id=aip_id, restricted=True)
    return data


def content_disposition(name: str) -> str:
    """``attachment`` with the file name for every client (RFC 6266): an ASCII
    ``filename`` (anything else, quotes, backslashes and controls as ``_``) and the
    exact UTF-8 name in ``filename*`` (RFC 5987, percent-encoded, so no quote, CR or
    LF of a name can end the header or the parameter)."""
    fallback = "".join(
        c if 32 <= ord(c) < 127 and c not in '"\\%;' else "_" for c in name
    ).strip() or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _check_bag_path(path: str) -> str:
    problem = path_problem(path)
    if problem:
        raise UnsafePath(path=path, reason=problem)
    return path


@router.get(
    "/{aip_id}/files/{path:path}",
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the file's bytes"},
        **errors(403, 404, 502, 503),
    },
    response_class=StreamingResponse,
)
def download_file(
    request: Request,
    aip_id: AipId,
    path: Annotated[str, Path(description="path inside the bag, e.g. data/a.pdf")],
    principal: Annotated[Principal, Depends(require(READ))],
    version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    store: Annotated[str | None, Query(max_length=64)] = None,
) -> StreamingResponse:
    """One file of a version (default: the current one), streamed from a store that
    holds a good copy and verified on the fly against the catalogue's SHA-256: on a
    mismatch the transfer breaks off (the last block is never sent) and an incident
    is opened."""
    from preservation.access.export import open_source
    from preservation.catalog.export_queries import export_file

    _check_bag_path(path)
    repo = app_repo(request)
    source = open_source(repo, aip_id, version=version, store=store, principal=principal)
    with repo.catalog.session() as s:
        f = export_file(s, source.info.version_id, path)
    if f is None:
        raise NotInCatalog(kind="file", ident=f"{aip_id} v{source.info.version} {path}")
    if not principal.sees_restricted and f.kind == "payload":
        from preservation.access.dip import restricted_paths

        if path in restricted_paths(source):
            raise NotInCatalog(kind="file", ident=f"{aip_id} v{source.info.version} {path}")
    if not source.info.public:
        log_access(
            request,
            principal,
            "download",
            aip_id=aip_id,
            restricted=True,
            detail={"version": source.info.version, "file": path, "size": f.size},
        )
    name = path.rsplit("/", 1)[-1]
    headers = {
        "Content-Length": str(f.size),
        "Content-Disposition": content_disposition(name),
        "X-Content-SHA256": f.sha256,
    }
    return StreamingResponse(
        source.blocks(f), media_type=f.mime or "application/octet-stream", headers=headers
    )


@router.get(
    "/{aip_id}/export",
    responses={
        200: {
            "content": {"application/zip": {}, "application/x-tar": {}},
            "description": "the complete bag as an archive",
        },
        **errors(403, 404, 502, 503),
    },
    response_class=StreamingResponse,
)
def export_aip(
    request: Request,
    aip_id: AipId,
    principal: Annotated[Principal, Depends(require(EXPORT))],
    format: Annotated[Literal["zip", "tar"], Query()] = "zip",
    version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    store: Annotated[str | None, Query(max_length=64)] = None,
) -> StreamingResponse:
    """A complete, valid bag of a version (default: the current one) as zip or tar,
    verified while it streams (a bad file breaks the transfer off and opens an
    incident)."""
    from preservation.access.export import stream_bag

    repo = app_repo(request)
    chunks: Iterator[bytes] = stream_bag(
        repo, aip_id, version=version, fmt=format, store=store, principal=principal
    )
    with repo.catalog.session() as s:
        public = bool(aq.aip_is_public(s, aip_id))
    if not public:
        log_access(
            request,
            principal,
            "export",
            aip_id=aip_id,
            restricted=True,
            detail={"version": version, "format": format, "store": store},
        )
    label = f"{aip_id}-v{version}" if version is not None else aip_id
    media = "application/zip" if format == "zip" else "application/x-tar"
    return StreamingResponse(
        chunks,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{label}.{format}"'},
    )


class MetadataPatch(BaseModel):
    fields: dict[str, Annotated[str, Field(max_length=2000)]] = Field(
        description='descriptive fields to set, e.g. {"open_status": "开放"}',
        min_length=1,
        max_length=50,
    )
    note: Annotated[str | None, Field(max_length=2000)] = None


@router.patch("/{aip_id}/metadata", responses=errors(400, 403, 404, 409))
def correct_metadata(
    request: Request,
    aip_id: AipId,
    patch: Annotated[MetadataPatch, Body()],
    principal: Annotated[Principal, Depends(require(EDIT_METADATA))],
) -> dict[str, Any]:
    """Correct descriptive fields: a new AIP version with metadata only and a PREMIS
    metadata modification event."""
    from preservation.access.corrections import correct_metadata as correct

    result = correct(
        app_repo(request),
        aip_id,
        patch.fields,
        principal=principal,
        note=patch.note,
        client=client_address(request),
        status=200,
    )
    return result.to_dict()
