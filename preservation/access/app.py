"""The web application: REST API, sign-in, and (when present) dashboard and metrics.

:func:`create_app` builds a FastAPI app around one :class:`Repository`. Routers live
in :mod:`preservation.access.api` (one module per resource); the dashboard
(``preservation.access.dashboard``) and ``/metrics`` (``preservation.access.metrics``)
are included when those modules exist.

Errors leave as ``{"error": {"code": ..., "message": ...}}`` with the project's codes
(:mod:`preservation.errors`) and an HTTP status chosen by :func:`http_status`.
Denials (401, 403) are written to the access log, and so are refused input (413,
422: oversized uploads, path tricks, malformed or injection-looking parameters).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from preservation import __version__
from preservation.access import accesslog
from preservation.access.auth import client_address
from preservation.errors import (
    AccessError,
    CatalogConflict,
    CatalogError,
    CatalogUnavailable,
    ConfigError,
    CsrfRejected,
    DuplicateTransfer,
    InputError,
    IntegrityError,
    JobBusy,
    NotAuthenticated,
    NotInCatalog,
    PermissionDenied,
    PreservationError,
    StorageError,
    StoreUnavailable,
    UnknownUser,
    UploadTooLarge,
    UsageError,
)
from preservation.repository import Repository, open_repository

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 4 * 1024**3
# Every request body but an upload's (which streams to disk under its own limit):
# FastAPI reads a JSON or form body whole before it checks who is asking, so without
# a cap an anonymous client could make the server hold any amount in memory.
MAX_BODY_BYTES = 1024 * 1024
# Optional parts other helpers provide; each exposes ``router``.
OPTIONAL_ROUTERS = ("preservation.access.dashboard", "preservation.access.metrics")

# Most specific first.
_STATUS: tuple[tuple[type[PreservationError], int], ...] = (
    (NotAuthenticated, 401),
    (PermissionDenied, 403),
    (CsrfRejected, 403),
    (UnknownUser, 404),
    (AccessError, 403),
    (UploadTooLarge, 413),
    (DuplicateTransfer, 409),
    (InputError, 422),
    (NotInCatalog, 404),
    (CatalogConflict, 409),
    (CatalogUnavailable, 503),
    (CatalogError, 500),
    (JobBusy, 409),
    (UsageError, 400),
    (ConfigError, 400),
    (StoreUnavailable, 503),
    (StorageError, 502),
    (IntegrityError, 502),
)


def http_status(exc: PreservationError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(exc: PreservationError) -> JSONResponse:
    status = http_status(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(exc.code, exc.message), status_code=status, headers=headers)


def _include_optional(app: FastAPI, module_name: str) -> bool:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            return False
        raise
    app.include_router(module.router)
    return True


def create_app(
    repo: Repository | None = None,
    *,
    root: Path | None = None,
    secure_cookies: bool = False,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
) -> FastAPI:
    """The application for ``repo`` (or the repository found from ``root``).

    ``secure_cookies`` marks the session cookie ``Secure`` even on plain-http requests
    (use it behind a TLS-terminating proxy); https requests always get it.
    ``max_upload_bytes`` limits one ingest upload (HTTP 413 beyond it).
    """
    from preservation.access.api import ROUTERS
    from preservation.access.ingest_jobs import IngestJobs

    if repo is None:
        repo = open_repository(root)
    jobs = IngestJobs(repo)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.shutdown()

    app = FastAPI(
        lifespan=lifespan,
        max_body_size=MAX_BODY_BYTES,
        title="preservation",
        version=__version__,
        description=(
            "REST API of the preservation repository. Authenticate with"
            " 'Authorization: Bearer <token>' (tokens from 'preservation users add')"
            " or the session cookie of the sign-in form. Errors are"
            ' {"error": {"code", "message"}} with the codes of preservation.errors.'
        ),
    )
    app.state.repo = repo
    app.state.secure_cookies = secure_cookies
    app.state.max_upload_bytes = max_upload_bytes
    app.state.ingest_jobs = jobs
    app.state.optional_routers = {}

    @app.exception_handler(PreservationError)
    async def _preservation_error(request: Request, exc: PreservationError) -> JSONResponse:
        status = http_status(exc)
        if status in (401, 403):
            principal = getattr(request.state, "principal", None)
            accesslog.record_quietly(
                repo,
                action="denied",
                status=status,
                principal=principal,
                path=request.url.path,
                client=client_address(request),
                detail={"code": exc.code, "method": request.method},
            )
        elif status in (413, 422):  # hostile or malformed input refused: logged as well
            _refused(request, status, {"code": exc.code, "method": request.method})
        elif status >= 500:
            log.error("%s %s: %s %s", request.method, request.url.path, exc.code, exc.message)
        return error_response(exc)

    def _refused(request: Request, status: int, detail: dict[str, Any]) -> None:
        accesslog.record_quietly(
            repo,
            action="refused",
            status=status,
            principal=getattr(request.state, "principal", None),
            path=request.url.path,
            client=client_address(request),
            detail=detail,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        message = "; ".join(f"{p['where']}: {p['problem']}" for p in problems)
        _refused(request, 422, {"code": UsageError.code, "method": request.method,
                                "problems": problems[:5]})  # fmt: skip
        return JSONResponse(
            error_body(UsageError.code, message or "invalid request", problems=problems),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = NotInCatalog.code if exc.status_code == 404 else UsageError.code
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    for router in ROUTERS:
        app.include_router(router)
    for name in OPTIONAL_ROUTERS:
        app.state.optional_routers[name] = _include_optional(app, name)
    if app.state.optional_routers.get("preservation.access.metrics"):
        from preservation.access.metrics import install

        install(app)  # its own registry and the HTTP request metrics middleware

    return app
