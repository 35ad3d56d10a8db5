"""The format-risk check, the format report and re-identification.

:func:`run_format_risk_check` (the scheduler's ``format-risk`` job, weekly by default,
and ``preservation formats check``) evaluates every payload file of every active AIP's
current version against the *current* policy, so a policy change (a format made
obsolete by an override) is found on the next run. Files whose status is ``at-risk``
or ``obsolete`` and were not so at the previous run (or whose status got worse) are
*newly at risk*. (An at-risk original whose migrated derivative is in the same version
counts as ``at_risk_migrated``, not as at risk.) When there are newly at-risk files,
ONE summary alert goes out through
:func:`preservation.audit.alerts.alert_message` (a log line, plus the webhook and mail
when configured). The previous run's at-risk files are kept in
``<formats.state_dir>/risk-state.json``; each run adds one Parquet file of counts per
format and status to ``<formats.state_dir>/trend/`` (the trend the report shows).

:func:`reidentify` re-runs Siegfried on stored files (each streamed from the primary
store to a temporary file) and records every change as a PREMIS ``format
identification`` event; the catalogue then holds the new identification (the METS of
the version keeps the one made at the time).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from preservation.formats.policy import AT_RISK, STATUSES, FormatPolicy, policy_for
from preservation.iterutil import batched
from preservation.model import Agent, Event, utcnow
from preservation.paths import join_key

if TYPE_CHECKING:
    from preservation.catalog.version_record import CurrentFile
    from preservation.repository import Repository

log = logging.getLogger("preservation.formats")
STATE_NAME = "risk-state.json"
TREND_DIR = "trend"
MAX_LISTED = 1000  # at-risk files listed in a report (counts are always complete)
ALERT_EXAMPLES = 20
_SEVERITY = {"at-risk": 1, "obsolete": 2}


@dataclass
class RiskReport:
    checked_at: datetime
    policy_version: str
    policy_digest: str
    policy_source: str
    files: int = 0
    bytes: int = 0
    by_status: dict[str, dict[str, int]] = field(default_factory=dict)
    by_format: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    at_risk_by_aip: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    at_risk_files: int = 0  # at risk, with no migrated derivative yet
    at_risk_migrated: int = 0  # at risk, but a migrated derivative is in the version
    listed: int = 0
    # at-risk files: key -> (status, path, puid)
    current: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)
    newly_at_risk: list[dict[str, Any]] = field(default_factory=list)
    newly_at_risk_count: int = 0
    alerted: bool = False
    alert: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at.isoformat(),
            "policy": {
                "version": self.policy_version,
                "digest": self.policy_digest,
                "source": self.policy_source,
            },
            "files": self.files,
            "bytes": self.bytes,
            "by_status": self.by_status,
            "by_format": sorted(
                self.by_format.values(), key=lambda r: (-r["files"], r["puid"] or "")
            ),
            "at_risk_files": self.at_risk_files,
            "at_risk_migrated": self.at_risk_migrated,
            "at_risk_by_aip": self.at_risk_by_aip,
            "at_risk_listed": self.listed,
            "newly_at_risk": self.newly_at_risk_count,
            "newly_at_risk_examples": self.newly_at_risk[:ALERT_EXAMPLES],
            "alerted": self.alerted,
            "alert": self.alert,
        }


def _by_aip(files: Iterator[CurrentFile]) -> Iterator[list[CurrentFile]]:
    """Consecutive files of one AIP (the query orders by AIP)."""
    group: list[CurrentFile] = []
    for f in files:
        if group and group[0].aip_id != f.aip_id:
            yield group
            group = []
        group.append(f)
    if group:
        yield group


def _key(f: CurrentFile) -> str:
    return f"{f.aip_id}/{f.file_uuid or f.path}"


def assess(
    repo: Repository, policy: FormatPolicy | None = None, *, public_only: bool = False
) -> RiskReport:
    """Evaluate every current payload file against ``policy`` (default: the site's);
    with ``public_only``, only the files of AIPs a reader may see (the dashboard)."""
    from preservation.catalog.version_record import current_payload_files

    policy = policy or policy_for(repo)
    report = RiskReport(utcnow(), policy.version, policy.digest, policy.source)
    report.by_status = {s: {"files": 0, "bytes": 0} for s in STATUSES}
    with repo.catalog.session() as s:
        for files in _by_aip(current_payload_files(s, public_only=public_only)):
            derived = {f.derived_from for f in files if f.derived_from}
            for f in files:
                _assess_file(report, policy, f, f.file_uuid in derived)
    return report


def _assess_file(report: RiskReport, policy: FormatPolicy, f: CurrentFile, migrated: bool) -> None:
    entry = policy.lookup(f.puid, f.mime, f.path)
    status = policy.status_of(f.puid, f.mime, f.path)
    report.files += 1
    report.bytes += f.size
    report.by_status[status]["files"] += 1
    report.by_status[status]["bytes"] += f.size
    key = (entry.key if entry else (f.puid or "unidentified"), status)
    row = report.by_format.get(key)
    if row is None:
        row = report.by_format[key] = {
            "puid": key[0],
            "name": entry.name if entry else (f.format_name or "unidentified"),
            "category": entry.category if entry else "other",
            "status": status,
            "files": 0,
            "bytes": 0,
        }
    row["files"] += 1
    row["bytes"] += f.size
    if status in AT_RISK and migrated:
        report.at_risk_migrated += 1
    elif status in AT_RISK:
        report.at_risk_files += 1
        report.current[_key(f)] = (status, f.payload_path, f.puid)
        if report.listed < MAX_LISTED:
            report.listed += 1
            report.at_risk_by_aip.setdefault(f.aip_id, []).append(
                {
                    "path": f.payload_path,
                    "puid": f.puid,
                    "format": entry.name if entry else f.format_name,
                    "status": status,
                    "action": entry.action if entry else None,
                    "target": entry.target if entry else None,
                }
            )


# ------------------------------------------------------------------ state and trend


def state_dir(repo: Repository) -> Path:
    return repo.config.resolve(repo.config.settings.formats.state_dir)


def _read_state(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("%s unreadable (%s): every at-risk file counts as new", path, e)
        return {}
    at_risk = data.get("at_risk", {})
    return {str(k): str(v) for k, v in at_risk.items()} if isinstance(at_risk, dict) else {}


def _write_state(path: Path, report: RiskReport) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "checked_at": report.checked_at.isoformat(),
        "policy_version": report.policy_version,
        "policy_digest": report.policy_digest,
        "at_risk": {k: v[0] for k, v in sorted(report.current.items())},
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


def _write_trend(folder: Path, report: RiskReport) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rows = list(report.by_format.values())
    table = pa.table(
        {
            "checked_at": pa.array([report.checked_at] * len(rows), pa.timestamp("us", tz="UTC")),
            "policy_version": pa.array([report.policy_version] * len(rows), pa.string()),
            "puid": pa.array([r["puid"] for r in rows], pa.string()),
            "name": pa.array([r["name"] for r in rows], pa.string()),
            "category": pa.array([r["category"] for r in rows], pa.string()),
            "status": pa.array([r["status"] for r in rows], pa.string()),
            "files": pa.array([r["files"] for r in rows], pa.int64()),
            "bytes": pa.array([r["bytes"] for r in rows], pa.int64()),
        }
    )
    name = f"{report.checked_at:%Y%m%dT%H%M%S%fZ}.parquet"
    tmp = folder / f".{name}.tmp"
    pq.write_table(table, tmp)
    tmp.replace(folder / name)
    return folder / name


def read_trend(repo: Repository) -> list[dict[str, Any]]:
    """Files and bytes per status for each recorded check, oldest first."""
    import pyarrow.parquet as pq

    folder = state_dir(repo) / TREND_DIR
    runs: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
        table = pq.read_table(
            path, columns=["checked_at", "policy_version", "status", "files", "bytes"]
        )
        for row in table.to_pylist():
            when = row["checked_at"].isoformat()
            run = runs.setdefault(
                when,
                {"checked_at": when, "policy_version": row["policy_version"], "by_status": {}},
            )
            st = run["by_status"].setdefault(row["status"], {"files": 0, "bytes": 0})
            st["files"] += row["files"]
            st["bytes"] += row["bytes"]
    return list(runs.values())


# ------------------------------------------------------------------ the check


def _send_alert(repo: Repository, report: RiskReport) -> dict[str, Any]:
    from preservation.audit.alerts import Alert, alert_message

    examples = "; ".join(
        f"{n['aip']} {n['path']} ({n['puid']}: {n['status']})"
        for n in report.newly_at_risk[:ALERT_EXAMPLES]
    )
    alert = Alert(
        kind="format-risk",
        severity="error",
        subject=f"{report.newly_at_risk_count} file(s) newly at risk by format policy"
        f" {report.policy_version}",
        summary={
            "newly at risk": report.newly_at_risk_count,
            "at risk in total": report.at_risk_files,
            "files checked": report.files,
            "examples": examples,
            "next step": "preservation migrate --all-at-risk --dry-run",
        },
    )
    return alert_message(repo, alert).to_dict()


def run_format_risk_check(repo: Repository, *, alert: bool = True) -> RiskReport:
    """Check every file against the current policy; alert once on newly at-risk files."""
    report = assess(repo)
    folder = state_dir(repo)
    previous = _read_state(folder / STATE_NAME)
    for key, (status, path, puid) in report.current.items():
        before = previous.get(key)
        if before is None or _SEVERITY[status] > _SEVERITY.get(before, 0):
            report.newly_at_risk_count += 1
            if len(report.newly_at_risk) < MAX_LISTED:
                aip = key.partition("/")[0]
                report.newly_at_risk.append(
                    {"aip": aip, "path": path, "puid": puid, "status": status}
                )
    if report.newly_at_risk_count and alert:
        report.alert = _send_alert(repo, report)
        report.alerted = True
    _write_trend(folder / TREND_DIR, report)
    _write_state(folder / STATE_NAME, report)
    return report


def scheduled_check(repo: Repository) -> dict[str, Any]:
    """The scheduler's ``format-risk`` job."""
    report = run_format_risk_check(repo)
    return {
        "files": report.files,
        "at_risk": report.at_risk_files,
        "newly_at_risk": report.newly_at_risk_count,
        "alerted": report.alerted,
        "policy": report.policy_version,
    }


def format_report(repo: Repository) -> dict[str, Any]:
    """The repository by format and status now, at-risk files by AIP, and the trend."""
    data = assess(repo).to_dict()
    for key in ("newly_at_risk", "newly_at_risk_examples", "alerted", "alert"):
        data.pop(key)
    data["trend"] = read_trend(repo)
    return data


# ------------------------------------------------------------------ re-identification


@dataclass
class ReidentifyReport:
    files: int = 0
    changed: list[dict[str, Any]] = field(default_factory=list)
    tool: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "changed": self.changed, "tool": self.tool}


