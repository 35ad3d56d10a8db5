"""An audit run: plan, check in parallel, record the evidence, batch by batch.

``run_audit(repo, AuditRequest(...))`` audits one store (or every store), each in its
own run with its own id (the ``jobs`` row of kind ``audit``). For each store:

1. take the store's lease (one audit or repair of a store at a time, on any host),
   and finish what an interrupted run of the store left (its PREMIS events);
2. page by page (``audit.batch_size`` file copies) from the plan (:mod:`.plan`):
   read the bag manifests of the copies involved (full and sample modes), send units
   of work to the executor (threads or Dask), and, for every completed batch, write
   the Parquet rows first, then commit in one catalogue transaction the file copies'
   last verified time and outcome, the incidents of the failures and the run's running
   totals. A killed run therefore loses at most the batch in flight, and the next run
   takes up the file copies it did not commit;
3. at the end (budget spent, nothing left, or asked to stop): one PREMIS ``fixity
   check`` event per AIP copy checked, whose outcome detail lists the failed files;
   the copies' states; one alert for the run's failures; the repair of the new
   incidents when ``audit.auto_repair`` (or ``--repair``) says so.

An audit never changes an AIP's objects. Like every post-ingest event, its PREMIS
events are written beside the AIPs (``<aip>/events/``) on the stores holding them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preservation.audit.budget import Budget, parse_budget
from preservation.audit.codes import OUTCOMES
from preservation.audit.events import FLUSH_COPIES, emit_run_events
from preservation.audit.executor import Executor, ThreadExecutor, make_executor
from preservation.audit.fixity import (
    MODES,
    CheckResult,
    CheckUnit,
    FileTask,
    Mode,
    StoreRef,
    prime_store,
    run_unit,
)
from preservation.audit.incidents import Finding, IncidentNote, record_findings
from preservation.audit.lease import lease
from preservation.audit.manifests import Digests, EntrySink, ManifestIndex, read_manifests
from preservation.audit.parquet_log import AuditLog, result_rows, unexpected_row
from preservation.audit.plan import Planner, auto_budget, group_units
from preservation.errors import PreservationError, UsageError
from preservation.faults import checkpoint
from preservation.hashing import SUPPORTED, check_algorithms
from preservation.model import utcnow
from preservation.paths import join_key
from preservation.progress import Reporter, Silent

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from preservation.audit.early import EarlyReads
    from preservation.catalog.audit_queries import Candidate
    from preservation.repository import Repository

log = logging.getLogger(__name__)

AUDIT_KIND = "audit"
CATALOGUE_DIGESTS = ("sha256", "sha512")
MAX_LISTED_FAILURES = 50  # failed files named per copy in the run's totals and events


@dataclass
class AuditRequest:
    store: str | None = None  # None: every configured store
    mode: Mode | None = None  # None: the store's own (cold stores: inventory)
    aip: str | None = None
    budget: str | None = None  # None: no limit
    all_digests: bool = False
    algorithm: str | None = None  # None: audit.algorithm
    seed: int | None = None
    fraction: float | None = None
    ahead: bool = False  # also copies not yet due
    repair: bool | None = None  # None: audit.auto_repair
    workers: int | None = None


@dataclass
class RunSummary:
    run_id: str
    store: str
    site: str
    mode: str
    algorithms: list[str]
    budget: str
    started: dt.datetime
    finished: dt.datetime | None = None
    state: str = "running"
    stopped_by: str | None = None
    checked: int = 0
    bytes: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    copies: int = 0
    events: int = 0
    incidents: list[dict[str, Any]] = field(default_factory=list)
    log_files: list[str] = field(default_factory=list)
    seed: int | None = None
    fraction: float | None = None
    repair: dict[str, Any] | None = None
    alert: dict[str, Any] | None = None
    error: str | None = None
    resumed: list[str] = field(default_factory=list)  # interrupted runs finished first

    @property
    def failures(self) -> int:
        return sum(n for o, n in self.outcomes.items() if o != "pass")

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "store": self.store,
            "site": self.site,
            "mode": self.mode,
            "algorithms": self.algorithms,
            "budget": self.budget,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat() if self.finished else None,
            "state": self.state,
            "stopped_by": self.stopped_by,
            "checked": self.checked,
            "bytes": self.bytes,
            "outcomes": dict(self.outcomes),
            "failures": self.failures,
            "copies": self.copies,
            "events": self.events,
            "incidents": self.incidents,
            "log_files": self.log_files,
            "seed": self.seed,
            "fraction": self.fraction,
            "repair": self.repair,
            "alert": self.alert,
            "error": self.error,
            "resumed": self.resumed,
        }


def resolve_mode(repo: Repository, store: str, requested: Mode | None) -> Mode:
    settings = repo.config.store_settings(store)
    if requested is not None and requested not in MODES:
        raise UsageError(f"mode {requested!r} is not one of {', '.join(MODES)}")
    if settings.cold:
        if requested in ("full", "sample"):
            raise UsageError(
                f"store {store!r} is cold: it is audited by inventory only (restore the objects"
                " and audit them from a readable copy instead)"
            )
        return "inventory"
    return requested or settings.audit_mode


def run_audit(
    repo: Repository,
    request: AuditRequest,
    *,
    executor: Executor | None = None,
    progress: Reporter | None = None,
    should_stop: Callable[[], bool] | None = None,
    early: EarlyReads | None = None,
) -> list[RunSummary]:
    """Audit the requested store (or each store, in configuration order).

    Everything is validated before the first byte is read: the store names, the mode,
    the budget, the algorithms, the sample fraction and the AIP (``early`` reads,
    from :func:`preservation.audit.early.start_early_reads`, are only used once the
    run holds the store's lease, and only where that changes nothing it records).
    """
    names = [request.store] if request.store else list(repo.config.settings.stores)
    plans = [_prepare(repo, name, request) for name in names]
    own = executor is None
    ex = executor or make_executor(repo.config, request.workers)
    try:
        return [
            _StoreRun(
                repo,
                prepared,
                ex,
                progress or Silent(),
                should_stop or _never,
                early if _early_fits(early, prepared, ex) else None,
            ).run()
            for prepared in plans
        ]
    finally:
        if own:
            ex.close()


def _early_fits(early: EarlyReads | None, p: _Prepared, ex: Executor) -> bool:
    return (
        early is not None
        and isinstance(ex, ThreadExecutor)
        and p.mode == "full"
        and p.aip == early.aip_id
        and p.store == early.store.name
    )


def _never() -> bool:
    return False


@dataclass(frozen=True)
class _Prepared:
    store: str
    site: str
    mode: Mode
    algorithm: str
    all_digests: bool
    budget: Budget
    budget_text: str
    ahead: bool
    aip: str | None
    seed: int | None
    fraction: float | None
    repair: bool
    advance_on_pass: bool


def _prepare(repo: Repository, store: str, request: AuditRequest) -> _Prepared:
    settings = repo.config.store_settings(store)
    mode = resolve_mode(repo, store, request.mode)
    audit = repo.config.settings.audit
    algorithm = check_algorithms([request.algorithm or audit.algorithm])[0]
    budget = parse_budget(request.budget)
    fraction: float | None = None
    seed: int | None = None
    if mode == "sample":
        fraction = request.fraction if request.fraction is not None else audit.sample_fraction
        if not 0 < fraction <= 1:
            raise UsageError(f"--fraction must be in (0, 1], not {fraction}")
        seed = request.seed if request.seed is not None else random.SystemRandom().randrange(2**31)
    elif request.fraction is not None:
        raise UsageError("--fraction applies to --mode sample only")
    if request.aip is not None:
        with repo.catalog.session() as s:
            from preservation.catalog.queries import require_aip

            require_aip(s, request.aip)
    return _Prepared(
        store=store,
        site=settings.site,
        mode=mode,
        algorithm=algorithm,
        all_digests=request.all_digests,
        budget=budget,
        budget_text=request.budget or "unlimited",
        ahead=request.ahead or budget.auto or request.aip is not None or mode == "sample",
        aip=request.aip,
        seed=seed,
        fraction=fraction,
        repair=audit.auto_repair if request.repair is None else request.repair,
        advance_on_pass=mode != "inventory" or settings.cold or settings.audit_mode == "inventory",
    )


class _StoreRun:
    def __init__(
        self,
        repo: Repository,
        p: _Prepared,
        executor: Executor,
        progress: Reporter,
        should_stop: Callable[[], bool],
        early: EarlyReads | None = None,
    ) -> None:
        self.repo = repo
        self.p = p
        self.early = early
        self.executor = executor
        self.progress = progress
        self.should_stop = should_stop
        self.ref = StoreRef.of(repo.config, p.store)
        self.store = repo.store(p.store)
        prime_store(self.ref, self.store)
        self.manifests = ManifestIndex()
        self.checked_ids: set[int] = set()  # manifest file copies checked in this run
        self.scanned_copies: set[int] = set()  # copies scanned for unexpected objects
        self.copy_info: dict[int, Any] = {}
        self.manifest_algs: dict[int, tuple[str, ...]] = {}  # payload manifests by copy
        self.notes: dict[int, IncidentNote] = {}
        self.totals: dict[str, Any] = {}

    # ------------------------------------------------------------------ run
    def run(self) -> RunSummary:
        from preservation.catalog import queries as q

        p = self.p
        with lease(self.repo, f"audit:{p.store}") as taken:
            if self.early is not None:
                self.early.claim(taken.previous)
            resumed = finish_interrupted(self.repo, p.store)
            started = utcnow()
            with self.repo.catalog.session() as s:
                run_id = q.start_job(
                    s,
                    AUDIT_KIND,
                    {
                        "store": p.store,
                        "mode": p.mode,
                        "algorithm": p.algorithm,
                        "all_digests": p.all_digests,
                        "budget": p.budget_text,
                        "ahead": p.ahead,
                        "aip": p.aip,
                        "seed": p.seed,
                        "fraction": p.fraction,
                    },
                )
            self.summary = RunSummary(
                run_id=run_id,
                store=p.store,
                site=p.site,
                mode=p.mode,
                algorithms=[p.algorithm],
                budget=p.budget_text,
                started=started,
                seed=p.seed,
                fraction=p.fraction,
                resumed=resumed,
            )
            self.totals = {
                "run": run_id,
                "mode": p.mode,
                "checked": 0,
                "bytes": 0,
                "outcomes": {},
                "algorithms": [p.algorithm],
                "copies": {},
                "copies_done": 0,
                "incidents": [],
            }
            self.log = AuditLog(
                self.repo.config.resolve(self.repo.config.settings.audit.log_dir),
                run_id,
                store=self._log_store(),
                prefix=self.repo.config.settings.audit.log_prefix,
            )
            try:
                try:
                    self._loop(started)
                finally:
                    self.manifests.close()
                    if self.early is not None and self.early.used:
                        # Some checks read their file before this point: the run
                        # started when those reads did.
                        self.summary.started = min(started, self.early.started_at)
            except BaseException as exc:
                self._finish(
                    "failed",
                    error=exc.message if isinstance(exc, PreservationError) else repr(exc),
                )
                raise
            self._finish("done")
            if p.repair and self.summary.incidents:
                self._repair()
        return self.summary

    def _log_store(self) -> Any:
        name = self.repo.config.settings.audit.log_store
        return self.repo.store(name) if name else None

    def _loop(self, started: dt.datetime) -> None:
        from preservation.catalog import audit_queries as aq

        p = self.p
        settings = self.repo.config.store_settings(p.store)
        budget = p.budget
        if budget.auto:
            with self.repo.catalog.session() as s:
                files, nbytes = aq.store_totals(s, p.store)
            share = auto_budget(files, nbytes, settings.fixity_interval_days, p.mode == "inventory")
            budget = Budget(
                bytes=share.bytes
                if budget.bytes is None
                else min(share.bytes or budget.bytes, budget.bytes),
                objects=share.objects if budget.objects is None else budget.objects,
                seconds=budget.seconds,
            )
            self.summary.budget = f"auto ({budget.describe()})"
        cutoff = started if p.ahead else started - dt.timedelta(days=settings.fixity_interval_days)
        planner = Planner(
            store=p.store,
            verified_before=cutoff,
            budget=budget,
            page_size=self.repo.config.settings.audit.batch_size,
            aip_id=p.aip,
            sample_seed=p.seed,
            sample_fraction=p.fraction,
            count_bytes=p.mode != "inventory",
        )
        self.progress.start(f"audit {p.store} ({p.mode})", None)
        # Two batches overlap: while the workers check batch N+1, this thread writes
        # batch N's evidence (Parquet rows, catalogue commit). A killed run still
        # loses only what was not committed, and batches are committed in order.
        checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-batch")
        inflight: _Batch | None = None
        try:
            while True:
                batch: _Batch | None = None
                if self.should_stop():
                    self.summary.stopped_by = "signal"
                elif not planner.finished:
                    with self.repo.catalog.session() as s:
                        page = planner.next_page(s)
                        if page:
                            tasks, extra = self._tasks(s, page)
                            batch = _Batch(
                                checker.submit(self._check, tasks, planner),
                                extra,
                                {str(t.copy_id) for _, t in tasks},
                            )
                if inflight is not None:
                    current, inflight = inflight, None
                    results = current.future.result()
                    results.extend(current.extra)
                    inflight = batch
                    self._commit(results, planner)
                    checkpoint("audit:after-batch")
                    if len(self.totals["copies"]) > FLUSH_COPIES:
                        keep = {str(r.task.copy_id) for r in results}
                        self._flush(keep=keep | (batch.copies if batch else set()))
                else:
                    inflight = batch
                if inflight is None:
                    break
        finally:
            if inflight is not None:  # an error in this thread: let the workers finish first
                with contextlib.suppress(BaseException):
                    inflight.future.result()
            checker.shutdown(wait=True)
            self.progress.done()
        self.summary.stopped_by = self.summary.stopped_by or planner.stopped_by

    # ------------------------------------------------------------------ tasks
    def _tasks(
        self, s: Session, page: Sequence[Candidate]
    ) -> tuple[list[tuple[tuple[str, ...], FileTask]], list[CheckResult]]:
        """Tasks (with the algorithms of their copy) and the results of the manifest
        reads done on the way (full and sample modes)."""
        from preservation.catalog import audit_queries as aq

        new_copies = {c.copy_id for c in page} - set(self.copy_info)
        if new_copies:
            self.copy_info.update(aq.copy_infos(s, new_copies))
        extra: list[CheckResult] = []
        by_copy: dict[int, list[Candidate]] = {}
        for c in page:
            by_copy.setdefault(c.copy_id, []).append(c)
        out: list[tuple[tuple[str, ...], FileTask]] = []
        for copy_id, rows in by_copy.items():
            algs, manifests = self._copy_algorithms(s, copy_id, [r.path for r in rows], extra)
            for c in rows:
                if c.file_copy_id in self.checked_ids:
                    continue
                expected = {a: d for a in algs if (d := _catalogue_digest(c, a))}
                task = FileTask(
                    file_copy_id=c.file_copy_id,
                    copy_id=c.copy_id,
                    version_id=c.version_id,
                    aip_id=c.aip_id,
                    version=c.version,
                    path=c.path,
                    key=object_key(c.aip_id, c.origin_version, c.path),
                    kind=c.kind,
                    size=c.size,
                    expected=expected,
                    manifest=_for_path(manifests.get(c.path), algs),
                    file_uuid=c.file_uuid,
                )
                out.append((algs, task))
        return out, extra

    def _copy_algorithms(
        self, s: Session, copy_id: int, paths: list[str], extra: list[CheckResult]
    ) -> tuple[tuple[str, ...], Digests]:
        """The algorithms of a copy's checks and the manifest digests of ``paths``."""
        from preservation.audit.manifests import manifest_algorithms
        from preservation.catalog import audit_queries as aq

        p = self.p
        if p.mode == "inventory":
            return (p.algorithm, *[a for a in CATALOGUE_DIGESTS if a != p.algorithm]), {}
        if p.mode == "sample":  # costly reads: the sampled files only, against the catalogue
            return (
                (p.algorithm,) if p.algorithm in CATALOGUE_DIGESTS else (p.algorithm, "sha256")
            ), {}
        algs: tuple[str, ...] = (p.algorithm,)
        if p.all_digests:
            if copy_id not in self.manifest_algs:  # once per copy, not once per batch
                names = [f"manifest-{a}.txt" for a in SUPPORTED]
                present = [c.path for c in aq.copy_files(s, copy_id, names)]
                self.manifest_algs[copy_id] = manifest_algorithms(present)
            algs = tuple(dict.fromkeys([p.algorithm, *self.manifest_algs[copy_id]]))
        if not any(a in CATALOGUE_DIGESTS for a in algs):
            algs = (*algs, "sha256")  # the catalogue is always compared
        for a in algs:
            if a not in self.totals["algorithms"]:
                self.totals["algorithms"].append(a)
                self.summary.algorithms = list(self.totals["algorithms"])
        info = self.copy_info[copy_id]
        names = [f"{pre}manifest-{a}.txt" for a in algs for pre in ("", "tag")]

        def load(sink: EntrySink) -> Any:
            # Looked up only when the manifests are read (not for every batch of a
            # copy whose manifests are indexed): the lookup reads the copy's file rows.
            manifest_rows = aq.copy_files(s, copy_id, names)
            tasks = [
                FileTask(
                    file_copy_id=m.file_copy_id,
                    copy_id=m.copy_id,
                    version_id=m.version_id,
                    aip_id=m.aip_id,
                    version=m.version,
                    path=m.path,
                    key=object_key(m.aip_id, m.origin_version, m.path),
                    kind=m.kind,
                    size=m.size,
                    expected={a: d for a in algs if (d := _catalogue_digest(m, a))},
                    file_uuid=m.file_uuid,
                )
                for m in manifest_rows
            ]
            return read_manifests(self.store, tasks, algs, p.mode, sink)

        manifests = self.manifests.ensure(copy_id, info.file_count, load)
        if manifests is not None:
            # A manifest that fails its own check is a finding now; one that passes is
            # recorded when its own turn in the plan comes (the budget stays exact).
            for r in manifests.checks:
                if r.failed and r.task.file_copy_id not in self.checked_ids:
                    self.checked_ids.add(r.task.file_copy_id)
                    extra.append(r)
            for problem in manifests.unusable:
                log.warning(
                    "%s: AIP %s v%d: bag manifest not used (%s); files compared with the"
                    " catalogue only",
                    p.store,
                    info.aip_id,
                    info.version,
                    problem,
                )
        return algs, self.manifests.lookup(copy_id, paths)

    # ------------------------------------------------------------------ checking
    def _check(
        self, tasks: list[tuple[tuple[str, ...], FileTask]], planner: Planner
    ) -> list[CheckResult]:
        p = self.p

        def unit_stream() -> Iterator[CheckUnit]:
            i = 0
            while i < len(tasks):
                algs = tasks[i][0]
                j = i
                while j < len(tasks) and tasks[j][0] == algs:
                    j += 1
                run = [t for _, t in tasks[i:j]]
                for group in group_units([t.size for t in run]):
                    if not planner.time_left():
                        return
                    yield CheckUnit(self.ref, p.mode, algs, tuple(run[k] for k in group))
                i = j

        check: Callable[[CheckUnit], list[CheckResult]] = run_unit
        if self.early is not None:
            check = functools.partial(run_unit, early=self.early.take)
        results: list[CheckResult] = []
        for unit_results in self.executor.map(check, unit_stream(), site=p.site):
            results.extend(unit_results)
            self.progress.advance(len(unit_results))
        return results

    # ------------------------------------------------------------------ evidence
    def _commit(self, results: list[CheckResult], planner: Planner) -> None:
        from preservation.catalog import audit_queries as aq
        from preservation.catalog import queries as q

        p = self.p
        run_id = self.summary.run_id
        unexpected: list[Finding] = []
        unexpected_rows: list[dict[str, Any]] = []
        if p.mode == "inventory":
            unexpected, unexpected_rows = self._scan_unexpected({r.task.copy_id for r in results})
        rows = list(
            result_rows(results, run_id=run_id, store=p.store, site=p.site, algorithm=p.algorithm)
        )
        rows.extend(unexpected_rows)
        if rows:
            written = self.log.write(rows)
            self.summary.log_files.extend(str(w) for w in written)
        checkpoint("audit:before-commit")
        updates: list[dict[str, Any]] = []
        findings: list[Finding] = list(unexpected)
        for r in results:
            info = OUTCOMES[r.outcome]
            if r.outcome == "pass":
                if not p.advance_on_pass:
                    continue
                detail = f"{r.mode} run {run_id}"
            else:
                detail = f"{info.code} {r.outcome}: {r.detail} ({r.mode} run {run_id})"
                findings.append(
                    Finding(
                        kind=r.outcome,
                        aip_id=r.task.aip_id,
                        version_id=r.task.version_id,
                        version=r.task.version,
                        store=p.store,
                        path=r.task.path,
                        key=r.task.key,
                        detail=r.detail,
                        evidence=_evidence(r),
                    )
                )
            updates.append(
                {
                    "id": r.task.file_copy_id,
                    "last_verified_at": r.started,
                    "outcome": info.file_copy_outcome,
                    "detail": detail[:2000],
                }
            )
        now = utcnow()
        with self.repo.catalog.session() as s:
            aq.record_checks(s, updates)
            findings = [_with_file_id(s, f) for f in findings]
            notes = record_findings(s, findings, run_id=run_id, when=now)
            self._add_totals(results, unexpected)
            for n in notes:
                self.notes[n.incident] = n
                if n.incident not in self.totals["incidents"]:
                    self.totals["incidents"].append(n.incident)
            self.totals["stopped_by"] = planner.stopped_by
            q.set_job_state(s, run_id, "running", result=self.totals)

    def _scan_unexpected(self, copy_ids: set[int]) -> tuple[list[Finding], list[dict[str, Any]]]:
        """Objects under a copy's prefix that the catalogue does not know (inventory)."""
        from preservation.catalog import audit_queries as aq

        p = self.p
        findings: list[Finding] = []
        rows: list[dict[str, Any]] = []
        for copy_id in sorted(copy_ids - self.scanned_copies):
            self.scanned_copies.add(copy_id)
            info = self.copy_info[copy_id]
            prefix = join_key(info.aip_id, f"v{info.version}") + "/"
            listing = iter(self.store.list(prefix))
            while batch := list(itertools.islice(listing, 1000)):
                paths = {o.key[len(prefix) :]: o for o in batch}
                with self.repo.catalog.session() as s:
                    known = aq.known_object_paths(s, info.version_id, info.version, list(paths))
                for path, obj in paths.items():
                    if path in known:
                        continue
                    findings.append(
                        Finding(
                            kind="unexpected",
                            aip_id=info.aip_id,
                            version_id=info.version_id,
                            version=info.version,
                            store=p.store,
                            path=path,
                            key=obj.key,
                            detail=f"object {obj.key} ({obj.size} bytes) is not in the catalogue",
                            evidence={"size": obj.size},
                        )
                    )
                    rows.append(
                        unexpected_row(
                            run_id=self.summary.run_id,
                            aip=info.aip_id,
                            version=info.version,
                            path=path,
                            key=obj.key,
                            store=p.store,
                            site=p.site,
                            actual_size=obj.size,
                            started=utcnow(),
                        )
                    )
        return findings, rows

    def _add_totals(self, results: list[CheckResult], unexpected: list[Finding]) -> None:
        t = self.totals
        for r in results:
            t["checked"] += 1
            nbytes = (r.actual_size or 0) if r.mode != "inventory" else 0
            t["bytes"] += nbytes
            t["outcomes"][r.outcome] = t["outcomes"].get(r.outcome, 0) + 1
            c = t["copies"].setdefault(
                str(r.task.copy_id),
                {
                    "aip": r.task.aip_id,
                    "version": r.task.version,
                    "version_id": r.task.version_id,
                    "checked": 0,
                    "bytes": 0,
                    "failed": [],
                    "failed_count": 0,
                    "objects": [],
                },
            )
            c["checked"] += 1
            c["bytes"] += nbytes
            if r.failed:
                c["failed_count"] += 1
                if len(c["failed"]) < MAX_LISTED_FAILURES:
                    c["failed"].append([r.task.path, r.outcome])
                    if r.task.file_uuid:
                        c["objects"].append(r.task.file_uuid)
        if unexpected:
            t["outcomes"]["unexpected"] = t["outcomes"].get("unexpected", 0) + len(unexpected)
        s = self.summary
        s.checked, s.bytes = t["checked"], t["bytes"]
        s.outcomes = dict(t["outcomes"])
        s.copies = len(t["copies"]) + int(t["copies_done"])

    # ------------------------------------------------------------------ end of run
    def _flush(self, keep: set[str]) -> None:
        """Events of the copies not in ``keep`` (their checks of this run are done)."""
        done = [int(c) for c in self.totals["copies"] if c not in keep]
        _refresh_copies(self.repo, done)
        self.summary.events += emit_run_events(
            self.repo, self.summary.run_id, self.p.store, self.p.site, self.totals, keep=keep
        )

    def _finish(self, state: str, error: str | None = None) -> None:
        from preservation.catalog import queries as q

        s = self.summary
        self._flush(keep=set())
        s.incidents = [n.to_dict() for n in self.notes.values()]
        if self.notes:
            from preservation.audit.alerts import alert_findings

            delivery = alert_findings(
                self.repo,
                list(self.notes.values()),
                kind="audit",
                subject=(
                    f"audit of store {self.p.store} ({self.p.mode}): {len(self.notes)}"
                    f" problem(s) in {s.checked} checks"
                ),
                summary={
                    "run": s.run_id,
                    "store": self.p.store,
                    "site": self.p.site,
                    "mode": self.p.mode,
                    "checked": s.checked,
                    "outcomes": s.outcomes,
                },
            )
            s.alert = delivery.to_dict() if delivery else None
        s.finished = utcnow()
        s.state = state
        s.error = error
        self.totals["stopped_by"] = s.stopped_by
        with self.repo.catalog.session() as db:
            q.set_job_state(db, s.run_id, state, result=self.totals, error=error)

    def _repair(self) -> None:
        from preservation.audit.repair import repair_incidents

        ids = [
            n.incident
            for n in self.notes.values()
            if OUTCOMES[n.kind].repairable and n.kind != "unexpected"
        ]
        if ids:
            report = repair_incidents(self.repo, ids, hold_lease=False)
            self.summary.repair = report.to_dict()


@dataclass
class _Batch:
    """A batch being checked: its results to come, the manifest findings made while
    planning it and the copies it touches (kept out of event flushes meanwhile)."""

    future: Future[list[CheckResult]]
    extra: list[CheckResult]
    copies: set[str]


def object_key(aip_id: str, origin_version: int, path: str) -> str:
    """The store key of a file of an AIP: ``<aip>/v<version holding the bytes>/<path>``.

    The parts come from the catalogue (validated at ingest); the store validates the
    whole key again before it touches anything."""
    return f"{aip_id}/v{origin_version}/{path}"


def _for_path(listed: dict[str, str] | None, algorithms: Sequence[str]) -> dict[str, str]:
    """A file's manifest digests of ``algorithms`` (in their order)."""
    if not listed:
        return {}
    return {a: listed[a] for a in algorithms if a in listed}


def _catalogue_digest(c: Any, algorithm: str) -> str | None:
    if algorithm == "sha256":
        return str(c.sha256)
    if algorithm == "sha512":
        return c.sha512 if c.sha512 else None
    return None


def _evidence(r: CheckResult) -> dict[str, Any]:
    return {
        "mode": r.mode,
        "size": r.task.size,
        "actual_size": r.actual_size,
        "digests": [
            {"algorithm": d.algorithm, "expected": d.expected, "actual": d.actual}
            for d in r.digests
        ],
        "worker": r.worker,
        "checked_at": r.started.isoformat(),
    }


def _with_file_id(s: Session, f: Finding) -> Finding:
    if f.kind == "unexpected":
        return f
    from dataclasses import replace

    from preservation.catalog import audit_queries as aq

    ref = aq.file_ref(s, f.version_id, f.path)
    return replace(f, file_id=ref.file_id)


def _refresh_copies(repo: Repository, copy_ids: list[int]) -> None:
    from preservation.catalog import audit_queries as aq

    if copy_ids:
        with repo.catalog.session() as s:
            aq.refresh_copy_states(s, copy_ids, utcnow())


def finish_interrupted(repo: Repository, store: str) -> list[str]:
    """Close the audit runs of ``store`` that died (call with the store's lease held):
    their PREMIS events are emitted from the totals they committed, their copies'
    states refreshed, and the run marked failed ("interrupted")."""
    from preservation.catalog import queries as q

    with repo.catalog.session() as s:
        jobs = [j for j in q.unfinished_jobs(s, AUDIT_KIND) if j["params"].get("store") == store]
    finished: list[str] = []
    for job in jobs:
        # The store's lease is ours: no run of this store is alive anywhere.
        log.info("closing interrupted audit run %s of store %s", job["id"], store)
        totals = dict(job["result"] or {})
        totals.setdefault("copies", {})
        totals.setdefault("mode", job["params"].get("mode"))
        settings = repo.config.settings.stores.get(store)
        site = settings.site if settings else ""
        _refresh_copies(repo, [int(c) for c in totals["copies"]])
        emit_run_events(repo, job["id"], store, site, totals)
        with repo.catalog.session() as s:
            q.set_job_state(
                s,
                job["id"],
                "failed",
                result=totals,
                error=(
                    f"interrupted: {totals.get('checked', 0)} checks were recorded; the next"
                    " run continued with the rest"
                ),
            )
        finished.append(job["id"])
    return finished
