"""``/metrics``: Prometheus metrics of the catalogue and of the HTTP server.

**Who may scrape.** ``/metrics`` needs a signed-in principal (``Authorization: Bearer
<token>``, as Prometheus sends with ``authorization: {credentials_file: ...}``, or the
session cookie); without one it answers 401. The catalogue figures are computed for
the caller's visibility (:func:`preservation.catalog.visibility.aip_visible`): a
reader's token gets the counts of public records only, a staff token (auditor for a
monitoring system) the whole repository. No metric carries a record's identifier,
title or reference code: labels are store names, copy states, severities, job kinds
and route *templates* (``/api/aips/{aip_id}``, never the requested path), so nothing
restricted can leak through a label either. The job metrics (last successful run,
run durations) describe the journal of every record, so only staff scrapes get them.

**Catalogue metrics** are collected at scrape time, from
:mod:`preservation.catalog.stats_queries`, and cached for :data:`CACHE_SECONDS` per
visibility (two Prometheus servers scraping every few seconds cost one set of queries).

**HTTP metrics** come from an ASGI middleware that :func:`install` adds: requests by
method, route template and status, and their latency. Each app has its own
:class:`~prometheus_client.CollectorRegistry`, so several apps in one process (tests)
never share or collide.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from preservation.access.auth import app_repo, current_principal
from preservation.access.principal import Principal
from preservation.catalog import stats_queries as sq
from preservation.model import utcnow
from preservation.repository import Repository

CACHE_SECONDS = 10.0
DURATION_KINDS = ("audit", "replication")
DURATION_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0)
UNMATCHED = "<unmatched>"

router = APIRouter(include_in_schema=False)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# --- the catalogue -----------------------------------------------------------------


def catalog_metrics(repo: Repository, sees_restricted: bool) -> list[Metric]:
    """Every catalogue metric, computed now for this visibility."""
    started = time.perf_counter()
    now = utcnow()
    stores = dict(repo.config.settings.stores)
    with repo.catalog.session() as s:
        held = sq.holdings(s, sees_restricted)
        per_store = sq.store_holdings(s, sees_restricted)
        states = sq.copy_states(s, sees_restricted)
        coverage = {
            name: sq.coverage(
                s, sees_restricted, name, now - dt.timedelta(days=st.fixity_interval_days)
            )
            for name, st in stores.items()
        }
        incidents = sq.open_incidents(s, sees_restricted)
        # The journal covers every record (one replication run per AIP replicated,
        # the time of the last ingest): staff only, like /api/jobs, or a reader
        # could count restricted AIPs or date their ingest.
        last = sq.last_successes(s) if sees_restricted else {}
        durations = list(sq.run_durations(s, DURATION_KINDS)) if sees_restricted else []

    out: list[Metric] = []
    g = GaugeMetricFamily("preservation_aips", "Active AIPs (visible to the scraper)")
    g.add_metric([], held.aips)
    out.append(g)
    g = GaugeMetricFamily("preservation_files", "Payload files of the current AIP versions")
    g.add_metric([], held.files)
    out.append(g)
    g = GaugeMetricFamily("preservation_bytes", "Payload bytes of the current AIP versions")
    g.add_metric([], held.bytes)
    out.append(g)

    names = sorted(set(stores) | set(per_store) | set(states))
    aips = GaugeMetricFamily(
        "preservation_store_aips",
        "AIPs whose current version is held (stored or verified) on the store",
        labels=["store"],
    )
    files = GaugeMetricFamily(
        "preservation_store_files", "Payload files of the current versions held on the store",
        labels=["store"],
    )  # fmt: skip
    size = GaugeMetricFamily(
        "preservation_store_bytes", "Payload bytes of the current versions held on the store",
        labels=["store"],
    )  # fmt: skip
    for name in names:
        h = per_store.get(name, sq.StoreHolding(0, 0, 0))
        aips.add_metric([name], h.aips)
        files.add_metric([name], h.files)
        size.add_metric([name], h.bytes)
    out += [aips, files, size]

    copies = GaugeMetricFamily(
        "preservation_copies",
        "Copies (AIP versions on a store) by state: verified, pending (replication queue),"
        " stored, failed, missing, deleted",
        labels=["store", "state"],
    )
    for name in names:
        by_state = states.get(name, {})
        for state in ("verified", "pending", "stored", "failed", "missing", "deleted"):
            copies.add_metric([name, state], by_state.get(state, 0))
    out.append(copies)

    overdue = GaugeMetricFamily(
        "preservation_overdue_file_copies",
        "File copies never checked or last checked before the store's fixity interval",
        labels=["store"],
    )
    failing = GaugeMetricFamily(
        "preservation_failing_file_copies",
        "File copies whose last fixity check failed or found the object missing",
        labels=["store"],
    )
    share = GaugeMetricFamily(
        "preservation_fixity_coverage_ratio",
        "Share of the store's file copies that passed a check within the fixity interval",
        labels=["store"],
    )
    for name, cov in sorted(coverage.items()):
        overdue.add_metric([name], cov.overdue)
        failing.add_metric([name], cov.failing)
        share.add_metric(
            [name], cov.verified_in_interval / cov.file_copies if cov.file_copies else 1.0
        )
    out += [overdue, failing, share]

    inc = GaugeMetricFamily(
        "preservation_open_incidents", "Open incidents by severity and store",
        labels=["severity", "store"],
    )  # fmt: skip
    by_severity: dict[str, int] = {"warning": 0, "error": 0, "critical": 0}
    for (store, severity), n in sorted(incidents.items()):
        inc.add_metric([severity, store], n)
        by_severity[severity] = by_severity.get(severity, 0) + n
    out.append(inc)
    total = GaugeMetricFamily(
        "preservation_open_incidents_by_severity", "Open incidents by severity",
        labels=["severity"],
    )  # fmt: skip
    for severity, n in sorted(by_severity.items()):
        total.add_metric([severity], n)
    out.append(total)

    if sees_restricted:
        success = GaugeMetricFamily(
            "preservation_job_last_success_timestamp_seconds",
            "End of the newest successful run per job kind (scheduled jobs: schedule:<name>)",
            labels=["job"],
        )
        for job, when in sorted(last.items()):
            success.add_metric([job], when.timestamp())
        out.append(success)
        out.append(_durations(durations))
    took = GaugeMetricFamily(
        "preservation_catalog_scrape_seconds", "Time taken to compute the catalogue metrics"
    )
    took.add_metric([], time.perf_counter() - started)
    out.append(took)
    return out


def _durations(rows: Iterable[tuple[str, str, float]]) -> HistogramMetricFamily:
    """Durations of finished audit and replication runs (journal start to end)."""
    counts: dict[tuple[str, str], list[int]] = {}
    sums: dict[tuple[str, str], float] = {}
    for kind, state, seconds in rows:
        key = (kind, state)
        buckets = counts.setdefault(key, [0] * (len(DURATION_BUCKETS) + 1))
        for i, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                buckets[i] += 1
        buckets[-1] += 1
        sums[key] = sums.get(key, 0.0) + seconds
    family = HistogramMetricFamily(
        "preservation_job_duration_seconds",
        "Durations of finished audit and replication runs",
        labels=["kind", "state"],
    )
    for key in sorted(counts):
        bounds = [*(str(b) for b in DURATION_BUCKETS), "+Inf"]
        family.add_metric(
            list(key), list(zip(bounds, counts[key], strict=True)), sum_value=sums[key]
        )
    return family


class CatalogCollector(Collector):
    """The catalogue metrics of one visibility, cached for ``ttl`` seconds."""

    def __init__(self, repo: Repository, sees_restricted: bool, ttl: float = CACHE_SECONDS):
        self.repo = repo
        self.sees_restricted = sees_restricted
        self.ttl = ttl
        self._lock = threading.Lock()
        self._at = 0.0
        self._cached: list[Metric] = []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if not self._cached or now - self._at >= self.ttl:
                self._cached = catalog_metrics(self.repo, self.sees_restricted)
                self._at = now
            cached = list(self._cached)
        yield from cached

    def describe(self) -> Iterable[Metric]:
        return []  # collected on demand; nothing to check at registration


# --- HTTP --------------------------------------------------------------------------


@dataclass
class MetricsState:
    """An app's registries: one per visibility, sharing the HTTP collectors."""

    http: CollectorRegistry
    requests: Counter
    latency: Histogram
    by_visibility: dict[bool, CollectorRegistry] = field(default_factory=dict)
    catalog: dict[bool, CatalogCollector] = field(default_factory=dict)
    middleware: bool = False


