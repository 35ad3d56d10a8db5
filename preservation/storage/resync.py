"""Store resync: restore a lost or emptied store from a good one, as a resumable batch.

``preservation store resync --from GOOD --to LOST`` copies every AIP version the
catalogue places on ``LOST`` from ``GOOD`` through replication's copy-and-verify path
(:class:`preservation.storage.replicate.Replicator`, its sources restricted to
``GOOD``): each object is written with ``put(..., digests={"sha256": ...})`` so the
target verifies the bytes end to end, read back as the replication policy says,
``bagit.txt`` last; the copy becomes ``verified`` (its file rows ``pass``) with a
PREMIS ``replication`` event naming source and target. Objects already on the target
with the right size and SHA-256 are kept, not rewritten. Then each AIP's event log
(``<aip>/events/``, and a deletion tombstone) is copied where the target lacks it.

Resuming. The batch is a journal row (``jobs``, kind ``resync``, one per source and
target) plus the copies' own states: the first run puts every copy on the target back
in the replication queue (``pending``: the store lost them) and records that in the
job; each copy leaves the queue when it is verified. A run that is killed (power cut,
``PRESERVATION_FAULT_KILL_AT``) leaves the job ``running`` with a dead process; the
next ``store resync`` with the same stores takes it over and copies only what is not
verified yet (an object cut off mid-copy is cleared and written again, as
replication does). A resync of the same stores running in a live process is refused
(JobBusy).

Crash point for tests: ``resync:after-copy`` (after each verified copy).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preservation.errors import JobBusy, PreservationError, UsageError
from preservation.faults import checkpoint
from preservation.storage.replicate import CopyResult, Replicator

if TYPE_CHECKING:
    from preservation.catalog import replication_queries as rq
    from preservation.progress import Reporter
    from preservation.repository import Repository
    from preservation.storage.base import Store

log = logging.getLogger(__name__)

JOB_KIND = "resync"


@dataclass
class ResyncReport:
    source: str
    target: str
    job: str
    resumed: bool
    copies: int = 0  # copies the catalogue places on the target
    already: int = 0  # verified by an earlier (interrupted) run of this job
    verified: int = 0  # verified by this run
    failed: list[dict[str, Any]] = field(default_factory=list)
    objects_copied: int = 0
    objects_present: int = 0
    bytes_copied: int = 0
    event_documents: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["ok"] = self.ok
        return d


class _FromOneStore(Replicator):
    """Replication whose only source is the named store (the catalogue's copy states
    are not consulted: the store given is the one the operator trusts)."""

    def __init__(self, repo: Repository, source: str, **kwargs: Any) -> None:
        super().__init__(repo, **kwargs)
        self.source_name = source

    def _sources(self, claim: rq.Claim, candidates: Any) -> list[Store]:
        return super()._sources(claim, [self.source_name])


def _check_stores(repo: Repository, source: str, target: str) -> None:
    stores = repo.config.settings.stores
    repo.config.store_settings(source)  # ConfigError for unknown names
    repo.config.store_settings(target)
    if source == target:
        raise UsageError("--from and --to name the same store")
    if stores[source].cold:
        raise UsageError(f"store {source} is cold: its objects cannot be read without a restore")


def _start(repo: Repository, source: str, target: str) -> tuple[str, bool, bool]:
    """``(job id, resumed, copies already requeued)``: a new job, or the interrupted
    one of the same stores taken over."""
    from preservation.catalog import queries as q
    from preservation.catalog import recovery_queries as rcq
    from preservation.jobs import process_alive

    with repo.catalog.session() as s:
        for job in q.unfinished_jobs(s, JOB_KIND):
            params = job.get("params") or {}
            if params.get("source") != source or params.get("target") != target:
                continue
            if process_alive(job.get("host"), job.get("pid")):
                raise JobBusy(
                    job=f"resync of {target} from {source}",
                    holder=f"{job['id']} on {job.get('host')} pid {job.get('pid')}",
                )
            rcq.take_over_job(s, job["id"], host=socket.gethostname(), pid=os.getpid())
            requeued = bool((job.get("result") or {}).get("requeued"))
            return str(job["id"]), True, requeued
        job_id = q.start_job(s, JOB_KIND, {"source": source, "target": target})
        return job_id, False, False


def resync_store(
    repo: Repository,
    *,
    source: str,
    target: str,
    workers: int | None = None,
    readback: str | None = None,
    progress: Reporter | None = None,
) -> ResyncReport:
    """Restore ``target`` from ``source``; see the module docstring."""
    from preservation.catalog import queries as q
    from preservation.catalog import recovery_queries as rcq
    from preservation.eventlog import copy_log

    _check_stores(repo, source, target)
    job_id, resumed, requeued = _start(repo, source, target)
    report = ResyncReport(source, target, job_id, resumed)
    try:
        with repo.catalog.session() as s:
            copies = rcq.copies_on_store(s, target)
            if not requeued:
                rcq.requeue_copies(s, [c.copy_id for c in copies])
                q.set_job_state(s, job_id, "running", result={"requeued": True})
                copies = rcq.copies_on_store(s, target)
        report.copies = len(copies)
        replicator = _FromOneStore(
            repo, source, workers=workers, readback=readback, progress=progress
        )
        replicator.progress.start(f"resync {target} from {source}", None)
        for c in copies:
            if c.state == "verified":
                report.already += 1
                continue
            result: CopyResult = replicator.replicate(c.copy_id)
            if result.outcome == "verified":
                report.verified += 1
                report.objects_copied += result.copied
                report.objects_present += result.present
                report.bytes_copied += result.bytes_copied
                checkpoint("resync:after-copy")
            else:
                report.failed.append(
                    {
                        "aip": c.aip_id,
                        "version": c.version,
                        "outcome": result.outcome,
                        "error": result.error.message if result.error else result.note,
                    }
                )
        replicator.progress.done()
        with repo.catalog.session() as s:
            aips = rcq.aip_ids(s)
        src, dst = repo.store(source), repo.store(target)
        for aip_id, state in aips:
            try:
                report.event_documents += copy_log(src, dst, aip_id, tombstone=state == "deleted")
            except PreservationError as e:
                report.failed.append({"aip": aip_id, "events": True, "error": e.message})
    except BaseException as e:
        if not isinstance(e, PreservationError):
            raise  # a kill or a bug: the job stays running and the next run takes over
        with repo.catalog.session() as s:
            q.set_job_state(s, job_id, "failed", error=f"{e.code}: {e.message}")
        raise
    with repo.catalog.session() as s:
        summary = {k: v for k, v in report.to_dict().items() if k != "failed"}
        summary["failed"] = len(report.failed)
        summary["requeued"] = True
        q.set_job_state(
            s,
            job_id,
            "done" if report.ok else "failed",
            result=summary,
            error=None if report.ok else f"{len(report.failed)} copies or event logs failed",
        )
    log.info(
        "resync %s -> %s: %d copies (%d verified now, %d before), %d failed",
        source,
        target,
        report.copies,
        report.verified,
        report.already,
        len(report.failed),
    )
    return report


__all__ = ["ResyncReport", "resync_store"]
