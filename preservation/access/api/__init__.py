"""REST API routers, one module per resource; :data:`ROUTERS` is what the app mounts."""

from __future__ import annotations

from fastapi import APIRouter

from preservation.access.api import (
    aips,
    audits,
    auth,
    events,
    formats,
    health,
    incidents,
    ingest,
    jobs,
    users,
)

ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    aips.router,
    ingest.router,
    health.router,
    audits.router,
    incidents.router,
    formats.router,
    jobs.router,
    events.router,
    users.router,
)

__all__ = ["ROUTERS"]
