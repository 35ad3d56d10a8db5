"""The PREMIS evidence of audit runs: one ``fixity check`` event per AIP copy and run.

The outcome detail of each event lists the failed files of that copy (at most
:data:`EVENT_LISTED_FAILURES` by name, then a count and a pointer to the Parquet
audit log), so the event log grows by one event per copy per run, not per file.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from preservation.jobs import software_agent
from preservation.model import Agent, Event

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from preservation.repository import Repository

EVENT_LISTED_FAILURES = 20  # failed files named in one event's outcome detail
EVENT_GROUP = 100  # events appended per transaction
FLUSH_COPIES = 1000  # a run emits the events of finished copies beyond this many


def _event(run_id: str, store: str, site: str, totals: dict[str, Any], c: dict[str, Any],
           agent: Agent) -> Event:  # fmt: skip
    mode = totals.get("mode") or ""
    algorithms = ", ".join(totals.get("algorithms") or [])
    compared = (
        "presence, size and any stored checksum compared with the catalogue"
        if mode == "inventory"
        else f"{algorithms} of the content compared with the catalogue"
        + (" and the bag manifest" if mode == "full" else "")
    )
    failed = c["failed_count"]
    listed = "; ".join(
        f"{path} ({outcome})" for path, outcome in c["failed"][:EVENT_LISTED_FAILURES]
    )
    more = failed - min(len(c["failed"]), EVENT_LISTED_FAILURES)
    outcome_detail = (
        f"{c['checked']} files checked, all passed"
        if not failed
        else f"{failed} of {c['checked']} files failed: {listed}"
        + (f"; and {more} more (audit log, run {run_id})" if more > 0 else "")
    )
    return Event(
        type="fixity check",
        outcome="failure" if failed else "success",
        detail=(
            f"audit run {run_id}{' (' + mode + ')' if mode else ''}: {c['checked']} files"
            f" ({c['bytes']} bytes read) of AIP {c['aip']} v{c['version']} on store {store}"
            f" (site {site}); {compared}"
        ),
        outcome_detail=outcome_detail,
        agents=[(agent.identifier, "executing program")],
        objects=list(c.get("objects") or []),
    )


def emit_run_events(
    repo: Repository,
    run_id: str,
    store: str,
    site: str,
    totals: dict[str, Any],
    *,
    keep: Collection[str] = (),
    group: int = EVENT_GROUP,
) -> int:
    """One PREMIS fixity check event per AIP copy in ``totals["copies"]`` (except the
    copies in ``keep``, still being checked); returns how many.

    Each group of events is appended in one transaction together with the run's
    totals without those copies (counted in ``copies_done``), so a crash neither loses
    nor repeats an event. The event documents are then published to the stores.
    """
    from preservation import eventlog
    from preservation.catalog import queries as q
    from preservation.catalog.queries import stores_with_copies

    agent = software_agent()
    pending = [k for k in sorted(totals.get("copies", {}), key=int) if k not in keep]
    emitted = 0
    for i in range(0, len(pending), group):
        chunk = pending[i : i + group]
        published: list[tuple[str, Event, bytes | None, list[str]]] = []
        with repo.catalog.session() as s:
            for key in chunk:
                c = totals["copies"][key]
                event = _event(run_id, store, site, totals, c, agent)
                doc = eventlog.append(
                    s,
                    event,
                    aip_id=c["aip"],
                    version_id=c["version_id"],
                    version=c["version"],
                    store_name=store,
                    agents=[agent],
                )
                published.append((c["aip"], event, doc, stores_with_copies(s, c["aip"])))
            for key in chunk:
                totals["copies"].pop(key)
            totals["copies_done"] = int(totals.get("copies_done", 0)) + len(chunk)
            q.set_job_state(s, run_id, _job_state(s, run_id), result=totals)
        emitted += len(chunk)
        configured = set(repo.config.settings.stores)
        for aip, event, doc, targets in published:
            if doc is not None:
                eventlog.publish(
                    [repo.store(n) for n in targets if n in configured], aip, event, doc
                )
    return emitted


def _job_state(s: Session, job_id: str) -> str:
    from preservation.catalog.queries import get_job

    job = get_job(s, job_id)
    return str(job["state"]) if job else "running"
