"""The figures behind each dashboard page, for one principal.

Readers' figures are counted over public records only (every query goes through
:mod:`preservation.catalog.stats_queries`, which applies
:func:`~preservation.catalog.visibility.aip_visible`). The replication and audit
pages reuse :func:`preservation.storage.health.health` and
:func:`preservation.audit.status.audit_status`, which describe the whole repository,
so those pages are for staff (``read_operations``) only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preservation.catalog import stats_queries as sq
from preservation.model import utcnow
from preservation.storage.health import media_type, ndsa_level, next_level_needs

if TYPE_CHECKING:
    from preservation.access.principal import Principal
    from preservation.repository import Repository

AUDIT_CHART_DAYS = 30
BELOW_POLICY_LISTED = 200
INGESTS_PER_PAGE = 50
REPORT_NAME = "metadata/report.html"


@dataclass
class Overview:
    aips: int
    versions: int
    files: int
    bytes: int
    copies: dict[str, int]  # state -> copies (every version of the AIPs seen)
    ndsa_level: int
    ndsa_ceiling: int
    ndsa_needs: str
    aips_by_level: dict[int, int]
    incidents: dict[str, int]  # severity -> open incidents
    last_audit: dt.datetime | None
    last_audit_state: str | None
    public_only: bool
    generated_at: dt.datetime = field(default_factory=utcnow)

    @property
    def copies_total(self) -> int:
        return sum(self.copies.values())

    @property
    def incidents_total(self) -> int:
        return sum(self.incidents.values())


def overview(repo: Repository, principal: Principal) -> Overview:
    """The overview page: holdings, copies, NDSA level, open incidents, last audit.

    The NDSA level follows :mod:`preservation.storage.health`: per AIP, the verified,
    undamaged copies of its current version on configured stores; the repository's
    level is the lowest of its AIPs (the configured stores' ceiling when there is none).
    """
    sees = principal.sees_restricted
    settings = dict(repo.config.settings.stores)
    ceiling_args = (
        len(settings),
        len({st.site for st in settings.values()}),
        len({media_type(st) for st in settings.values()}),
    )
    ceiling = ndsa_level(*ceiling_args)
    with repo.catalog.session() as s:
        held = sq.holdings(s, sees)
        copies: dict[str, int] = {}
        for states in sq.copy_states(s, sees).values():
            for state, n in states.items():
                copies[state] = copies.get(state, 0) + n
        levels: dict[int, int] = {}
        for verified, n in sq.verified_store_sets(s, sees, list(settings)).items():
            level = ndsa_level(
                len(verified),
                len({settings[name].site for name in verified}),
                len({media_type(settings[name]) for name in verified}),
            )
            levels[level] = levels.get(level, 0) + n
        incidents: dict[str, int] = {}
        for (_store, severity), n in sq.open_incidents(s, sees).items():
            incidents[severity] = incidents.get(severity, 0) + n
        last_at, last_state = sq.last_audit(s)
    level = min(levels) if levels else ceiling
    return Overview(
        aips=held.aips,
        versions=held.versions,
        files=held.files,
        bytes=held.bytes,
        copies=dict(sorted(copies.items())),
        ndsa_level=level,
        ndsa_ceiling=ceiling,
        ndsa_needs=next_level_needs(*ceiling_args) if level >= ceiling else "",
        aips_by_level=dict(sorted(levels.items())),
        incidents=incidents,
        last_audit=last_at,
        last_audit_state=last_state,
        public_only=not sees,
    )


# --- replication -------------------------------------------------------------------


def replication(repo: Repository) -> dict[str, Any]:
    """Replication health (staff): :func:`preservation.storage.health.health`, with
    the per-site sums of the per-store figures and the AIPs below policy."""
    from preservation.storage.health import health

    report = health(repo, limit=BELOW_POLICY_LISTED)
    data = report.to_dict()
    by_store = {st["name"]: st for st in data["stores"]}
    for site in data["sites"]:
        members = [by_store[n] for n in site["stores"]]
        site["copies_pending"] = sum(m["copies_pending"] for m in members)
        site["copies_failed"] = sum(m["copies_failed"] for m in members)
        site["stale_copies"] = sum(m["stale_copies"] for m in members)
    for st in data["stores"]:
        st["copies_verified"] = st["copies"].get("verified", 0)
    data["below_policy"] = [a for a in data["aips"] if not a["meets_policy"]]
    return data


# --- audits ------------------------------------------------------------------------


@dataclass
class AuditPage:
    status: dict[str, Any]
    days: list[dt.date]
    passed: list[int]
    failed: list[int]


def audits(repo: Repository, principal: Principal, days: int = AUDIT_CHART_DAYS) -> AuditPage:
    """Audit status (staff) and the fixity checks per day of the last ``days`` days."""
    from preservation.audit.status import audit_status

    status = audit_status(repo)
    today = utcnow().date()
    first = today - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC)
    with repo.catalog.session() as s:
        per_day = sq.fixity_checks_per_day(s, principal.sees_restricted, since)
    span = [first + dt.timedelta(days=i) for i in range(days)]
    return AuditPage(
        status=status,
        days=span,
        passed=[per_day.get(d, {}).get("success", 0) for d in span],
        failed=[per_day.get(d, {}).get("failure", 0) for d in span],
    )


# --- formats -----------------------------------------------------------------------


def formats(repo: Repository, principal: Principal) -> dict[str, Any]:
    """The format report (:func:`preservation.formats.risk.assess`) over the files
    the principal may see."""
    from preservation.formats.risk import assess

    report = assess(repo, public_only=not principal.sees_restricted)
    return report.to_dict()


# --- ingest ------------------------------------------------------------------------


def ingests(
    repo: Repository, principal: Principal, page: int, per_page: int = INGESTS_PER_PAGE
) -> dict[str, Any]:
    page = max(1, page)
    with repo.catalog.session() as s:
        total, rows = sq.ingest_history(
            s, principal.sees_restricted, limit=per_page, offset=(page - 1) * per_page
        )
        states = sq.ingest_states(s, principal.sees_restricted)
    return {
        "total": total,
        "rows": rows,
        "page": page,
        "pages": max(1, -(-total // per_page)),
        "states": states,
    }


def ingest_job(repo: Repository, principal: Principal, job_id: str) -> sq.IngestRow | None:
    with repo.catalog.session() as s:
        return sq.ingest_job(s, principal.sees_restricted, job_id)


def kept_report(repo: Repository, job_id: str) -> Path | None:
    """The HTML report a refused ingest left under ``staging/reports/``."""
    folder = repo.config.staging_dir / "reports"
    if not folder.is_dir():
        return None
    found = sorted(folder.glob(f"*-{job_id}.html"))
    return found[-1] if found else None
