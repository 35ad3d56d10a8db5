"""The dashboard's pages: server-rendered HTML (Jinja2), charts inline as SVG.

Every page needs a signed-in user (otherwise 303 to ``/login?next=...``). Overview,
formats and ingest history are open to every role, with a reader's figures counted
over public records only; replication health and audits describe the whole
repository and need ``read_operations`` (staff). Pages send a Content-Security-Policy
without any script source: they work, and must work, without JavaScript.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import StreamingResponse

from preservation.access import accesslog, charts, i18n
from preservation.access.auth import app_repo, client_address, optional_principal, session_csrf
from preservation.access.dashboard import data
from preservation.access.principal import READ_OPERATIONS, Principal
from preservation.catalog.stats_queries import IngestRow
from preservation.errors import PreservationError
from preservation.formats.policy import STATUSES
from preservation.paths import join_key

router = APIRouter(include_in_schema=False)

PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
FORMAT_SERIES = 8  # formats drawn by name in the formats chart; the rest as "other"
CHUNK = 64 * 1024


# --- rendering ---------------------------------------------------------------------


def _num(value: int | float | None) -> str:
    return "" if value is None else f"{value:,}"


def _size(value: int | None) -> str:
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"


def _when(value: dt.datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("preservation.access", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["size"] = _size
    env.filters["when"] = _when
    return env


ENV = _environment()


def _lang_links(request: Request) -> dict[str, str]:
    links: dict[str, str] = {}
    for lang in i18n.LANGUAGES:
        query = dict(request.query_params)
        query["lang"] = lang
        links[lang] = f"{request.url.path}?{urlencode(query)}"
    return links


def render(
    request: Request,
    template: str,
    principal: Principal | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    t = i18n.translator(request)
    html = ENV.get_template(template).render(
        t=t,
        principal=principal,
        lang_links=_lang_links(request),
        logout_token=session_csrf(request),
        **context,
    )
    response = HTMLResponse(html, status_code=status_code)
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Language"] = t.html_lang
    i18n.remember(request, response)
    return response


def _sign_in(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _forbidden(request: Request, principal: Principal) -> HTMLResponse:
    """403 as a page; the denial goes to the access log like the API's."""
    accesslog.record_quietly(
        app_repo(request),
        action="denied",
        status=403,
        principal=principal,
        path=request.url.path,
        client=client_address(request),
        detail={"method": request.method, "needs": READ_OPERATIONS},
    )
    t = i18n.translator(request)
    return render(
        request, "dashboard_error.html", principal, status_code=403, active="",
        status=403, message=t("err.forbidden"),
    )  # fmt: skip


def _not_found(request: Request, principal: Principal) -> HTMLResponse:
    t = i18n.translator(request)
    return render(
        request, "dashboard_error.html", principal, status_code=404, active="",
        status=404, message=t("err.not_found"),
    )  # fmt: skip


MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]


# --- pages -------------------------------------------------------------------------


@router.get("/", response_model=None)
def home() -> RedirectResponse:
    return RedirectResponse("/dashboard/", status_code=303)


@router.get("/dashboard", response_model=None)
@router.get("/dashboard/", response_model=None)
def overview_page(request: Request, principal: MaybePrincipal) -> Response:
    if principal is None:
        return _sign_in(request)
    t = i18n.translator(request)
    o = data.overview(app_repo(request), principal)
    chart = None
    if o.copies_total:
        chart = charts.pie(
            t("ov.copies_by_state"),
            o.copies,
            {s: t.state("state", s) for s in o.copies},
        )
    return render(request, "dashboard_overview.html", principal, active="overview", o=o,
                  chart=chart)  # fmt: skip


@router.get("/dashboard/replication", response_model=None)
def replication_page(request: Request, principal: MaybePrincipal) -> Response:
    if principal is None:
        return _sign_in(request)
    if not principal.can(READ_OPERATIONS):
        return _forbidden(request, principal)
    t = i18n.translator(request)
    h = data.replication(app_repo(request))
    states = ("verified", "stored", "pending", "failed", "missing")
    chart = charts.stacked_bars(
        t("rep.chart"),
        [st["name"] for st in h["stores"]],
        {s: [st["copies"].get(s, 0) for st in h["stores"]] for s in states},
        {s: t.state("state", s) for s in states},
        horizontal=True,
        height=max(220, 90 + 50 * len(h["stores"])),
    )
    return render(request, "dashboard_replication.html", principal, active="replication",
                  h=h, chart=chart)  # fmt: skip


@router.get("/dashboard/audits", response_model=None)
def audits_page(request: Request, principal: MaybePrincipal) -> Response:
    if principal is None:
        return _sign_in(request)
    if not principal.can(READ_OPERATIONS):
        return _forbidden(request, principal)
    t = i18n.translator(request)
    a = data.audits(app_repo(request), principal)
    chart = charts.stacked_bars(
        t("aud.chart"),
        [d.strftime("%m-%d") for d in a.days],
        {"success": a.passed, "failure": a.failed},
        {"success": t("outcome.success"), "failure": t("outcome.failure")},
        label_every=5,
    )
    return render(request, "dashboard_audits.html", principal, active="audits", a=a,
                  chart=chart)  # fmt: skip


