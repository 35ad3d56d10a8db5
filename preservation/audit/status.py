"""``preservation audit status``: coverage per store, overdue copies, incidents, last runs.

Coverage of a store is the share of its file copies (of active copies) whose last
check passed within the store's fixity interval; *overdue* file copies were never
checked or last checked before the interval began.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from preservation.model import utcnow

if TYPE_CHECKING:
    from preservation.repository import Repository


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def audit_status(repo: Repository, runs: int = 10) -> dict[str, Any]:
    from preservation.catalog import audit_queries as aq

    now = utcnow()
    stores: list[dict[str, Any]] = []
    with repo.catalog.session() as s:
        incidents = aq.incident_counts(s)
        for name, settings in repo.config.settings.stores.items():
            since = now - dt.timedelta(days=settings.fixity_interval_days)
            cov = aq.coverage(s, name, since)
            stores.append(
                {
                    "store": name,
                    "site": settings.site,
                    "role": settings.role,
                    "cold": settings.cold,
                    "mode": "inventory" if settings.cold else settings.audit_mode,
                    "interval_days": settings.fixity_interval_days,
                    "file_copies": cov.file_copies,
                    "bytes": cov.bytes,
                    "verified_in_interval": cov.verified_in_interval,
                    "coverage": round(cov.share, 6),
                    "overdue": cov.overdue,
                    "never_verified": cov.never_verified,
                    "failing": cov.failing,
                    "oldest_verified_at": _iso(cov.oldest_verified_at),
                    "open_incidents": incidents.get(name, {}),
                }
            )
        last = aq.recent_audit_runs(s, runs)
    total = sum(x["file_copies"] for x in stores)
    covered = sum(x["verified_in_interval"] for x in stores)
    return {
        "at": now.isoformat(),
        "coverage": round(covered / total, 6) if total else 1.0,
        "file_copies": total,
        "overdue": sum(x["overdue"] for x in stores),
        "failing": sum(x["failing"] for x in stores),
        "open_incidents": sum(sum(v.values()) for v in incidents.values()),
        "stores": stores,
        "runs": [
            {
                "run_id": j["id"],
                "store": j["params"].get("store"),
                "mode": j["params"].get("mode"),
                "budget": j["params"].get("budget"),
                "state": j["state"],
                "started": _iso(j["created_at"]),
                "updated": _iso(j["updated_at"]),
                "checked": (j["result"] or {}).get("checked", 0),
                "bytes": (j["result"] or {}).get("bytes", 0),
                "outcomes": (j["result"] or {}).get("outcomes", {}),
                "stopped_by": (j["result"] or {}).get("stopped_by"),
                "error": j["error"],
            }
            for j in last
        ],
    }
