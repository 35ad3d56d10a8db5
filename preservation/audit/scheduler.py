"""``preservation scheduler``: APScheduler 3, its job store in the catalogue database.

Jobs (ids as shown by ``preservation scheduler list``):

- ``audit:<store>``: an audit batch of each store (``[scheduler.audit]``, daily by
  default) with the budget ``audit.budget`` (``auto``: the store's steady share);
- ``replication``: the replication catch-up (``[scheduler.replication]``, hourly),
  registered only when :func:`preservation.storage.replicate.replicate_pending` exists;
- job slots of other parts (``[scheduler.jobs.<name>]``): the weekly format-risk
  check, the monthly report and the weekly restore drill by default, each registered
  only when its ``function``
  (``'module:function'``, called with the repository) can be imported.

Overlap. Within the scheduler a job has ``max_instances = 1``. Across processes and
hosts, only one scheduler is active at a time: it holds the catalogue lease
``scheduler`` (other instances wait on standby and take over when it stops or dies),
and every job body holds a lease of its own (``audit:<store>``, ``job:<name>``), so a
``scheduler run-once`` from cron, or an ``audit run`` by hand, never runs beside the
same work of the scheduler either.

Misfires. Jobs are coalesced and have a ``misfire_grace`` (default one day): a run
missed while no scheduler was running runs once when one starts. The job store keeps
the next run time of each job, so a restart does not reset the schedule; a job whose
schedule changed in the configuration is replaced.

Shutdown. SIGTERM (or SIGINT) stops taking new runs, asks running audits to stop at
their next batch boundary (what they checked is committed), waits for them and exits 0.

Each run of a job is journalled as a ``jobs`` row of kind ``schedule`` (state done,
failed, or cancelled when the job was busy elsewhere).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preservation.audit.budget import parse_duration
from preservation.config import JobSchedule
from preservation.errors import ConfigError, JobBusy, PreservationError, UsageError

if TYPE_CHECKING:
    from preservation.repository import Repository

log = logging.getLogger(__name__)

SCHEDULE_KIND = "schedule"
JOBSTORE_TABLE = "apscheduler_jobs"
LEADER_LEASE = "scheduler"
REPLICATION_FUNCTION = "preservation.storage.replicate:replicate_pending"
# Slots for the jobs of later parts: registered once their function exists.
DEFAULT_SLOTS: dict[str, JobSchedule] = {
    "format-risk": JobSchedule(
        cron="0 3 * * 0", function="preservation.formats.risk:scheduled_check"
    ),
    "report": JobSchedule(
        cron="0 4 1 * *", function="preservation.reports.monthly:scheduled_report"
    ),
    # weekly restore drill from the off-site store ([drill] says how many AIPs, where)
    "restore-drill": JobSchedule(
        cron="0 5 * * 6", function="preservation.checks.drill:scheduled_drill"
    ),
}

# Set on SIGTERM: running job bodies stop at their next safe point.
STOP = threading.Event()
# The repository of the active scheduler of each root, shared by its job runs.
_ACTIVE: dict[str, Repository] = {}


@dataclass(frozen=True)
class JobSpec:
    id: str
    schedule: JobSchedule
    function: str | None  # for slot and replication jobs
    registered: bool
    reason: str = ""


def resolve_function(ref: str) -> Callable[..., Any] | None:
    module, _, name = ref.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (module == e.name or module.startswith(e.name + ".")):
            return None
        raise
    fn = getattr(mod, name, None)
    return fn if callable(fn) else None


def job_specs(repo: Repository) -> list[JobSpec]:
    """Every job the configuration describes, and whether it is registered."""
    s = repo.config.settings.scheduler
    specs: list[JobSpec] = []
    for store in repo.config.settings.stores:
        specs.append(
            JobSpec(
                f"audit:{store}",
                s.audit,
                None,
                s.audit.enabled,
                "" if s.audit.enabled else "disabled",
            )
        )
    specs.append(_function_job("replication", s.replication, REPLICATION_FUNCTION))
    slots = {**DEFAULT_SLOTS, **s.jobs}
    for name, schedule in sorted(slots.items()):
        if schedule.function is None:
            specs.append(JobSpec(name, schedule, None, False, "no function configured"))
            continue
        specs.append(_function_job(name, schedule, schedule.function))
    return specs


def _function_job(name: str, schedule: JobSchedule, ref: str) -> JobSpec:
    if not schedule.enabled:
        return JobSpec(name, schedule, ref, False, "disabled")
    if resolve_function(ref) is None:
        return JobSpec(name, schedule, ref, False, f"{ref} does not exist (yet)")
    return JobSpec(name, schedule, ref, True)


def _trigger(schedule: JobSchedule, timezone: str) -> Any:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    if schedule.cron is not None:
        return CronTrigger.from_crontab(schedule.cron, timezone=timezone)
    assert schedule.interval is not None
    return IntervalTrigger(seconds=parse_duration(schedule.interval), timezone=timezone)


# ---------------------------------------------------------------- running one job
def run_job(root: str, job: str) -> None:
    """The function APScheduler calls (by reference, so the job store can keep it)."""
    from preservation.repository import open_repository

    repo = _ACTIVE.get(root)
    own = repo is None
    if repo is None:
        repo = open_repository(Path(root))
    try:
        run_once(repo, job, trigger="scheduler")
    except JobBusy as e:
        log.info("job %s skipped: %s", job, e.message)
    except PreservationError as e:
        log.error("job %s failed: %s: %s", job, e.code, e.message)
    finally:
        if own and "catalog" in vars(repo):
            repo.catalog.dispose()


def run_once(repo: Repository, job: str, *, trigger: str = "run-once") -> dict[str, Any]:
    """Run one job now, in this process, under its lease; returns its journal result.

    ``job`` is ``audit:<store>``, ``audit`` (every store in turn), ``replication`` or
    the name of a registered slot. JobBusy when the same work runs elsewhere.
    """
    from preservation.catalog import queries as q

    specs = {spec.id: spec for spec in job_specs(repo)}
    names = [s.id for s in specs.values() if s.id.startswith("audit:")] if job == "audit" else [job]
    for name in names:
        spec = specs.get(name)
        if spec is None:
            raise UsageError(f"no job {name!r}; jobs: {', '.join(sorted(specs))}")
        if not spec.registered and not name.startswith("audit:"):
            raise UsageError(f"job {name!r} is not available: {spec.reason}")
    results: dict[str, Any] = {}
    busy: list[JobBusy] = []
    for name in names:
        with repo.catalog.session() as s:
            journal = q.start_job(s, SCHEDULE_KIND, {"job": name, "trigger": trigger})
        try:
            result = _execute(repo, specs[name])
        except JobBusy as e:
            _close(repo, journal, "cancelled", None, e.message)
            if job != "audit":
                raise
            busy.append(e)  # one store busy: the other stores still get their batch
            results[name] = {"busy": e.message}
            continue
        except BaseException as e:
            _close(repo, journal, "failed", None, getattr(e, "message", None) or repr(e))
            raise
        _close(repo, journal, "done", result, None)
        results[name] = result
    if busy and len(busy) == len(names):
        raise busy[0]
    return results if job == "audit" else results[job]


def _close(
    repo: Repository, journal: str, state: str, result: dict[str, Any] | None, error: str | None
) -> None:
    from preservation.catalog import queries as q

    with repo.catalog.session() as s:
        q.set_job_state(s, journal, state, result=result, error=error)


def _execute(repo: Repository, spec: JobSpec) -> dict[str, Any]:
    from preservation.audit.lease import lease

    if spec.id.startswith("audit:"):
        from preservation.audit.runner import AuditRequest, run_audit

        store = spec.id.split(":", 1)[1]
        summaries = run_audit(
            repo,
            AuditRequest(store=store, budget=repo.config.settings.audit.budget),
            should_stop=STOP.is_set,
        )
        return {"runs": [s.to_dict() for s in summaries]}
    assert spec.function is not None
    fn = resolve_function(spec.function)
    if fn is None:
        raise UsageError(f"{spec.function} does not exist")
    with lease(repo, f"job:{spec.id}"):
        out = fn(repo)
    if isinstance(out, dict):
        return {"result": out}
    to_dict = getattr(out, "to_dict", None)
    return {"result": to_dict() if callable(to_dict) else (repr(out) if out is not None else None)}


# ---------------------------------------------------------------- the service
class SchedulerService:
    """The foreground scheduler: leader lease, APScheduler, clean stop."""

    def __init__(
        self,
        repo: Repository,
        stop: threading.Event | None = None,
        standby_poll: float | None = None,
    ) -> None:
        self.repo = repo
        self.stop = stop or STOP
        ttl = float(repo.config.settings.audit.lease_seconds)
        self.standby_poll = standby_poll or max(0.5, min(10.0, ttl / 3))
        self.scheduler: Any = None
        self._validate()

    def _validate(self) -> None:
        settings = self.repo.config.settings.scheduler
        try:
            for spec in job_specs(self.repo):
                if spec.registered:
                    _trigger(spec.schedule, settings.timezone)
        except (ValueError, LookupError) as e:
            raise ConfigError(f"scheduler: {e}") from e

    def build(self) -> Any:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.schedulers.base import STATE_STOPPED

        class Scheduler(BackgroundScheduler):  # type: ignore[misc]
            """APScheduler 3's main loop processes jobs once more after shutdown has
            begun (it checks for a *paused* state only) and submits to an executor
            that is shutting down: the run is logged as an error and lost. A stopped
            scheduler processes nothing here; the job store keeps the run due."""

            def _process_jobs(self) -> float | None:
                if self.state == STATE_STOPPED:
                    return None
                result: float | None = super()._process_jobs()
                return result

        settings = self.repo.config.settings.scheduler
        return Scheduler(
            jobstores={
                "default": SQLAlchemyJobStore(
                    engine=self.repo.catalog.engine, tablename=JOBSTORE_TABLE
                )
            },
            executors={"default": ThreadPoolExecutor(settings.threads)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(parse_duration(settings.misfire_grace)),
            },
            timezone=settings.timezone,
        )

    def reconcile(self, scheduler: Any) -> list[str]:
        """Register the configured jobs; a job whose trigger is unchanged keeps its
        stored next run time (so a missed run is still due)."""
        settings = self.repo.config.settings.scheduler
        root = str(self.repo.root)
        wanted: dict[str, Any] = {}
        for spec in job_specs(self.repo):
            if spec.registered:
                wanted[spec.id] = _trigger(spec.schedule, settings.timezone)
            else:
                log.info("scheduler: job %s not registered: %s", spec.id, spec.reason)
        for job in scheduler.get_jobs():
            if job.id not in wanted:
                log.info("scheduler: removing job %s (no longer configured)", job.id)
                job.remove()
        registered: list[str] = []
        for job_id, trigger in wanted.items():
            existing = scheduler.get_job(job_id)
            if (
                existing is not None
                and str(existing.trigger) == str(trigger)
                and list(existing.args) == [root, job_id]
            ):
                registered.append(job_id)
                continue
            scheduler.add_job(
                "preservation.audit.scheduler:run_job",
                trigger=trigger,
                args=[root, job_id],
                id=job_id,
                name=job_id,
                replace_existing=True,
            )
            registered.append(job_id)
        return registered

    def run(self) -> None:
        """Until ``stop`` is set: wait for the leader lease, then schedule."""
        from preservation.audit.lease import lease

        while not self.stop.is_set():
            lost = threading.Event()
            try:
                with lease(self.repo, LEADER_LEASE, lost=lost):
                    self._lead(lost)
            except JobBusy as e:
                log.info("scheduler on standby: %s", e.message)
                self.stop.wait(self.standby_poll)

    def _lead(self, lost: threading.Event) -> None:
        from apscheduler.events import (
            EVENT_JOB_ERROR,
            EVENT_JOB_MAX_INSTANCES,
            EVENT_JOB_MISSED,
        )

        scheduler = self.build()
        scheduler.add_listener(
            _on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR
        )
        scheduler.start(paused=True)
        self.scheduler = scheduler
        _ACTIVE[str(self.repo.root)] = self.repo
        try:
            jobs = self.reconcile(scheduler)
            log.info("scheduler active with jobs: %s", ", ".join(jobs) or "(none)")
            scheduler.resume()
            while not self.stop.is_set() and not lost.is_set():
                self.stop.wait(0.5)
        finally:
            STOP.set()  # running audits stop at their next batch
            scheduler.shutdown(wait=True)  # waits for the running jobs
            _ACTIVE.pop(str(self.repo.root), None)
            if self.stop is not STOP or not self.stop.is_set():
                STOP.clear()  # standing by (lease lost) or stopped from outside
            self.scheduler = None

    def list_jobs(self) -> list[dict[str, Any]]:
        """The configured jobs with their next run time in the job store (the jobs are
        not changed; the job store table is created if it is missing)."""
        scheduler = self.build()
        scheduler.start(paused=True)
        try:
            stored = {j.id: j for j in scheduler.get_jobs()}
        finally:
            scheduler.shutdown(wait=False)
        out = []
        for spec in job_specs(self.repo):
            job = stored.get(spec.id)
            out.append(
                {
                    "id": spec.id,
                    "schedule": spec.schedule.cron or f"every {spec.schedule.interval}",
                    "function": spec.function,
                    "registered": spec.registered,
                    "reason": spec.reason,
                    "next_run": job.next_run_time.isoformat()
                    if job is not None and job.next_run_time
                    else None,
                }
            )
        return out


def _on_event(event: Any) -> None:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED

    if event.code == EVENT_JOB_MISSED:
        log.warning(
            "job %s missed its run at %s (beyond misfire_grace)",
            event.job_id,
            event.scheduled_run_time,
        )
    elif event.code == EVENT_JOB_MAX_INSTANCES:
        log.info("job %s is still running; the run due now is skipped", event.job_id)
    elif event.code == EVENT_JOB_ERROR:
        log.error("job %s raised %r", event.job_id, event.exception)