def _new_state(repo: Repository, ttl: float) -> MetricsState:
    http = CollectorRegistry(auto_describe=True)
    requests = Counter(
        "preservation_http_requests",
        "HTTP requests by method, route template and status",
        ["method", "route", "status"],
        registry=http,
    )
    latency = Histogram(
        "preservation_http_request_duration_seconds",
        "HTTP request latency by method and route template",
        ["method", "route"],
        registry=http,
    )
    state = MetricsState(http, requests, latency)
    for sees in (False, True):
        registry = CollectorRegistry(auto_describe=False)
        registry.register(requests)
        registry.register(latency)
        state.catalog[sees] = CatalogCollector(repo, sees, ttl)
        registry.register(state.catalog[sees])
        state.by_visibility[sees] = registry
    return state


class HttpMetricsMiddleware:
    """Counts every HTTP request and its latency, labelled by the matched route's
    template (a path that matched no route is ``<unmatched>``)."""

    def __init__(self, app: ASGIApp, state: MetricsState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = str(scope.get("method", ""))
            self.state.requests.labels(method, route, str(status)).inc()
            self.state.latency.labels(method, route).observe(time.perf_counter() - started)


def install(app: FastAPI, *, ttl: float = CACHE_SECONDS) -> MetricsState:
    """Give ``app`` its metrics registries and the HTTP middleware (call before the
    app starts serving; :func:`preservation.access.app.create_app` does)."""
    state = _new_state(app.state.repo, ttl)
    state.middleware = True
    app.state.metrics = state
    app.add_middleware(HttpMetricsMiddleware, state=state)
    return state


def _state(request: Request) -> MetricsState:
    state: MetricsState | None = getattr(request.app.state, "metrics", None)
    if state is None:  # an app made without install(): catalogue metrics only
        state = _new_state(app_repo(request), CACHE_SECONDS)
        request.app.state.metrics = state
    return state


@router.get("/metrics")
def metrics(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> Response:
    registry = _state(request).by_visibility[principal.sees_restricted]
    return Response(
        generate_latest(registry),
        media_type=CONTENT_TYPE_LATEST,
        headers={"Cache-Control": "no-store"},
    )