def reidentify(
    repo: Repository, aip_id: str | None = None, *, batch: int = 200
) -> ReidentifyReport:
    """Re-identify stored files; every change becomes a ``format identification`` event."""
    from preservation.catalog.queries import require_aip
    from preservation.catalog.version_record import active_aip_ids, current_payload_files
    from preservation.ingest.identify import siegfried_version
    from preservation.versions import default_agents

    out = ReidentifyReport(tool=f"Siegfried {siegfried_version()}")
    software = default_agents(repo)[0]
    with repo.catalog.session() as s:
        if aip_id is not None:
            require_aip(s, aip_id)
        aips = [aip_id] if aip_id is not None else active_aip_ids(s)
    for aip in aips:
        with repo.catalog.session() as s:
            files = list(current_payload_files(s, aip_id=aip))
        _reidentify_files(repo, files, out, software, batch)
    return out


def _reidentify_files(
    repo: Repository, files: list[CurrentFile], out: ReidentifyReport, software: Agent, batch: int
) -> None:
    from preservation import eventlog
    from preservation.catalog.queries import stores_with_copies
    from preservation.catalog.version_record import set_file_format
    from preservation.ingest.identify import identify_files

    root = repo.config.staging_dir
    root.mkdir(parents=True, exist_ok=True)
    for group in batched(files, batch):
        work = Path(tempfile.mkdtemp(prefix="reidentify-", dir=root))
        try:
            local: dict[Path, CurrentFile] = {}
            for i, f in enumerate(group):
                target = work / str(i) / PurePosixPath(f.payload_path).name
                target.parent.mkdir()
                key = join_key(f.aip_id, f"v{f.origin_version}", f.path)
                with repo.primary.open(key) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
                local[target] = f
            found = identify_files(list(local))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        out.files += len(group)
        docs: list[tuple[str, Event, bytes]] = []
        with repo.catalog.session() as s:
            for path, f in local.items():
                info = found.get(path)
                puid = info.puid if info else None
                mime = info.mime if info else None
                if puid == f.puid and (mime is None or f.mime is None or mime == f.mime):
                    continue
                change = (
                    f"{f.payload_path}: {f.puid or 'unidentified'} ({f.mime or '-'})"
                    f" -> {puid or 'unidentified'} ({mime or '-'})"
                )
                named = " ".join(x for x in (info.name, info.version) if x) if info else ""
                sig = info.signature if info and info.signature else "PRONOM"
                event = Event(
                    type="format identification",
                    outcome="success" if puid else "warning",
                    detail=f"re-identification with {out.tool} ({sig})",
                    outcome_detail=change + (f": {named}" if named else ""),
                    agents=[(software.identifier, "executing program")],
                    objects=[f.file_uuid or f.path],
                )
                set_file_format(
                    s,
                    f.file_id,
                    puid=puid,
                    mime=mime,
                    name=info.name if info else None,
                    version=info.version if info else None,
                )
                doc = eventlog.append(
                    s,
                    event,
                    aip_id=f.aip_id,
                    version_id=f.version_id,
                    version=f.version,
                    agents=[software],
                )
                assert doc is not None
                docs.append((f.aip_id, event, doc))
                out.changed.append(
                    {
                        "aip": f.aip_id,
                        "path": f.payload_path,
                        "old": f.puid,
                        "new": puid,
                        "event": event.identifier,
                    }
                )
            holders = {aip: stores_with_copies(s, aip) for aip, _, _ in docs}
        configured = set(repo.config.settings.stores)
        for aip, event, doc in docs:
            names = [n for n in holders[aip] if n in configured]
            eventlog.publish([repo.store(n) for n in names], aip, event, doc)
