"""Audit, repair and scheduler commands."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import click
from rich.table import Table

from preservation.cli.app import (
    cli,
    console,
    emit,
    fail,
    human_bytes,
    json_option,
    show_json,
    state,
)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM and SIGINT set the event (work stops at its next safe point)."""
    stop = threading.Event()
    previous: dict[int, Any] = {}

    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


# ---------------------------------------------------------------- audit
@cli.group("audit")
def audit_group() -> None:
    """Fixity audits: run them, see coverage."""


@audit_group.command("run")
@click.option("--store", help="Only this store (default: every store in turn).")
@click.option(
    "--mode",
    type=click.Choice(["full", "inventory", "sample"]),
    help="Default: the store's audit_mode (cold stores: inventory).",
)
@click.option("--aip", "aip_id", help="Only this AIP (every file, due or not).")
@click.option("--budget", help="Stop after 50GB, 2h, 1000objects (combine: 50GB,2h) or 'auto'.")
@click.option("--all-digests", is_flag=True, help="Check every algorithm the manifests carry.")
@click.option("--algorithm", help="Audit digest (default: audit.algorithm, sha256).")
@click.option("--seed", type=int, help="Seed of the sample (mode sample).")
@click.option("--fraction", type=float, help="Share of file copies sampled (mode sample).")
@click.option("--ahead", is_flag=True, help="Also copies not yet due, least recently verified.")
@click.option(
    "--repair/--no-repair",
    "repair",
    default=None,
    help="Repair what is found (default: audit.auto_repair).",
)
@click.option(
    "--workers", type=click.IntRange(1, 256), help="Worker threads (default: audit.workers)."
)
@json_option
def audit_run(
    store: str | None,
    mode: str | None,
    aip_id: str | None,
    budget: str | None,
    all_digests: bool,
    algorithm: str | None,
    seed: int | None,
    fraction: float | None,
    ahead: bool,
    repair: bool | None,
    workers: int | None,
) -> None:
    """Check due copies (least recently verified first) and record the evidence.

    Exit status 0 when every check passed, 4 when any found a problem. SIGTERM stops
    the run at the next batch; what it checked is kept and the next run continues.
    """
    from preservation.audit.early import start_early_reads

    repo = state().repository()
    # One AIP in full on a local store: its big files are read while the catalogue
    # layer is imported and opened (the run uses those reads once it holds the
    # store's lease, where nothing changed; see preservation.audit.early).
    early = start_early_reads(
        repo,
        store=store,
        aip=aip_id,
        mode=mode,
        algorithm=algorithm,
        all_digests=all_digests,
        budget=budget,
        fraction=fraction,
        workers=workers,
    )
    try:
        from preservation.audit.runner import AuditRequest, run_audit
        from preservation.progress import reporter

        request = AuditRequest(
            store=store,
            mode=mode,  # type: ignore[arg-type]
            aip=aip_id,
            budget=budget,
            all_digests=all_digests,
            algorithm=algorithm,
            seed=seed,
            fraction=fraction,
            ahead=ahead,
            repair=repair,
            workers=workers,
        )
        with _stop_on_signals() as stop, reporter(not state().json, bytes_mode=False) as progress:
            summaries = run_audit(
                repo, request, progress=progress, should_stop=stop.is_set, early=early
            )
    finally:
        if early is not None:
            early.close()
    data = {
        "ok": all(s.failures == 0 for s in summaries),
        "runs": [s.to_dict() for s in summaries],
    }

    def human() -> None:
        t = Table("store", "mode", "run", "checked", "read", "failures", "stopped by", "events")
        for s in summaries:
            t.add_row(
                s.store,
                s.mode,
                s.run_id[:8],
                str(s.checked),
                human_bytes(s.bytes),
                f"[red]{s.failures}[/red]" if s.failures else "0",
                s.stopped_by or "",
                str(s.events),
            )
        console.print(t)
        for s in summaries:
            for inc in s.incidents:
                console.print(
                    f"[red]incident {inc['incident']}[/red] {inc['severity']} {inc['kind']}:"
                    f" {s.store} {inc['aip']} v{inc['version']} {inc['path']} ({inc['detail']})"
                )
            if s.repair:
                console.print(
                    f"repair: {s.repair['repaired']} repaired,"
                    f" {s.repair['critical']} critical, {s.repair['failed']} failed"
                )

    emit(data, human)
    if not data["ok"]:
        fail(4)


@audit_group.command("status")
@click.option("--runs", type=click.IntRange(0, 1000), default=10, show_default=True)
@json_option
def audit_status_cmd(runs: int) -> None:
    """Coverage (share of copies verified within their interval), overdue copies,
    open incidents and the last runs."""
    from preservation.audit.status import audit_status

    repo = state().repository()
    data = audit_status(repo, runs)

    def human() -> None:
        t = Table(
            "store",
            "site",
            "mode",
            "interval",
            "files",
            "coverage",
            "overdue",
            "failing",
            "incidents",
        )
        for s in data["stores"]:
            t.add_row(
                s["store"],
                s["site"],
                s["mode"],
                f"{s['interval_days']} d",
                str(s["file_copies"]),
                f"{s['coverage'] * 100:.1f} %",
                str(s["overdue"]),
                str(s["failing"]),
                ", ".join(f"{k} {v}" for k, v in s["open_incidents"].items()) or "0",
            )
        console.print(t)
        r = Table("run", "store", "mode", "state", "started", "checked", "outcomes", "stopped by")
        for j in data["runs"]:
            r.add_row(
                j["run_id"][:8],
                j["store"] or "",
                j["mode"] or "",
                j["state"],
                (j["started"] or "")[:19],
                str(j["checked"]),
                ", ".join(f"{k} {v}" for k, v in j["outcomes"].items()),
                j["stopped_by"] or "",
            )
        console.print(r)

    emit(data, human)


