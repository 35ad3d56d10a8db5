"""Replication: every AIP version to every replica store, verified, resumable.

The queue is the catalogue: ingest records one ``pending`` copy per replica store
(:mod:`preservation.catalog.record`), and :func:`replicate_pending` also queues a copy
for every version that lacks one on a replica store added later. A run takes the
queued (``pending`` or ``failed``) copies oldest first and replicates them one after
the other, the objects of each copy on ``workers`` threads.

One copy (one AIP version onto one store):

1. **Claim** it in the catalogue (row lock) and journal the attempt as a ``jobs`` row
   of kind ``replication``. A ``running`` job of a process that is gone (SIGKILL,
   power cut) is closed as interrupted. After an interrupted or failed attempt, what
   it may have left on the target is cleared first: unfinished multipart uploads of
   the copy's keys on S3 stores (an upload cut off by a store going down cannot be
   aborted at that moment), temporary files of the copy's keys on local stores.
   Finished objects are never removed: they are checked and kept.
2. **Source**: a verified copy of the same version on a configured, warm store whose
   ``bagit.txt`` is there (the primary first). Cold stores are never read.
3. **Objects**: every file of the version, at ``<aip>/v<origin version>/<path>`` (a
   later version that reuses payload points at the earlier version's objects, so a
   new version copies only what the replica lacks). Nothing is held per object: the
   files are read from the catalogue a page at a time (keyset on the path), the
   target's version prefixes are listed once per copy into a scratch database (the
   stores' listing order is not relied on), at most a bounded window of objects is in
   flight and only counts are kept of the objects done. An object the listing lacks,
   or lists with another size, is written without a further request; an object
   listed with the right size is kept when its SHA-256 is right: S3 stores report the
   stored SHA-256 in ``head``; local stores keep no checksum, so the existing file is
   re-hashed (a read is cheaper than a rewrite, and a rewrite would not be checked
   either). Anything else is written with ``put(..., digests={"sha256": ...},
   size=...)``: the store verifies the bytes end to end (S3 sends ``ChecksumSHA256``,
   the server checks it), so a corrupt source is refused and the next source is tried.
   An S3 store configured with ``object_lock_mode``/``object_lock_days`` writes every
   object with that retention.
4. **Read-back** (``policy.replication_readback``): ``head`` compares size and the
   stored checksum (size only on local stores, whose ``put`` hashed the bytes it wrote);
   ``full`` re-reads the object and hashes it. Cold stores are always checked by
   ``head`` (their objects cannot be read without a restore).
5. **Declare**: ``bagit.txt`` is written last, after every other object verified. A
   store holds an AIP version exactly when its ``bagit.txt`` is there, so a copy cut
   short is never declared.
6. **Commit** in one transaction: the copy ``verified`` (``verified_at``), every file
   row ``pass`` with ``last_verified_at`` (one bulk ``UPDATE``, no row in memory), the
   job ``done``, and one PREMIS ``replication`` event for the version and target
   (source, target, counts, agent) appended to the event chain; the event document is
   then written beside the AIP on every store holding it (:mod:`preservation.eventlog`).

Failures: a transient error (a store that is down) leaves the copy queued in its
state with the error in its job; the copy's objects not yet started are not tried, and
no further copy is tried on that store in this run; the next run (``preservation
replicate --pending``, or the scheduler's hourly catch-up) finishes it. A permanent
error (a source whose bytes do not match the catalogue, access denied, ...) makes the
copy ``failed`` and records one ``replication`` event with outcome ``failure`` when the
copy first fails. Each object copy is retried
with exponential backoff (:mod:`preservation.storage.retry`), on top of the stores'
own per-request retries.

Crash points for tests (:mod:`preservation.faults`): ``replicate:after-claim``,
``replicate:mid-copy``, ``replicate:before-declare``, ``replicate:before-commit``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from preservation.catalog import queries as q
from preservation.catalog import replication_queries as rq
from preservation.errors import (
    DigestMismatch,
    NoSourceCopy,
    ObjectNotFound,
    PreservationError,
    StorageError,
    StoreUnavailable,
    UsageError,
)
from preservation.eventlog import append as append_event
from preservation.eventlog import publish
from preservation.executor import bounded_map
from preservation.faults import checkpoint
from preservation.hashing import hash_stream
from preservation.jobs import process_alive, software_agent
from preservation.model import Event, utcnow
from preservation.paths import join_key
from preservation.progress import Reporter, Silent
from preservation.scratch import name_key, open_scratch
from preservation.storage.base import Store
from preservation.storage.local import TMP_NAME, LocalStore
from preservation.storage.registry import as_s3
from preservation.storage.retry import retry

if TYPE_CHECKING:
    from preservation.storage.s3 import S3Store

log = logging.getLogger(__name__)

BAG_DECLARATION = "bagit.txt"
OBJECT_ATTEMPTS = 3
RETRY_BASE_DELAY = 0.5
RETRY_MAX_DELAY = 8.0
READBACK_MODES = ("head", "full")
FILE_PAGE = 2000  # file rows read from the catalogue at a time
LEFTOVER_PAGE = 5000  # keys cleared of leftovers at a time
LIST_CHUNK = 1000  # listed objects written to the scratch database at a time
LOOKUP_CHUNK = 500  # keys looked up in the scratch database at a time

T = TypeVar("T")


def object_key(aip_id: str, origin_version: int, path: str) -> str:
    return join_key(aip_id, f"v{origin_version}", path)


# --- results ----------------------------------------------------------------------


@dataclass
class CopyResult:
    """What became of one queued copy in one run.

    ``outcome``: ``verified`` (done), ``waiting`` (transient error; still queued),
    ``failed`` (permanent error; queued as failed), ``skipped`` (not attempted: its
    store is down in this run, or another worker holds it).
    """

    copy_id: int
    aip: str
    version: int
    store: str
    outcome: str
    sources: list[str] = field(default_factory=list)
    objects: int = 0
    copied: int = 0
    present: int = 0
    bytes_copied: int = 0
    seconds: float = 0.0
    error: PreservationError | None = None
    note: str = ""
    event: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "copy_id": self.copy_id,
            "aip": self.aip,
            "version": self.version,
            "store": self.store,
            "outcome": self.outcome,
            "sources": list(self.sources),
            "objects": self.objects,
            "copied": self.copied,
            "present": self.present,
            "bytes_copied": self.bytes_copied,
            "seconds": round(self.seconds, 3),
            "error": self.error.to_dict() if self.error is not None else None,
            "note": self.note,
            "event": self.event,
        }


@dataclass
class ReplicationReport:
    started: dt.datetime
    finished: dt.datetime | None
    workers: int
    readback: str
    enqueued: int = 0
    results: list[CopyResult] = field(default_factory=list)
    stores_down: dict[str, str] = field(default_factory=dict)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def ok(self) -> bool:
        return all(r.outcome == "verified" for r in self.results)

    @property
    def bytes_copied(self) -> int:
        return sum(r.bytes_copied for r in self.results)

    @property
    def objects_copied(self) -> int:
        return sum(r.copied for r in self.results)

    @property
    def exit_status(self) -> int:
        """0 when every copy taken verified; else the exit status of the first error
        (1 when copies were only skipped)."""
        for r in self.results:
            if r.error is not None:
                return r.error.exit_status
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        finished = self.finished or utcnow()
        seconds = (finished - self.started).total_seconds()
        return {
            "started": self.started.isoformat(),
            "finished": finished.isoformat(),
            "seconds": round(seconds, 3),
            "workers": self.workers,
            "readback": self.readback,
            "ok": self.ok,
            "enqueued": self.enqueued,
            "copies": {o: self.count(o) for o in ("verified", "waiting", "failed", "skipped")},
            "objects_copied": self.objects_copied,
            "bytes_copied": self.bytes_copied,
            "stores_down": dict(self.stores_down),
            "results": [r.to_dict() for r in self.results],
        }


@dataclass
class _Object:
    size: int
    copied: bool
    source: str | None


@dataclass
class _Tally:
    """What the objects of one copy came to (counted as they finish; none is kept)."""

    objects: int = 0
    copied: int = 0
    bytes_copied: int = 0
    sources: set[str] = field(default_factory=set)

    def add(self, obj: _Object) -> None:
        self.objects += 1
        if obj.copied:
            self.copied += 1
            self.bytes_copied += obj.size
        if obj.source:
            self.sources.add(obj.source)


class _Listing:
    """``key -> size`` of what a target holds under some version prefixes of one AIP,
    listed once and kept in a scratch database (not in memory): a version of any
    number of objects is looked up a page at a time. The stores' listing order is
    not relied on (SeaweedFS lists folder by folder). A failure of the scratch
    database (the local disk) is not a finding about the copy: ``sqlite3.Error``
    propagates and the attempt ends as interrupted, the copy still queued."""

    def __init__(self, target: Store, aip_id: str, versions: Sequence[int]) -> None:
        self.target = target
        self.aip_id = aip_id
        self.versions = versions
        self.count = 0
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> _Listing:
        self._db = open_scratch()
        try:
            self._db.execute(
                "CREATE TABLE listed (key BLOB PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID"
            )
            for v in self.versions:
                items = self.target.list(join_key(self.aip_id, f"v{v}") + "/")
                while chunk := [(name_key(i.key), i.size) for i in islice(items, LIST_CHUNK)]:
                    self._db.executemany("INSERT OR REPLACE INTO listed VALUES (?, ?)", chunk)
            self.count = int(self._db.execute("SELECT count(*) FROM listed").fetchone()[0])
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def sizes(self, keys: Sequence[str]) -> list[int | None]:
        """The listed size of each of ``keys`` (None: not listed)."""
        if not self.count or not keys:
            return [None] * len(keys)
        assert self._db is not None
        found: dict[bytes, int] = {}
        for start in range(0, len(keys), LOOKUP_CHUNK):
            chunk = [name_key(k) for k in keys[start : start + LOOKUP_CHUNK]]
            marks = ",".join("?" * len(chunk))
            found.update(
                self._db.execute(f"SELECT key, size FROM listed WHERE key IN ({marks})", chunk)
            )
        return [found.get(name_key(k)) for k in keys]


# --- the worker -------------------------------------------------------------------


class Replicator:
    """Replicates queued copies; one instance per run."""

    def __init__(
        self,
        repo: Any,
        *,
        workers: int | None = None,
        readback: str | None = None,
        progress: Reporter | None = None,
        object_attempts: int = OBJECT_ATTEMPTS,
        retry_base_delay: float = RETRY_BASE_DELAY,
        retry_max_delay: float = RETRY_MAX_DELAY,
    ) -> None:
        policy = repo.config.settings.policy
        self.repo = repo
        self.workers = workers or policy.replication_workers
        self.readback = readback or policy.replication_readback
        if self.workers < 1:
            raise UsageError(f"workers must be at least 1 (got {self.workers})")
        if self.readback not in READBACK_MODES:
            raise UsageError(f"readback must be head or full (got {self.readback!r})")
        self.progress = progress or Silent()
        self.object_attempts = object_attempts
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.agent = software_agent()
        self.down: dict[str, str] = {}
        self._progress_lock = threading.Lock()

    # -- catalogue transactions, retried while the catalogue is busy ------------

    def _db(self, fn: Callable[[Any], T]) -> T:
        def attempt() -> T:
            with self.repo.catalog.session() as s:
                return fn(s)

        return retry(attempt, base_delay=self.retry_base_delay, max_delay=self.retry_max_delay)

    # -- a run ---------------------------------------------------------------------

    def run(self, items: Sequence[rq.WorkItem], enqueued: int = 0) -> ReplicationReport:
        report = ReplicationReport(utcnow(), None, self.workers, self.readback, enqueued)
        self.progress.start("replicating", float(sum(i.bytes for i in items)) or None)
        try:
            for item in items:
                if item.store in self.down:
                    report.results.append(
                        CopyResult(
                            item.copy_id,
                            item.aip_id,
                            item.version,
                            item.store,
                            "skipped",
                            note=f"store {item.store} is unavailable in this run",
                        )
                    )
                    continue
                report.results.append(self.replicate(item.copy_id))
        finally:
            self.progress.done()
        report.finished = utcnow()
        report.stores_down = dict(self.down)
        return report

    def replicate(self, copy_id: int) -> CopyResult:
        """Replicate one queued copy; never raises for store trouble (see the result)."""
        t0 = time.monotonic()
        claim = self._db(
            lambda s: rq.claim_copy(
                s, copy_id, alive=process_alive, params={"readback": self.readback}
            )
        )
        if isinstance(claim, rq.NotClaimed):
            return CopyResult(
                copy_id, claim.aip_id, claim.version, claim.store, "skipped", note=claim.reason
            )
        checkpoint("replicate:after-claim")
        result = CopyResult(copy_id, claim.aip_id, claim.version, claim.store, "verified")
        try:
            sources = self._db(
                lambda s: rq.verified_sources(s, claim.version_id, exclude=claim.store)
            )
            self._copy(claim, sources, result)
            checkpoint("replicate:before-commit")
            self._commit(claim, result)
            self._copy_event_log(claim, result)
            log.info(
                "replicated %s v%d to %s: %d objects (%d copied, %d present)",
                claim.aip_id,
                claim.version,
                claim.store,
                result.objects,
                result.copied,
                result.present,
            )
        except PreservationError as e:
            self._fail(claim, result, e)
        except BaseException as e:
            self._fail(claim, result, StorageError(f"interrupted: {e!r}"), record=False)
            raise
        finally:
            result.seconds = time.monotonic() - t0
        return result

    # -- copying -------------------------------------------------------------------

    def _copy(self, claim: rq.Claim, candidates: Sequence[str], result: CopyResult) -> None:
        target = self.repo.store(claim.store)
        cold = self._settings(claim.store).cold
        sources = self._sources(claim, candidates)
        if claim.interrupted_jobs or claim.earlier_failures:
            for page in self._pages(claim.version_id, LEFTOVER_PAGE):
                clear_leftovers(
                    target, [object_key(claim.aip_id, f.origin_version, f.path) for f in page]
                )
        declaration, origins = self._db(
            lambda s: (
                rq.version_file(s, claim.version_id, BAG_DECLARATION),
                rq.version_origins(s, claim.version_id),
            )
        )
        if declaration is None:
            raise StorageError(
                f"AIP {claim.aip_id} v{claim.version}: the catalogue lists no {BAG_DECLARATION}"
            )
        # The files are walked page by page from the catalogue and the target's
        # listing is kept in a scratch database: memory does not grow with the number
        # of objects. One listing per version prefix tells which objects are there at
        # all, so that an object not there costs no request before it is written.
        with _Listing(target, claim.aip_id, sorted(origins)) as listed:
            # Once an object failed for good, the objects not yet started are not
            # tried: the copy has failed (or its store is down) and waits for the next
            # run.
            failed: list[PreservationError] = []

            def one(item: tuple[rq.CopyFile, int | None]) -> _Object:
                if failed:
                    raise failed[0]
                f, size = item
                try:
                    return self._object(claim.aip_id, f, sources, target, cold, size)
                except PreservationError as e:
                    failed.append(e)
                    raise

            def body() -> Iterator[tuple[rq.CopyFile, int | None]]:
                for page in self._pages(claim.version_id, FILE_PAGE):
                    files = [f for f in page if f.path != BAG_DECLARATION]
                    sizes = listed.sizes(
                        [object_key(claim.aip_id, f.origin_version, f.path) for f in files]
                    )
                    yield from zip(files, sizes, strict=True)

            tally = _Tally()
            half = (sum(origins.values()) - 1) // 2
            for i, obj in enumerate(bounded_map(one, body(), self.workers)):
                tally.add(obj)
                if i == half:
                    checkpoint("replicate:mid-copy")
            checkpoint("replicate:before-declare")
            bagit = object_key(claim.aip_id, declaration.origin_version, declaration.path)
            tally.add(one((declaration, listed.sizes([bagit])[0])))
        result.objects = tally.objects
        result.copied = tally.copied
        result.present = tally.objects - tally.copied
        result.bytes_copied = tally.bytes_copied
        used = tally.sources
        result.sources = [s.name for s in sources if s.name in used] or [sources[0].name]

    def _pages(self, version_id: int, size: int) -> Iterator[list[rq.CopyFile]]:
        """The version's files, one page (one short catalogue transaction) at a time."""
        after: str | None = None
        while True:
            fetch = partial(rq.version_files_page, version_id=version_id, after=after, limit=size)
            page = self._db(fetch)
            if not page:
                return
            yield page
            if len(page) < size:
                return
            after = page[-1].path

    def _settings(self, name: str) -> Any:
        return self.repo.config.store_settings(name)

    def _sources(self, claim: rq.Claim, candidates: Sequence[str]) -> list[Store]:
        """Readable stores holding the declared version, in preference order."""
        configured = self.repo.config.settings.stores
        readable = [n for n in candidates if n in configured and not configured[n].cold]
        usable = [n for n in readable if n not in self.down]
        declaration = join_key(claim.aip_id, f"v{claim.version}", BAG_DECLARATION)
        found: list[Store] = []
        first_error: PreservationError | None = next(
            (StoreUnavailable(store=n, reason=self.down[n]) for n in readable if n in self.down),
            None,
        )
        for name in usable:
            store = self.repo.store(name)
            try:
                store.head(declaration)
            except ObjectNotFound:
                log.warning("%s: %s v%d is not declared there", name, claim.aip_id, claim.version)
                continue
            except PreservationError as e:
                if e.transient:
                    self.down[name] = e.message
                first_error = first_error or e
                continue
            found.append(store)
        if not found:
            if first_error is not None and first_error.transient:
                raise first_error
            raise NoSourceCopy(aip=claim.aip_id, version=claim.version)
        return found

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        def on_retry(attempt: int, err: PreservationError, delay: float) -> None:
            log.warning(
                "%s failed (attempt %d of %d): %s; retrying in %.2fs",
                what,
                attempt,
                self.object_attempts,
                err,
                delay,
            )

        return retry(
            fn,
            attempts=self.object_attempts,
            base_delay=self.retry_base_delay,
            max_delay=self.retry_max_delay,
            on_retry=on_retry,
        )

    def _object(
        self,
        aip_id: str,
        f: rq.CopyFile,
        sources: Sequence[Store],
        target: Store,
        cold: bool,
        listed_size: int | None,
    ) -> _Object:
        """Copy one object unless it is there intact. ``listed_size``: its size in the
        target's listing, None when the listing does not have it."""
        key = object_key(aip_id, f.origin_version, f.path)
        label = f"{target.name}:{key}"
        first = [True]

        def attempt() -> _Object:
            # The listing is only good for the first attempt: a failed attempt may
            # have written the object since.
            if first[0] and listed_size is None:
                present, hashed = False, False
            elif first[0] and listed_size != f.size:
                log.warning(
                    "%s has %d bytes, expected %d: replacing it", label, listed_size, f.size
                )
                present, hashed = False, False
            else:
                present, hashed = self._present(target, key, f)
            first[0] = False
            if present:
                if self.readback == "full" and not cold and not hashed:
                    self._readback(target, key, f, full=True)
                return _Object(f.size, False, None)
            source = self._put_from(sources, target, key, f)
            self._readback(target, key, f, full=self.readback == "full" and not cold)
            return _Object(f.size, True, source)

        obj: _Object = self._retry(attempt, f"replicating {label}")
        with self._progress_lock:
            self.progress.advance(f.size)
        return obj

    def _present(self, target: Store, key: str, f: rq.CopyFile) -> tuple[bool, bool]:
        """``(present with the right size and sha256, established by hashing)``."""
        try:
            info = target.head(key)
        except ObjectNotFound:
            return False, False
        if info.size != f.size:
            log.warning(
                "%s:%s has %d bytes, expected %d: replacing it", target.name, key, info.size, f.size
            )
            return False, False
        if info.sha256 is not None:
            if info.sha256 != f.sha256:
                log.warning("%s:%s has another sha256: replacing it", target.name, key)
                return False, False
            return True, False
        with target.open(key) as fh:
            digests, size = hash_stream(fh, ("sha256",))
        if size != f.size or digests["sha256"] != f.sha256:
            log.warning("%s:%s differs from the catalogue: replacing it", target.name, key)
            return False, True
        return True, True

    def _put_from(self, sources: Sequence[Store], target: Store, key: str, f: rq.CopyFile) -> str:
        """Copy from the first source whose object is there and intact; returns its name.

        A missing object or bytes that do not match the catalogue on one source make
        the next source be tried; the first such error is raised when none is left.
        """
        first: PreservationError | None = None
        for source in sources:
            try:
                with source.open(key) as fh:
                    target.put(key, fh, digests={"sha256": f.sha256}, size=f.size, overwrite=True)
                return source.name
            except (ObjectNotFound, DigestMismatch) as e:
                if isinstance(e, ObjectNotFound) and e.fields.get("store") == target.name:
                    raise
                log.error("%s: cannot copy %s from there: %s", source.name, key, e)
                first = first or e
        assert first is not None
        raise first

    def _readback(self, target: Store, key: str, f: rq.CopyFile, *, full: bool) -> None:
        label = f"{target.name}:{key} (read back)"
        if full:
            with target.open(key) as fh:
                digests, size = hash_stream(fh, ("sha256",))
            found = digests["sha256"]
        else:
            info = target.head(key)
            size, found = info.size, info.sha256 or f.sha256
        if size != f.size:
            raise DigestMismatch(path=label, algorithm="size", expected=str(f.size), found=size)
        if found != f.sha256:
            raise DigestMismatch(path=label, algorithm="sha256", expected=f.sha256, found=found)

    # -- recording -------------------------------------------------------------------

    def _event(self, claim: rq.Claim, result: CopyResult, outcome: str, note: str) -> Event:
        target = self._settings(claim.store)
        sources = ", ".join(f"{n} ({self._settings(n).site})" for n in result.sources) or "(none)"
        return Event(
            type="replication",
            outcome=outcome,  # type: ignore[arg-type]
            detail=(
                f"AIP {claim.aip_id} version {claim.version}: source store {sources};"
                f" target store {claim.store} ({target.site})"
            ),
            outcome_detail=note,
            agents=[(self.agent.identifier, "executing program")],
            objects=[f"urn:uuid:{claim.aip_id}"],
        )

    def _commit(self, claim: rq.Claim, result: CopyResult) -> None:
        on_write = (
            "SHA-256 checked by the server (ChecksumSHA256)"
            if as_s3(self.repo.store(claim.store)) is not None
            else "SHA-256 of the bytes written"
        )
        mode = "head" if self._settings(claim.store).cold else self.readback
        verification = f"{on_write}, then read-back {mode}"
        event = self._event(
            claim,
            result,
            "success",
            f"{result.objects} objects verified ({result.copied} copied,"
            f" {result.present} already present), {result.bytes_copied} bytes copied;"
            f" verification: {verification}",
        )

        def commit(s: Any) -> tuple[bytes | None, list[str]]:
            when = utcnow()
            rq.mark_copy_verified(s, claim.copy_id, when)
            q.set_job_state(
                s,
                claim.job_id,
                "done",
                result={k: v for k, v in result.to_dict().items() if k != "error"},
            )
            doc = append_event(
                s,
                event,
                aip_id=claim.aip_id,
                version_id=claim.version_id,
                version=claim.version,
                store_name=claim.store,
                agents=[self.agent],
            )
            return doc, q.stores_with_copies(s, claim.aip_id)

        doc, holders = self._db(commit)
        result.event = event.identifier
        self._publish(claim.aip_id, event, doc, holders)

    def _copy_event_log(self, claim: rq.Claim, result: CopyResult) -> None:
        """The AIP's event documents the target lacks (ingest and version events were
        published before it held the AIP), so that it alone can rebuild the catalogue."""
        from preservation.eventlog import copy_log

        try:
            copy_log(self.repo.store(result.sources[0]), self.repo.store(claim.store), claim.aip_id)
        except PreservationError as e:  # the copy is verified; the log catches up next time
            log.warning("event log of %s not copied to %s: %s", claim.aip_id, claim.store, e)

    def _publish(self, aip_id: str, event: Event, doc: bytes | None, holders: list[str]) -> None:
        if doc is None:
            return
        configured = self.repo.config.settings.stores
        stores = [self.repo.store(n) for n in holders if n in configured and n not in self.down]
        failed = publish(stores, aip_id, event, doc)
        if failed:
            log.warning("event %s not written to %s", event.identifier, ", ".join(failed))

    def _fail(
        self, claim: rq.Claim, result: CopyResult, error: PreservationError, record: bool = True
    ) -> None:
        """Journal a failed attempt. A transient error leaves the copy queued as it was;
        a permanent one makes it ``failed`` and, the first time, records a failure
        event. ``record=False`` (an interrupt or a programming error, not a finding
        about the copy) only closes the job."""
        result.error = error
        result.outcome = "waiting" if error.transient else "failed"
        if error.transient:
            where = str(error.fields.get("store") or claim.store)
            self.down.setdefault(where, error.message)
        log.warning(
            "replication of %s v%d to %s %s: %s: %s",
            claim.aip_id,
            claim.version,
            claim.store,
            "waits" if error.transient else "failed",
            error.code,
            error.message,
        )
        first_failure = not error.transient and claim.previous_state != "failed" and record
        event = (
            self._event(claim, result, "failure", f"{error.code}: {error.message}")
            if first_failure
            else None
        )

        def save(s: Any) -> tuple[bytes | None, list[str]]:
            q.set_job_state(s, claim.job_id, "failed", error=f"{error.code}: {error.message}")
            if error.transient or not record:
                return None, []
            rq.set_copy_state(s, claim.copy_id, "failed")
            if event is None:
                return None, []
            doc = append_event(
                s,
                event,
                aip_id=claim.aip_id,
                version_id=claim.version_id,
                version=claim.version,
                store_name=claim.store,
                agents=[self.agent],
            )
            return doc, q.stores_with_copies(s, claim.aip_id)

        try:
            doc, holders = self._db(save)
        except PreservationError as e:
            log.error("could not record the failed replication of %s: %s", claim.aip_id, e)
            return
        if event is not None:
            result.event = event.identifier
            self._publish(claim.aip_id, event, doc, holders)


