"""The figures of the statistics report, gathered from the repository's own records.

Sources (see ``docs/decisions.md``, "Statistics report"):

- the ``jobs`` journal: transfers (``ingest`` rows: ``done`` accepted, ``failed`` with
  code ING001 refused, ING002 duplicate), the sheet's items and volumes each accepted
  ingest received (``result["received"]``, see :mod:`preservation.reports.received`),
  periodic checks (``check``) and restore drills (``drill``), audit runs (``audit``);
- ``aip_versions``: AIPs received (v1), files and bytes, new versions by reason;
- ``files.properties`` of each new AIP's version 1: images, pages, scans by
  resolution and colour mode (the job's ``received`` for AIPs recorded before
  migration 0005; AIPs with neither are ``aips_without_received_detail``, AIPs
  without a job row, as in a rebuilt catalogue, ``aips_without_sheet_counts``);
- ``events``: migrations (one ``migration`` event per migrated file);
- ``incidents``: problems found and repaired;
- the Parquet audit log: fixity checks, their pass rate, availability of each store;
- ``access_log``: accesses by role and action;
- now (not per period, marked ``as_of``): audit coverage within each store's
  interval, replication coverage and NDSA level, format-risk figures.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preservation import __version__
from preservation.model import utcnow
from preservation.reports.period import Period, month_of
from preservation.reports.received import FileFigures

if TYPE_CHECKING:
    from preservation.repository import Repository

REPORT_FORMAT = "preservation-statistics-report/1"
MONTH_KEYS = (
    "transfers",
    "transfers_met",
    "transfers_refused",
    "aips",
    "items",
    "volumes",
    "files",
    "pages",
    "images",
    "bytes",
)
REFUSED = "ING001"
DUPLICATE = "ING002"


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _refusal_code(job: dict[str, Any]) -> str | None:
    code = (job.get("result") or {}).get("code")
    if code:
        return str(code)
    error = job.get("error") or ""
    if "blocking finding" in error:  # journal rows written before codes were kept
        return REFUSED
    if "already ingested as AIP" in error:
        return DUPLICATE
    return None


def gather(repo: Repository, period: Period) -> dict[str, Any]:
    """Every figure of the report for ``period`` as plain JSON-ready data."""
    from preservation.catalog import report_queries as rq

    settings = repo.config.settings
    with repo.catalog.session() as s:
        ingests = rq.jobs_in(s, "ingest", period.start, period.end)
        versions = rq.versions_in(s, period.start, period.end)
        events = rq.event_outcomes(s, period.start, period.end)
        incidents = rq.incidents_opened(s, period.start, period.end)
        audits = rq.jobs_in(s, "audit", period.start, period.end)
        checks = rq.jobs_in(s, "check", period.start, period.end)
        drills = rq.jobs_in(s, "drill", period.start, period.end)
        has_access_log = rq.access_log_present(s)
        access = rq.access_counts(s, period.start, period.end) if has_access_log else []
        # what the ingest of each AIP received in the period: images, pages and
        # scans from its files' properties in the catalogue (a rebuilt catalogue has
        # them too), the sheet's items and volumes from its ingest job's result
        new_aips = [v.aip_id for v in versions if v.number == 1]
        received = {
            aip: result["received"]
            for aip, result in rq.ingest_results(s, new_aips).items()
            if result.get("received")
        }
        figures: dict[str, FileFigures] = {}
        for aip, properties in rq.first_version_file_properties(s, new_aips):
            if properties is not None:
                figures.setdefault(aip, FileFigures()).add(properties)

    months: dict[str, dict[str, int]] = {m: dict.fromkeys(MONTH_KEYS, 0) for m in period.months}
    standard = {"transfers": 0, "met": 0, "refused": 0, "duplicates": 0}
    for job in ingests:
        month = months[month_of(job["created_at"])]
        code = _refusal_code(job) if job["state"] == "failed" else None
        if job["state"] == "done":
            month["transfers"] += 1
            month["transfers_met"] += 1
            standard["transfers"] += 1
            standard["met"] += 1
        elif code in (REFUSED, DUPLICATE):
            month["transfers"] += 1
            month["transfers_refused"] += 1
            standard["transfers"] += 1
            standard["refused" if code == REFUSED else "duplicates"] += 1
    other_failures = sum(
        1
        for j in ingests
        if j["state"] in ("failed", "cancelled")
        and (j["state"] == "cancelled" or _refusal_code(j) not in (REFUSED, DUPLICATE))
    )

    digitised: dict[str, Any] = {
        "scans": 0,
        "by_resolution": {},
        "by_colour_mode": {},
        "below_minimum": 0,
    }
    without_detail = without_sheet = 0
    new_versions: dict[str, int] = {}
    for v in versions:
        if v.number != 1:
            new_versions[v.reason] = new_versions.get(v.reason, 0) + 1
            continue
        month = months[month_of(v.created_at)]
        month["aips"] += 1
        month["files"] += v.file_count
        month["bytes"] += v.byte_count
        from_job: dict[str, Any] | None = received.get(v.aip_id)
        in_catalogue = figures.get(v.aip_id)
        got: dict[str, Any] | None = in_catalogue.to_dict() if in_catalogue else from_job
        if got is None:
            without_detail += 1
            continue
        if from_job is None:
            without_sheet += 1  # no ingest job row (a rebuilt catalogue)
        for key in ("items", "volumes"):
            month[key] += int((from_job or {}).get(key, 0))
        for key in ("pages", "images"):
            month[key] += int(got.get(key, 0))
        digitised["scans"] += int(got.get("scans", 0))
        digitised["below_minimum"] += int(got.get("below_minimum", 0))
        for key in ("by_resolution", "by_colour_mode"):
            for value, n in (got.get(key) or {}).items():
                digitised[key][value] = digitised[key].get(value, 0) + int(n)
    for key in ("by_resolution", "by_colour_mode"):
        digitised[key] = dict(sorted(digitised[key].items(), key=_natural))
    totals = {k: sum(m[k] for m in months.values()) for k in MONTH_KEYS}

    fixity, availability = _audit_log_figures(repo, period, audits)
    migration_events = events.get("migration", {})
    return {
        "format": REPORT_FORMAT,
        "generator": {"name": "preservation", "version": __version__},
        "repository": settings.repository.name,
        "organization": settings.repository.organization or settings.repository.name,
        "period": period.to_dict(),
        "generated_at": utcnow().isoformat(),
        "months": [{"month": m, **v} for m, v in months.items()],
        "totals": totals,
        "aips_without_received_detail": without_detail,
        "aips_without_sheet_counts": without_sheet,
        "receiving_standard": {
            **standard,
            "share": _share(standard["met"], standard["transfers"]),
            "target": 1.0,
            "other_failed_ingests": other_failures,
        },
        "digitised": digitised,
        "fixity": fixity,
        "store_availability": availability,
        "audit_coverage": _coverage(repo),
        "replication": _replication(repo),
        "formats": _formats(repo),
        "migrations": {
            "versions": new_versions.get("migration", 0),
            "files": migration_events.get("success", 0),
            "events": dict(sorted(migration_events.items())),
        },
        "new_versions": dict(sorted(new_versions.items())),
        "incidents": {
            "opened": sum(sum(v.values()) for v in incidents.values()),
            "repaired": sum(v.get("repaired", 0) + v.get("closed", 0) for v in incidents.values()),
            "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(incidents.items())},
        },
        "access": _access(access, has_access_log),
        "preservation_checks": _job_outcomes(checks),
        "restore_drills": _job_outcomes(drills),
    }


def _natural(item: tuple[str, int]) -> tuple[int, int, str]:
    key = item[0]
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def _job_outcomes(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    runs = [j for j in jobs if j["state"] in ("done", "failed")]
    passed = sum(1 for j in runs if (j.get("result") or {}).get("ok") is True)
    return {
        "runs": len(runs),
        "passed": passed,
        "failed": len(runs) - passed,
        "pass_rate": _share(passed, len(runs)),
    }


def _audit_log_figures(
    repo: Repository, period: Period, audits: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Fixity checks of the period from the Parquet audit log (a check of one object
    by one run passes when every digest it computed matched) and the availability
    of each store as those checks saw it (share of checks that could read the
    object; ``unreadable`` outcomes count against it)."""
    settings = repo.config.settings
    per_store: dict[str, dict[str, Any]] = {
        name: {"checks": 0, "passed": 0, "outcomes": {}} for name in settings.stores
    }
    per_month = {m: {"checks": 0, "passed": 0} for m in period.months}
    directory = repo.config.resolve(settings.audit.log_dir)
    for store, month, outcome in _log_checks(directory, period):
        row = per_store.setdefault(store, {"checks": 0, "passed": 0, "outcomes": {}})
        row["checks"] += 1
        row["passed"] += outcome == "pass"
        row["outcomes"][outcome] = row["outcomes"].get(outcome, 0) + 1
        per_month[month]["checks"] += 1
        per_month[month]["passed"] += outcome == "pass"
    checks = sum(r["checks"] for r in per_store.values())
    passed = sum(r["passed"] for r in per_store.values())
    fixity = {
        "checks": checks,
        "passed": passed,
        "failed": checks - passed,
        "pass_rate": _share(passed, checks),
        "by_store": {
            n: {
                **r,
                "pass_rate": _share(r["passed"], r["checks"]),
                "outcomes": dict(sorted(r["outcomes"].items())),
            }
            for n, r in sorted(per_store.items())
        },
        "by_month": [{"month": m, **v} for m, v in per_month.items()],
        "audit_runs": len(audits),
    }
    availability = []
    for name, r in sorted(per_store.items()):
        runs = [a for a in audits if (a.get("params") or {}).get("store") == name]
        unreadable = r["outcomes"].get("unreadable", 0)
        st = settings.stores.get(name)
        availability.append(
            {
                "store": name,
                "site": st.site if st else None,
                "role": st.role if st else None,
                "checks": r["checks"],
                "unreadable": unreadable,
                "availability": _share(r["checks"] - unreadable, r["checks"]),
                "audit_runs": len(runs),
                "audit_runs_failed": sum(1 for a in runs if a["state"] == "failed"),
            }
        )
    return fixity, availability