def _formats_chart(t: i18n.Translator, report: dict[str, Any]) -> Any:
    """Stacked bars: one bar per status, one series per format (the largest formats
    by files; the rest summed as "other")."""
    totals: dict[str, int] = {}
    names: dict[str, str] = {}
    for row in report["by_format"]:
        totals[row["puid"]] = totals.get(row["puid"], 0) + row["files"]
        names[row["puid"]] = f"{row['name']} ({row['puid']})"
    top = sorted(totals, key=lambda p: (-totals[p], p))[:FORMAT_SERIES]
    series: dict[str, list[int]] = {p: [0] * len(STATUSES) for p in top}
    other = [0] * len(STATUSES)
    for row in report["by_format"]:
        index = STATUSES.index(row["status"])
        target = series.get(row["puid"], other)
        target[index] += row["files"]
    if any(other):
        series["other"] = other
        names["other"] = "…"
    return charts.stacked_bars(
        t("fmt.chart"),
        [t.state("fmt.status", s) for s in STATUSES],
        series,
        names,
    )


@router.get("/dashboard/formats", response_model=None)
def formats_page(request: Request, principal: MaybePrincipal) -> Response:
    if principal is None:
        return _sign_in(request)
    t = i18n.translator(request)
    f = data.formats(app_repo(request), principal)
    chart = _formats_chart(t, f)
    return render(request, "dashboard_formats.html", principal, active="formats", f=f,
                  chart=chart, public_only=not principal.sees_restricted)  # fmt: skip


@router.get("/dashboard/ingests", response_model=None)
def ingests_page(
    request: Request,
    principal: MaybePrincipal,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    if principal is None:
        return _sign_in(request)
    i = data.ingests(app_repo(request), principal, page)
    return render(request, "dashboard_ingests.html", principal, active="ingests", i=i,
                  public_only=not principal.sees_restricted)  # fmt: skip


def _job_id(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _report_source(request: Request, row: IngestRow) -> tuple[str, str | Path] | None:
    """Where the job's HTML report is: ('store', key) for an ingested AIP (its v1 bag
    on the primary store), ('file', path) for a refused ingest (``staging/reports``)."""
    repo = app_repo(request)
    if row.state == "done" and row.aip_id:
        return "store", join_key(row.aip_id, "v1", data.REPORT_NAME)
    path = data.kept_report(repo, row.job_id)
    return ("file", path) if path is not None else None


@router.get("/dashboard/ingests/{job_id}", response_model=None)
def ingest_job_page(request: Request, job_id: str, principal: MaybePrincipal) -> Response:
    if principal is None:
        return _sign_in(request)
    ident = _job_id(job_id)
    row = data.ingest_job(app_repo(request), principal, ident) if ident else None
    if row is None:
        return _not_found(request, principal)
    has_report = _report_source(request, row) is not None
    _log_restricted(request, principal, row, "ingest job")
    return render(request, "dashboard_ingest_job.html", principal, active="ingests", r=row,
                  has_report=has_report)  # fmt: skip


def _log_restricted(request: Request, principal: Principal, row: IngestRow, what: str) -> None:
    """A staff read of a record that is not public goes to the access log."""
    if row.aip_id is None or row.public:
        return
    accesslog.record(
        app_repo(request),
        action="view",
        status=200,
        principal=principal,
        aip_id=row.aip_id,
        path=request.url.path,
        client=client_address(request),
        restricted=True,
        detail={"what": what, "job": row.job_id},
    )


def _stream(request: Request, key: str) -> Iterator[bytes]:
    store = app_repo(request).primary
    with store.open(key) as f:
        while block := f.read(CHUNK):
            yield block


@router.get("/dashboard/ingests/{job_id}/report", response_model=None)
def ingest_report(request: Request, job_id: str, principal: MaybePrincipal) -> Response:
    """The check report (四性检测报告) of an ingest job, as it was written: from the
    AIP's first version on the primary store, or the report a refused ingest kept."""
    if principal is None:
        return _sign_in(request)
    ident = _job_id(job_id)
    row = data.ingest_job(app_repo(request), principal, ident) if ident else None
    source = _report_source(request, row) if row is not None else None
    if row is None or source is None:
        return _not_found(request, principal)
    headers = {
        "Content-Security-Policy": REPORT_CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
    kind, where = source
    _log_restricted(request, principal, row, "ingest report")
    if kind == "file":
        return FileResponse(where, media_type="text/html; charset=utf-8", headers=headers)
    key = str(where)
    try:
        app_repo(request).primary.head(key)
    except PreservationError:
        return _not_found(request, principal)
    return StreamingResponse(
        _stream(request, key), media_type="text/html; charset=utf-8", headers=headers
    )