# --- leftovers of interrupted attempts ---------------------------------------------


def clear_leftovers(store: Store, keys: Sequence[str]) -> int:
    """Remove what an interrupted write of ``keys`` may have left on ``store`` (never a
    finished object): unfinished multipart uploads on S3, temporary files on local
    stores. Returns how many were removed."""
    s3 = as_s3(store)
    if s3 is not None:
        return _abort_uploads(s3, keys)
    if isinstance(store, LocalStore):
        return _remove_temporary_files(store, keys)
    return 0


def clear_leftovers_under(store: Store, prefix: str) -> int:
    """Abort every unfinished multipart upload under ``prefix`` (a folder of keys, e.g.
    an interrupted ingest's staging prefix) on an S3 store; other stores leave no
    unfinished writes behind a name. Returns how many were aborted."""
    s3 = as_s3(store)
    if s3 is None:
        return 0
    folder = prefix.rstrip("/") + "/"
    return _abort_matching(s3, _full_key(s3, folder), lambda key: True)


def _full_key(store: S3Store, key: str) -> str:
    """``key`` as the bucket knows it (a folder keeps its trailing '/')."""
    if not store.prefix:
        return key
    full = join_key(store.prefix, key)
    return full + "/" if key.endswith("/") else full


def _abort_uploads(store: S3Store, keys: Sequence[str]) -> int:
    wanted = {_full_key(store, k) for k in keys}
    if not wanted:
        return 0
    low, high = min(wanted), max(wanted)
    n = 0
    while n < min(len(low), len(high)) and low[n] == high[n]:
        n += 1
    common = low[:n]  # a string prefix, as S3 listings take it
    return _abort_matching(store, common, wanted.__contains__)