def _log_checks(directory: Path, period: Period) -> Iterator[tuple[str, str, str]]:
    """(store, month, outcome) per check of the period: the rows of one run for one
    file of one AIP version on one store are one check (one row per digest), as the
    audit counts them; its outcome is the first that is not a pass. The log is read
    one day (partition) at a time, so memory follows a day's checks, not a year's."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from preservation.audit.parquet_log import PARTITION, SCHEMA

    if not directory.is_dir():
        return
    first = period.start.strftime("%Y-%m-%d")
    last = (period.end - dt.timedelta(days=1)).strftime("%Y-%m-%d")
    for day in sorted(directory.glob(f"{PARTITION}=*")):
        date = day.name.partition("=")[2]
        if not (first <= date <= last) or not any(day.glob("*.parquet")):
            continue
        table = ds.dataset(sorted(day.glob("*.parquet")), format="parquet", schema=SCHEMA).to_table(
            columns=["run_id", "store", "aip", "version", "path", "outcome", "started"]
        )
        if table.num_rows == 0:
            continue
        table = table.append_column("bad", pc.not_equal(table["outcome"], "pass"))
        grouped = table.group_by(["run_id", "store", "aip", "version", "path"]).aggregate(
            [("started", "min"), ("bad", "any"), ("outcome", "list")]
        )
        for store, started, is_bad, outcomes in zip(
            grouped["store"].to_pylist(),
            grouped["started_min"].to_pylist(),
            grouped["bad_any"].to_pylist(),
            grouped["outcome_list"].to_pylist(),
            strict=True,
        ):
            when = started if started.tzinfo else started.replace(tzinfo=dt.UTC)
            if not period.contains(when):
                continue
            outcome = next((o for o in outcomes if o != "pass"), "pass") if is_bad else "pass"
            yield str(store), month_of(when), str(outcome)


def _coverage(repo: Repository) -> dict[str, Any]:
    from preservation.audit.status import audit_status

    status = audit_status(repo, runs=0)
    return {
        "as_of": status["at"],
        "coverage": status["coverage"],
        "file_copies": status["file_copies"],
        "overdue": status["overdue"],
        "stores": [
            {
                k: x[k]
                for k in (
                    "store",
                    "interval_days",
                    "file_copies",
                    "verified_in_interval",
                    "coverage",
                    "overdue",
                )
            }
            for x in status["stores"]
        ],
    }


def _replication(repo: Repository) -> dict[str, Any]:
    from preservation.storage.health import health

    report = health(repo, limit=0).to_dict()
    totals = report["aip_totals"]
    return {
        "as_of": report["generated_at"],
        "policy": report["policy"],
        "active_aips": totals["active"],
        "meeting_policy": totals["meeting_policy"],
        "below_policy": totals["below_policy"],
        "coverage": _share(totals["meeting_policy"], totals["active"]),
        "ndsa_level": report["ndsa"]["level"],
        "ndsa_ceiling": report["ndsa"]["ceiling"],
        "aips_by_level": report["ndsa"]["aips_by_level"],
        "stores_reachable": {s["name"]: s["reachable"] for s in report["stores"]},
    }


def _formats(repo: Repository) -> dict[str, Any]:
    from preservation.formats.risk import assess

    r = assess(repo).to_dict()
    return {
        "as_of": r["checked_at"],
        "policy_version": r["policy"]["version"],
        "files": r["files"],
        "bytes": r["bytes"],
        "by_status": r["by_status"],
        "at_risk_files": r["at_risk_files"],
        "at_risk_migrated": r["at_risk_migrated"],
        "by_format": r["by_format"][:20],
    }


def _access(rows: list[tuple[str, str, bool, bool, int]], present: bool) -> dict[str, Any]:
    by_role: dict[str, dict[str, int]] = {}
    total = restricted = denied = 0
    for role, action, is_restricted, ok, n in rows:
        key = role or "anonymous"
        total += n
        if action == "denied" or not ok:
            denied += n
        if is_restricted:
            restricted += n
        if ok and action != "denied":
            by_role.setdefault(key, {})
            by_role[key][action] = by_role[key].get(action, 0) + n
    actions: dict[str, int] = {}
    for counts in by_role.values():
        for action, n in counts.items():
            actions[action] = actions.get(action, 0) + n
    return {
        "log_present": present,
        "entries": total,
        "restricted": restricted,
        "denied_or_failed": denied,
        "downloads": actions.get("download", 0),
        "views": actions.get("view", 0),
        "exports": actions.get("export", 0),
        "by_action": dict(sorted(actions.items())),
        "by_role": {k: dict(sorted(v.items())) for k, v in sorted(by_role.items())},
    }