@audit_group.command("incidents")
@click.option("--all", "all_states", is_flag=True, help="Closed and repaired ones too.")
@click.option("--store", help="Only this store.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True)
@json_option
def audit_incidents(all_states: bool, store: str | None, limit: int) -> None:
    """Incidents (open ones by default) with their evidence."""
    from preservation.catalog import audit_queries as aq
    from preservation.catalog.models import INCIDENT_STATES

    repo = state().repository()
    with repo.catalog.session() as s:
        rows = aq.list_incidents(
            s,
            states=INCIDENT_STATES if all_states else aq.OPEN_INCIDENT_STATES,
            store_name=store,
            limit=limit,
        )
    emit(rows, lambda: show_json(rows))


# ---------------------------------------------------------------- repair
@cli.command("repair")
@click.argument("incidents", nargs=-1, type=int)
@click.option("--all", "all_open", is_flag=True, help="Every open repairable incident.")
@click.option("--store", help="With --all: only incidents of this store.")
@json_option
def repair_cmd(incidents: tuple[int, ...], all_open: bool, store: str | None) -> None:
    """Replace bad copies from good copies on other stores (the bad object is kept in
    quarantine/<incident>/ on its store). Exit 4 when something could not be repaired."""
    from preservation.audit.repair import repair_incidents
    from preservation.errors import UsageError

    if bool(incidents) == all_open:
        raise UsageError("give INCIDENT numbers or --all (not both)")
    if store and not all_open:
        raise UsageError("--store goes with --all")
    from preservation.access.accesslog import cli_change

    repo = state().repository()
    asked = {"incidents": list(incidents), "all": all_open, "store": store}
    with cli_change(repo, "repair", detail=asked) as logged:
        report = repair_incidents(repo, list(incidents) if incidents else None, store=store)
        logged["results"] = {str(r.incident): r.state for r in report.results}
    data = report.to_dict()

    def human() -> None:
        t = Table("incident", "result", "store", "path", "from", "quarantine", "detail")
        for r in report.results:
            colour = {"repaired": "green", "closed": "green", "critical": "bold red"}.get(
                r.state, "red"
            )
            t.add_row(
                str(r.incident),
                f"[{colour}]{r.state}[/{colour}]",
                r.store or "",
                r.path or "",
                r.source or "",
                r.quarantine_key or "",
                r.detail,
            )
        console.print(t)
        if report.count("critical"):
            console.print("[bold red]NO GOOD COPY LEFT for some files: see the incidents above[/]")

    emit(data, human)
    if not report.ok:
        fail(4)


# ---------------------------------------------------------------- scheduler
@cli.group("scheduler", invoke_without_command=True)
@click.pass_context
def scheduler_group(ctx: click.Context) -> None:
    """Run the scheduler in the foreground (SIGTERM stops it cleanly)."""
    if ctx.invoked_subcommand is not None:
        return
    from preservation.audit.scheduler import STOP, SchedulerService

    repo = state().repository()
    service = SchedulerService(repo)
    STOP.clear()

    def handler(signum: int, _frame: Any) -> None:
        STOP.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        service.run()
    finally:
        for sig, prev in old.items():
            signal.signal(sig, prev)


@scheduler_group.command("run-once")
@click.argument("job")
@json_option
def scheduler_run_once(job: str) -> None:
    """Run JOB once now (for cron or a systemd timer): audit:<store>, audit (every
    store), replication, or a job slot. Exit 9 when the same job runs elsewhere."""
    from preservation.audit.scheduler import STOP, run_once

    repo = state().repository()
    STOP.clear()

    def handler(signum: int, _frame: Any) -> None:
        STOP.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        result = run_once(repo, job)
    finally:
        for sig, prev in old.items():
            signal.signal(sig, prev)
    emit({"job": job, "result": result}, lambda: show_json({"job": job, "result": result}))
    runs = [
        r
        for v in ([result] if job != "audit" else list(result.values()))
        for r in (v or {}).get("runs", [])
    ]
    if any(r.get("failures") for r in runs):
        fail(4)


@scheduler_group.command("list")
@json_option
def scheduler_list() -> None:
    """The configured jobs, whether they are registered, and their next run."""
    from preservation.audit.scheduler import SchedulerService

    repo = state().repository()
    rows = SchedulerService(repo).list_jobs()

    def human() -> None:
        t = Table("job", "schedule", "registered", "next run", "note")
        for r in rows:
            t.add_row(
                r["id"],
                r["schedule"],
                "yes" if r["registered"] else "no",
                (r["next_run"] or "")[:19],
                r["reason"],
            )
        console.print(t)

    emit(rows, human)