def _abort_matching(store: S3Store, common: str, wanted: Callable[[str], bool]) -> int:
    from preservation.storage.s3 import translate_error

    found: list[tuple[str, str]] = []
    args: dict[str, Any] = {"Bucket": store.bucket, "Prefix": common}

    def call(op: str, **kw: Any) -> Any:
        def attempt() -> Any:
            try:
                return getattr(store.client, op)(**kw)
            except Exception as e:  # vendor errors, translated here
                raise translate_error(e, store=store.name, bucket=store.bucket, op=op) from e

        return retry(attempt, attempts=store.settings.max_attempts)

    while True:
        page = call("list_multipart_uploads", **args)
        found += [
            (u["Key"], u["UploadId"])
            for u in page.get("Uploads") or []
            if wanted(str(u.get("Key")))
        ]
        if not page.get("IsTruncated"):
            break
        args["KeyMarker"] = page.get("NextKeyMarker")
        args["UploadIdMarker"] = page.get("NextUploadIdMarker")
    for key, upload in found:
        call("abort_multipart_upload", Bucket=store.bucket, Key=key, UploadId=upload)
        log.info("%s: aborted the unfinished upload of %s", store.name, key)
    return len(found)


def _remove_temporary_files(store: LocalStore, keys: Sequence[str]) -> int:
    by_folder: dict[str, set[str]] = {}
    for key in keys:
        folder, _, name = key.rpartition("/")
        by_folder.setdefault(folder, set()).add(name)
    removed = 0
    for folder, names in by_folder.items():
        path = store.root.joinpath(*folder.split("/")) if folder else store.root
        try:
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            raise StorageError(f"{store.name}: cannot list {folder}: {e.strerror}") from e
        for entry in entries:
            if not TMP_NAME.match(entry.name):
                continue
            base = entry.name[1:].rsplit(".tmp-", 1)[0]
            if base in names:
                try:
                    Path(entry.path).unlink()
                except FileNotFoundError:
                    continue
                except OSError as e:
                    raise StorageError(f"{store.name}: cannot remove {entry.path}: {e}") from e
                removed += 1
                log.info("%s: removed the temporary file %s", store.name, entry.path)
    return removed


