"""Restore drills: can a backup actually be restored? (DA/T 70, usability during
long-term preservation.)

``preservation drill [--count N] [--store S]`` and the scheduler's ``restore-drill``
job pick ``N`` random active AIPs whose current version is held on the off-site store
(``--store``, else the first replica store on another site than the primary), export
each from that store alone into a scratch folder with
:func:`preservation.access.export.export_bag` (every file of the version, what
``fetch.txt`` points at in earlier versions included, read from that store only and
verified against the catalogue while it streams), validate the bag fully (completeness
and every digest, :func:`preservation.bags.validate.validate_bag`), record the outcome
as a PREMIS ``validation`` event of the AIP, and delete the scratch folder. The run is
a ``jobs`` row of kind ``drill`` whose result says, per AIP, whether it restored.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preservation.errors import PreservationError, UsageError
from preservation.model import Event, utcnow

if TYPE_CHECKING:
    from preservation.repository import Repository

DRILL_KIND = "drill"
DEFAULT_COUNT = 1
MAX_LISTED_PROBLEMS = 20


@dataclass
class DrillRequest:
    count: int = DEFAULT_COUNT
    store: str | None = None
    seed: int | None = None


@dataclass
class DrillResult:
    aip: str
    version: int
    ok: bool
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DrillRun:
    job: str
    store: str
    results: list[DrillResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "store": self.store,
            "ok": self.ok,
            "drilled": len(self.results),
            "restored": sum(1 for r in self.results if r.ok),
            "failed": sum(1 for r in self.results if not r.ok),
            "aips": [r.to_dict() for r in self.results],
        }


def offsite_store(repo: Repository) -> str:
    """The first replica store on another site than the primary (else any replica)."""
    stores = repo.config.settings.stores
    primary = stores[repo.config.primary_store_name]
    replicas = [n for n, s in stores.items() if s.role == "replica"]
    for name in replicas:
        if stores[name].site != primary.site:
            return name
    if replicas:
        return replicas[0]
    raise UsageError("no replica store is configured: nothing to restore from off-site")


def export_version(repo: Repository, aip_id: str, version: int, store: str, target: Path) -> Path:
    """The complete bag of one version, read from ``store`` alone and verified while it
    streams (:func:`preservation.access.export.export_bag`: a bad object raises
    DigestMismatch and opens an incident for that copy)."""
    from preservation.access.export import export_bag

    export_bag(repo, aip_id, target, fmt="dir", version=version, store=store)
    return target


def drill_one(
    repo: Repository, aip_id: str, version: int, store: str, scratch: Path
) -> DrillResult:
    """Export and validate one AIP version; the scratch folder is removed afterwards."""
    from preservation.bags.validate import validate_bag

    started = utcnow()
    result = DrillResult(aip_id, version, ok=False)
    work = Path(tempfile.mkdtemp(prefix=f"drill-{aip_id}-", dir=scratch))
    try:
        bag = export_version(repo, aip_id, version, store, work / "bag")
        report = validate_bag(bag)
        result.files, result.bytes = report.payload_files, report.payload_bytes
        result.problems = [str(f) for f in report.errors[:MAX_LISTED_PROBLEMS]]
        result.ok = report.valid
    except PreservationError as e:
        result.problems = [f"{e.code}: {e.message}"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.seconds = round((utcnow() - started).total_seconds(), 3)
    return result


def run_drill(repo: Repository, req: DrillRequest) -> DrillRun:
    """Drill ``req.count`` random AIPs from the off-site store; records every outcome."""
    from preservation import eventlog
    from preservation.catalog import queries as q
    from preservation.catalog import report_queries as rq
    from preservation.jobs import software_agent

    if req.count < 1:
        raise UsageError("--count must be at least 1")
    store = req.store or offsite_store(repo)
    if store not in repo.config.settings.stores:
        raise UsageError(f"no store named {store!r}")
    with repo.catalog.session() as s:
        held = rq.aips_held_on(s, store)
        job = q.start_job(s, DRILL_KIND, {"store": store, "count": req.count})
    rng = random.Random(req.seed)
    chosen = sorted(rng.sample(held, min(req.count, len(held))))
    run = DrillRun(job=job, store=store)
    scratch = repo.config.staging_dir
    scratch.mkdir(parents=True, exist_ok=True)
    agent = software_agent()
    try:
        for aip_id, version in chosen:
            result = drill_one(repo, aip_id, version, store, scratch)
            run.results.append(result)
            with repo.catalog.session() as s:
                version_id = q.get_version(s, aip_id, version).id
            eventlog.record(
                repo,
                Event(
                    type="validation",
                    outcome="success" if result.ok else "failure",
                    detail=f"restore drill: version {version} exported from store {store}"
                    " alone and validated as a complete bag (every digest)",
                    outcome_detail=(
                        f"restored: {result.files} payload files, {result.bytes} bytes"
                        if result.ok
                        else "not restorable: " + "; ".join(result.problems[:5])
                    ),
                    agents=[(agent.identifier, "executing program")],
                ),
                aip_id=aip_id,
                version_id=version_id,
                version=version,
                store_name=store,
                agents=[agent],
            )
    except BaseException as e:
        with repo.catalog.session() as s:
            q.set_job_state(
                s, job, "failed", result=run.to_dict(), error=getattr(e, "message", None) or repr(e)
            )
        raise
    with repo.catalog.session() as s:
        q.set_job_state(
            s,
            job,
            "done" if run.ok else "failed",
            result=run.to_dict(),
            error=None
            if run.ok
            else f"{sum(not r.ok for r in run.results)} AIP(s) did not restore",
        )
    return run


def scheduled_drill(repo: Repository) -> dict[str, Any]:
    """The scheduler's ``restore-drill`` job (weekly by default; ``[drill]`` settings)."""
    settings = repo.config.settings.drill
    return run_drill(repo, DrillRequest(count=settings.count, store=settings.store)).to_dict()