# --- the service functions ----------------------------------------------------------


def replica_stores(repo: Any) -> list[str]:
    return [n for n, s in repo.config.settings.stores.items() if s.role == "replica"]


def replicate_pending(
    repo: Any,
    *,
    aip: str | None = None,
    store: str | None = None,
    workers: int | None = None,
    progress: Reporter | None = None,
    readback: str | None = None,
    object_attempts: int = OBJECT_ATTEMPTS,
    retry_base_delay: float = RETRY_BASE_DELAY,
) -> ReplicationReport:
    """Replicate every queued copy (of one AIP, onto one store, when given).

    Copies missing from a replica store (added after ingest) are queued first. Store
    trouble never raises: it is in the report (``report.ok``, ``report.exit_status``).
    Unknown store or AIP names raise ConfigError / NotInCatalog before any work.
    """
    targets = replica_stores(repo)
    if store is not None:
        repo.config.store_settings(store)  # ConfigError for an unknown name
        if store not in targets:
            raise UsageError(f"{store} is the primary store; replication writes to replicas")
        targets = [store]
    replicator = Replicator(
        repo,
        workers=workers,
        readback=readback,
        progress=progress,
        object_attempts=object_attempts,
        retry_base_delay=retry_base_delay,
    )

    def plan(s: Any) -> tuple[int, list[rq.WorkItem]]:
        if aip is not None:
            q.require_aip(s, aip)
        enqueued = rq.enqueue_missing_copies(s, targets, aip_id=aip)
        return enqueued, rq.queued_copies(s, targets, aip_id=aip)

    enqueued, items = replicator._db(plan)
    if enqueued:
        log.info("queued %d copies missing from replica stores", enqueued)
    return replicator.run(items, enqueued)


def replicate_copy(
    repo: Any, copy_id: int, *, workers: int | None = None, readback: str | None = None
) -> CopyResult:
    """Replicate one queued copy: the unit of work for other executors (Dask)."""
    return Replicator(repo, workers=workers, readback=readback).replicate(copy_id)


__all__ = [
    "CopyResult",
    "ReplicationReport",
    "Replicator",
    "clear_leftovers",
    "replicate_copy",
    "replicate_pending",
]
