"""Ingest: a transfer and its catalogue sheet become a checked, identified AIP.

The steps, in order (each a function below):

1. ``receive``    the transfer is recognised (folder, archive, bag) and discovered.
2. ``inspect``    cheap checks: paths, the catalogue sheet, the register.
3. ``stream``     one read per payload file: all digests, and the bytes go straight
                  to a staging key in the primary store; formats are identified and
                  files opened batch by batch; supplied fixity is compared.
4. ``decide``     virus check, duplicate check, the report; blocking findings stop here
                  (staging removed, nothing visible).
5. ``package``    bag tag files, METS/PREMIS and the report are written and staged.
6. ``finalise``   staged objects are verified and moved to ``<aip>/v1/...``; then the
                  catalogue commit; ``bagit.txt`` is moved last of all. A store holds
                  an AIP version exactly when its ``bagit.txt`` is there.

A journal row in the catalogue (``jobs``) records the ingest from its start, so that a
crash at any point is cleaned up by the next run (or ``ingest --cleanup``): before the
catalogue commit, leftovers in staging and any half-moved objects are removed (roll
back); after it, the remaining staged objects are moved (roll forward).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import shutil
import socket
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preservation.errors import DuplicateTransfer, IngestRefused, PreservationError
from preservation.executor import bounded_map
from preservation.faults import checkpoint
from preservation.hashing import hash_file
from preservation.ingest import findings as fnd
from preservation.ingest.finding_store import FindingStore
from preservation.ingest.spool import EntrySpool
from preservation.ingest.work_index import WorkIndex
from preservation.jobs import process_alive, software_agent
from preservation.metadata.records import RecordTable
from preservation.model import Agent, Event, FileEntry, Record, new_uuid, utcnow
from preservation.paths import join_key
from preservation.progress import Reporter, Silent
from preservation.repository import Repository

if TYPE_CHECKING:
    from preservation.ingest.examine import Examined

log = logging.getLogger(__name__)

STAGING_PREFIX = ".staging"
BAG_DECLARATION = "bagit.txt"
BATCH = 250  # files per batch streamed here and examined (identified, opened) by a worker
BATCH_BYTES = 64 * 2**20  # ... or fewer: large files go to the workers one by one
LOOKAHEAD = 6  # batches streamed ahead of the examination results (bounds memory)
STREAM_THREADS = 4  # threads hashing and copying (hashlib and file I/O release the GIL)
SYNC_EACH_FROM = 32 * 2**20  # bytes: files this large are synced as they are stored
METS_PROCESS_FROM = 2_000  # files: a METS of this many is written by a worker process
RECEIPT_FINDINGS = 100  # findings listed in a receipt (the report lists every one)

fnd.define("FIX-001", "authenticity", "Supplied fixity matches", "移交固定值一致", cost=40)
fnd.define("FIX-002", "authenticity", "Every file has supplied fixity", "固定值覆盖全部文件", 40)


@dataclass
class IngestRequest:
    source: Path
    sheet: Path | None = None
    register: Path | None = None
    dry_run: bool = False
    allow_duplicate: bool = False
    submitter: str | None = None
    reference_code: str | None = None


@dataclass
class Receipt:
    aip: str | None
    version: int | None
    reference_code: str
    transfer: str
    kind: str
    items: int
    volumes: int
    files: int
    bytes: int
    store: str | None
    report: str
    checks: dict[str, int]
    dry_run: bool
    # the first RECEIPT_FINDINGS findings that did not pass, cheapest first; the report
    # has them all (findings_total of them; findings_truncated when more than listed)
    findings: list[dict[str, Any]] = field(default_factory=list)
    findings_total: int = 0
    findings_truncated: bool = False
    # what replicating the new AIP straight after ingest did (None: not attempted)
    replication: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def staging_prefix(job_id: str) -> str:
    return join_key(STAGING_PREFIX, job_id)


def staging_key(job_id: str, bag_path: str) -> str:
    """Where a staged object waits: the bag body under ``body/``, and ``bagit.txt``
    apart under ``declaration/``, so that the body can be made final in one move and
    the declaration after the catalogue commit."""
    part = "declaration" if bag_path == BAG_DECLARATION else "body"
    return join_key(staging_prefix(job_id), part, bag_path)


def aip_prefix(aip_id: str, version: int) -> str:
    return join_key(aip_id, f"v{version}")


def _agents(repo: Repository, submitter: str) -> list[Agent]:
    org = repo.config.settings.repository.organization or repo.config.settings.repository.name
    return [
        software_agent(),
        Agent(f"organization:{org}", org, "organization"),
        Agent(f"person:{submitter}", submitter, "person"),
    ]


class _Ingest:
    """One ingest run; holds the state the steps share."""

    def __init__(self, repo: Repository, req: IngestRequest, progress: Reporter) -> None:
        self.repo = repo
        self.req = req
        self.progress = progress
        self.settings = repo.config.settings.ingest
        self.algorithms = self.settings.digests
        self.job_id = new_uuid()
        self.aip_id = new_uuid()
        self.started = utcnow()
        self.submitter = req.submitter or os.environ.get("USER") or "unknown"
        self.agents = _agents(repo, self.submitter)
        self.software = self.agents[0].identifier
        self.events: list[Event] = []
        # the catalogue sheet's records, linked to files: on disk (empty without a sheet)
        self.records: Sequence[Record] | RecordTable = []
        self.work = Path(
            tempfile.mkdtemp(prefix=f"ingest-{self.job_id}-", dir=self._staging_root())
        )
        self.spool = EntrySpool(self.work / "entries.jsonl")
        # every finding, spilled to disk in sorted runs: memory does not grow with files
        self.findings = FindingStore(directory=self.work / "findings")
        # gathered while streaming, so that no extra pass over the spool is needed
        self._payload_hash = hashlib.sha256()
        # on disk: digests for the duplicate check, keys and sizes to verify staging
        self.index = WorkIndex(self.work / "index.sqlite")
        self._unidentified = 0
        self._siegfried: str | None = None
        self.transfer: Any = None

    def _staging_root(self) -> Path:
        root = self.repo.config.staging_dir
        root.mkdir(parents=True, exist_ok=True)
        return root

    # ------------------------------------------------------------------ helpers
    def event(self, etype: str, outcome: str, detail: str, outcome_detail: str = "") -> Event:
        ev = Event(
            type=etype,
            outcome=outcome,  # type: ignore[arg-type]
            detail=detail,
            outcome_detail=outcome_detail,
            agents=[(self.software, "executing program"), (self.agents[2].identifier, "submitter")],
        )
        self.events.append(ev)
        return ev

    @property
    def primary_name(self) -> str:
        return self.repo.config.primary_store_name

    def staging_key(self, bag_path: str) -> str:
        return staging_key(self.job_id, bag_path)

    # ------------------------------------------------------------------ 1. receive
    def receive(self) -> None:
        from preservation.ingest.receive import receive

        self.event("ingestion start", "success", f"transfer {self.req.source}")
        self.transfer = receive(self.req.source, self.work, self.settings)
        self.findings.extend(self.transfer.findings)

    # ------------------------------------------------------------------ 2. inspect
    def inspect(self) -> None:
        from preservation.ingest.pathcheck import check_paths

        files = self.transfer.files  # on disk: read in pages, sorted by path
        path_findings, excluded = check_paths(files, self.settings)
        self.findings.extend(path_findings)
        # Junk and unsafe names, and the second of two names that are one after NFC
        # normalisation (PATH-005 names both): never stored.
        files.exclude(excluded)
        files.keep_first_of_equal_paths()
        self.files = files
        self.excluded = sorted(set(excluded))

        self.register = None
        if self.req.register is not None:
            from preservation.ingest.register import read_register

            self.register = read_register(self.req.register)
        if self.req.sheet is not None:
            from preservation.ingest.sheet import check_sheet, read_sheet

            sheet = read_sheet(self.req.sheet, self.work / "records.sqlite")
            sheet_findings, self.records = check_sheet(
                sheet, self.files, self.settings, register=self.register
            )
            self.findings.extend(sheet_findings)
        elif self.register is not None:
            from preservation.ingest.register import check_register

            self.findings.extend(check_register(self.register, self.files, []))

    def _row_of(self, path: str) -> int | None:
        """The sheet row of the record ``path`` belongs to (the last, if several)."""
        if isinstance(self.records, RecordTable):
            return self.records.row_of(path)
        return None

    # ------------------------------------------------------------------ 3. stream
    def stream(self) -> None:
        self._payload_expected = False  # package notes the staged payload to verify
        return_large_blocks()
        total = sum(f.size for f in self.files)
        self.progress.start("hashing and storing", total)
        supplied: Mapping[str, dict[str, str]] = self.transfer.supplied
        store = None if self.req.dry_run else self.repo.primary
        if store is not None:
            checkpoint("ingest:before-stream")

        def one(f: Any) -> FileEntry:
            src: Path = f.abspath
            if store is None:
                digests, size = hash_file(src, self.algorithms)
            else:
                key = self.staging_key(f"data/{f.path}")
                # a large file is made durable at once, so that the disk writes it while
                # other files are hashed; small ones wait for one sync of the store
                durable = f.size >= SYNC_EACH_FROM
                with src.open("rb") as fh:
                    info = store.put(key, fh, algorithms=self.algorithms, size=f.size, sync=durable)
                digests, size = dict(info.digests), info.size
            self.progress.advance(size)
            return FileEntry(
                path=f.path,
                size=size,
                digests=digests,
                source=src,
                original_name=f.original_name if f.original_name != f.path else None,
                record_row=self._row_of(f.path),
                supplied_digests=f.supplied,
            )

        from preservation.ingest.examine import Examiner
        from preservation.ingest.pathcheck import check_duplicates
        from preservation.ingest.usability import UsabilityTally

        self._usability = UsabilityTally()  # counted as batches come back
        # Identification and opening checks run in a worker process while this process
        # hashes and copies the next batches; at most LOOKAHEAD batches are in flight.
        pending: deque[tuple[list[FileEntry], Future[Examined]]] = deque()
        staged_count = 0
        # one pool of threads for the whole transfer, read batch by batch
        streamed = bounded_map(one, self.files, workers=STREAM_THREADS)
        with Examiner(self.settings.identify_workers, len(self.files), total) as examiner:
            try:
                for batch in _batches(self.files, BATCH, BATCH_BYTES):
                    examined = examiner.submit([(f.path, f.source) for f in batch])
                    entries = list(islice(streamed, len(batch)))
                    staged_count += len(entries)
                    if store is not None and staged_count >= len(self.files) // 2:
                        checkpoint("ingest:mid-stream")
                    pending.append((entries, examined))
                    while len(pending) > LOOKAHEAD:
                        self._examined(*pending.popleft())
                while pending:
                    self._examined(*pending.popleft())
            finally:
                # a generator: closing it cancels or finishes the copies in flight
                close = getattr(streamed, "close", None)
                if close is not None:
                    close()
        if not examiner.in_process:
            log.info(
                "identification worker: %d Go workers, peak RSS %d MB",
                examiner.go_workers,
                examiner.worker_peak_kb // 1024,
            )
        self.progress.done()
        self._supplied_coverage(supplied)
        self.findings.extend(self._usability.findings())
        self.findings.extend(check_duplicates(self.index.duplicate_candidates()))
        self._format_findings()
        self.event(
            "message digest calculation",
            "success",
            f"{', '.join(self.algorithms)} of {self.spool.count} files in one read pass",
        )

    def _examined(self, entries: list[FileEntry], examined: Future[Examined]) -> None:
        """Join a batch's identification and opening checks to its entries and spool
        them (in discovery order)."""
        found = examined.result()
        self.findings.extend(found.findings)
        self.index.add_content((e.path, e.size, e.digests["sha256"]) for e in entries)
        for e in entries:
            e.format = found.formats.get(e.path)
            e.properties = found.properties.get(e.path, {})
            self._usability.add(e.properties)
            self._compare_supplied(e)
            self._payload_hash.update(f"{e.path}\t{e.digests['sha256']}\n".encode())
            if e.format is None or e.format.puid is None:
                self._unidentified += 1
            elif self._siegfried is None:
                self._siegfried = e.format.tool_version
            self.spool.append(e)

    def _compare_supplied(self, e: FileEntry) -> None:
        for alg, expected in e.supplied_digests.items():
            got = e.digests.get(alg)
            if got is None:
                from preservation.hashing import check_algorithms

                check_algorithms([alg])
                assert e.source is not None
                got = hash_file(e.source, [alg])[0][alg]
            if got.lower() != expected.lower():
                self.findings.append(
                    fnd.Finding(
                        "FIX-001",
                        "fail",
                        f"{alg} supplied {expected.lower()}, computed {got}",
                        file=e.path,
                        details={"algorithm": alg, "expected": expected.lower(), "found": got},
                    )
                )

    def _supplied_coverage(self, supplied: Mapping[str, dict[str, str]]) -> None:
        count = len(supplied)
        if not count:
            return
        failed = self.findings.count("FIX-001", "fail")
        for path in self.files.without_supplied():
            self.findings.append(
                fnd.Finding("FIX-002", "warn", "no supplied checksum for this file", file=path)
            )
        outcome = "failure" if failed else "success"
        self.event(
            "fixity check",
            outcome,
            "supplied fixity (bag manifests or checksum file) compared with computed digests",
            f"{count - failed} of {count} supplied digests verified"
            + (f"; {failed} mismatches" if failed else ""),
        )
        if not failed:
            self.findings.append(
                fnd.Finding("FIX-001", "pass", f"{count} supplied digests verified")
            )

    def _format_findings(self) -> None:
        from preservation.ingest.identify import iter_format_findings, load_accepted_formats

        accepted = load_accepted_formats()
        self.findings.extend(iter_format_findings(self.spool, accepted))
        unknown = self._unidentified
        self.event(
            "format identification",
            "success" if unknown == 0 else "warning",
            f"Siegfried {self._siegfried or ''} with PRONOM signatures",
            f"{self.spool.count - unknown} identified, {unknown} unidentified",
        )

    # ------------------------------------------------------------------ 4. decide
    def decide(self) -> Any:
        from preservation.ingest.report import CheckReport
        from preservation.ingest.virus import scan

        self.findings.extend(scan(self.transfer.payload_root, self.settings.virus_scanner))
        vir = [c for c in self.findings.codes() if c.startswith("VIR")]
        vir_outcome = (
            "not performed"
            if sum(self.findings.count(c) for c in vir)
            == sum(self.findings.count(c, "not performed") for c in vir)
            else ("failure" if sum(self.findings.count(c, "fail") for c in vir) else "success")
        )
        self.event("virus check", vir_outcome, f"scanner: {self.settings.virus_scanner}")
        blocking = self.findings.count_blocking(self.settings.blocking)
        self.event(
            "validation",
            "failure" if blocking else "success",
            "DA/T 70 four-property check at receipt",
            f"{len(self.findings)} findings, {blocking} blocking",
        )
        self.report = CheckReport(
            transfer=self.transfer.name,
            aip=self.aip_id,
            started=self.started,
            finished=utcnow(),
            findings=self.findings,
            blocking_properties=tuple(self.settings.blocking),
            performed=self.performed_checks(),
            settings={
                "digests": list(self.algorithms),
                "blocking": list(self.settings.blocking),
                "virus_scanner": self.settings.virus_scanner,
                "exclude_junk": self.settings.exclude_junk,
                "excluded": self.excluded,
            },
        )
        return self.report

    def performed_checks(self) -> set[str]:
        """The checks that ran on this transfer (a check that did not run is never
        reported as passed)."""
        t = self.transfer
        groups = ["PATH-", "FMT-", "OPEN-", "VIR-001"]
        if t.container is not None:
            groups.append("ARC-")
        if self.req.sheet is not None:
            groups.append("SHEET-")
        if self.register is not None:
            groups.append("REG-")
        if t.supplied:
            groups += ["FIX-001", "FIX-002", "FIX-102"]
        if t.bag_root is not None:
            groups += ["FIX-103", "FIX-105"]
        if self.settings.virus_scanner != "none":
            groups.append("VIR-002")
        return {c for c in fnd.CHECKS if any(c.startswith(g) for g in groups)}

    def payload_key(self) -> str:
        """SHA-256 over the ``path<TAB>sha256`` lines (discovery order, which is sorted)
        and the reference code: equal keys mean the same transfer."""
        h = self._payload_hash.copy()
        h.update((self.reference_code or "").encode())
        return h.hexdigest()

    @property
    def reference_code(self) -> str:
        """The AIP's reference code (档号), a label: the one given, the bag's
        External-Identifier, the sheet's only row, or the level the sheet's rows share
        (``Z109-WS·2011-Y-BGS`` for items ``…-0001``, ``…-0002``)."""
        if self.req.reference_code:
            return self.req.reference_code
        info = getattr(self.transfer, "bag_info", None) or {}
        ext = info.get("External-Identifier")
        if isinstance(ext, list):
            ext = ext[0] if ext else None
        if ext:
            return str(ext)
        return shared_reference_code(r.reference_code for r in self.records)

    # ------------------------------------------------------------------ 5. package
    def package(self) -> list[Any]:
        """Write the tag files into the work folder; returns them as bag TagFiles,
        in upload order (``bagit.txt`` last).

        The METS of a large transfer is written by a worker process while this one
        writes the report and the manifests (each reads the spool once per pass): it
        needs the report's digests only for its fileSec, near its end.
        """
        from preservation.bags.writer import BagWriter
        from preservation.metadata.mets_writer import MetsInBackground, MetsPackage, write_mets
        from preservation.metadata.mets_writer import TagFile as MetsTagFile

        tag_dir = self.work / "tags"
        (tag_dir / "metadata").mkdir(parents=True)
        self.event("ingestion end", "success", f"AIP {self.aip_id} version 1 packaged")
        mets_path = tag_dir / "metadata" / "mets.xml"
        mets = MetsPackage(
            aip_id=self.aip_id,
            version=1,
            created=self.started,
            label=self.title,
            files=self.spool.reader(),
            agents=self.agents,
            events=self.events,
            descriptive=self.descriptive,
            records=self.records,
            rights=self.rights,
        )
        with contextlib.ExitStack() as stack:
            background = None
            if self.spool.count >= METS_PROCESS_FROM:
                background = stack.enter_context(MetsInBackground(mets_path, mets))
            extra: dict[str, Path] = {}
            report_json = tag_dir / "metadata" / "report.json"
            with report_json.open("wb") as out:
                self.report.write_json(out)
            extra["metadata/report.json"] = report_json
            report_html = tag_dir / "metadata" / "report.html"
            with report_html.open("wb") as out:
                self.report.write_html(out)
            extra["metadata/report.html"] = report_html
            for rel, src in (getattr(self.transfer, "submission_tag_files", None) or {}).items():
                dst = tag_dir / "metadata" / "submission" / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
                extra[f"metadata/submission/{rel}"] = dst
            listed = [
                MetsTagFile(rel, *_digest_size(p, self.algorithms), mime=_MIME.get(p.suffix))
                for rel, p in extra.items()
            ]
            if background is None:
                write_mets(mets_path, dataclasses.replace(mets, tag_files=listed))

            writer = BagWriter(
                tag_dir, algorithms=self.algorithms, info=list(self.bag_info.items())
            )
            with writer:
                body = join_key(staging_prefix(self.job_id), "body") + "/"

                def payload() -> Iterator[tuple[str, int]]:
                    # one pass: the manifests' lines, and the staged objects expected
                    # (keys were validated when the objects were staged)
                    for e in self.spool:
                        writer.add_payload(e.path, e.size, e.digests)
                        yield body + e.bag_path, e.size

                self.index.expect(payload())
                self._payload_expected = True
                if background is not None:
                    background.finish(listed)
                extra["metadata/mets.xml"] = mets_path
                for rel, path in extra.items():
                    writer.add_tag_file(rel, path)
                return list(writer.finish())

    @property
    def title(self) -> str:
        if len(self.records) == 1:
            first = next(iter(self.records))
            return first.fields.get("title") or str(self.transfer.name)
        return str(self.transfer.name)

    @functools.cached_property
    def descriptive(self) -> dict[str, str]:
        """AIP-level fields: a value the sheet's rows share, or all of them joined
        with '; ' (computed once, after the sheet was read)."""
        from preservation.metadata.descriptive import date_fields

        d: dict[str, str] = {"title": self.title, "transfer": self.transfer.name}
        if self.reference_code:
            d["reference_code"] = self.reference_code
        records = self.records
        for key in ("fonds", "year", "retention", "creator", "security_level", "open_status"):
            if isinstance(records, RecordTable):
                values = records.distinct(key)
            else:
                values = sorted({r.fields.get(key, "").strip() for r in records} - {""})
            if values:
                d[key] = "; ".join(values)
        # 日期: the one shared value, and the span of all (ISO) for date searches
        if isinstance(records, RecordTable):
            d.update(date_fields(records.values("date")))
        else:
            d.update(date_fields(r.fields.get("date", "") for r in records))
        return d

    @property
    def rights(self) -> dict[str, str]:
        d = self.descriptive
        return {
            k: d[k]
            for k in ("security_level", "open_status", "retention")
            if d.get(k) and ";" not in d[k]
        }

    @property
    def bag_info(self) -> dict[str, str]:
        s = self.repo.config.settings.repository
        from preservation.bags.profile import PROFILE_IDENTIFIER

        info = {
            "Source-Organization": s.organization or s.name,
            "External-Identifier": self.reference_code or self.transfer.name,
            "Internal-Sender-Identifier": self.transfer.name,
            "Bag-Group-Identifier": self.descriptive.get("fonds", self.transfer.name),
            "BagIt-Profile-Identifier": PROFILE_IDENTIFIER,
        }
        if s.organization_address:
            info["Source-Organization-Address"] = s.organization_address
        if s.contact_email:
            info["Contact-Email"] = s.contact_email
        return info

    # ------------------------------------------------------------------ 6. finalise
    def stage_tags(self, tags: list[Any]) -> None:
        store = self.repo.primary
        for tag in tags:
            with tag.local.open("rb") as fh:
                store.put(
                    self.staging_key(tag.path),
                    fh,
                    digests={"sha256": tag.digests["sha256"]},
                    algorithms=("sha256",),
                    size=tag.size,
                    sync=False,
                )

    def verify_staging(self, tags: list[Any]) -> None:
        """Every staged object is durable and there with the right size before anything
        is final (each was digested by the store as it was written)."""
        from preservation.errors import IntegrityError

        self.repo.primary.sync()
        prefix = staging_prefix(self.job_id) + "/"
        if not self._payload_expected:  # package lists them as it writes the manifests
            body = join_key(staging_prefix(self.job_id), "body") + "/"
            self.index.expect((body + e.bag_path, e.size) for e in self.spool)
        self.index.expect((self.staging_key(t.path), t.size) for t in tags)
        self.index.found((i.key, i.size) for i in self.repo.primary.list(prefix))
        count, problems = self.index.staging_problems(20)
        if count:
            raise IntegrityError(
                f"staged AIP {self.aip_id} failed verification: " + "; ".join(problems)
            )

    def finalise(self, tags: list[Any]) -> None:
        """Make the staged AIP final. The order is what makes a crash harmless:

        payload and tag files are moved first, then the catalogue commit, and
        ``bagit.txt`` last: a store holds an AIP version exactly when its bagit.txt is
        there. A crash before the commit is rolled back by the next run; a crash after
        it is rolled forward (the remaining staged objects are moved).
        """
        from preservation.catalog import queries as q

        store = self.repo.primary
        with self.repo.catalog.session() as s:
            q.set_job_state(s, self.job_id, "finalising", result={"aip": self.aip_id})
        checkpoint("ingest:before-finalise")
        final = aip_prefix(self.aip_id, 1)
        body = join_key(staging_prefix(self.job_id), "body") + "/"
        store.move_prefix(body, final + "/")  # one rename on a local store
        store.sync()
        checkpoint("ingest:before-commit")
        self.commit(tags)
        checkpoint("ingest:after-commit")
        store.move(self.staging_key(BAG_DECLARATION), join_key(final, BAG_DECLARATION))
        checkpoint("ingest:before-publish")
        # The ingest events' chain links beside the AIP, so the store alone can rebuild
        # the catalogue's event chain (preservation.eventlog; a failure is only logged).
        # Before the job is done: a crash here is rolled forward, which publishes them.
        from preservation.eventlog import publish_recorded

        publish_recorded(self.repo, self.aip_id, 1, [self.primary_name])
        with self.repo.catalog.session() as s:
            q.set_job_state(
                s,
                self.job_id,
                "done",
                result={"aip": self.aip_id, "version": 1, "received": self._received},
            )

    def commit(self, tags: list[Any]) -> None:
        from preservation.catalog import queries as q
        from preservation.catalog.record import record_ingest
        from preservation.reports.received import received_summary

        stores = self.repo.config.settings.stores
        # what the statistics report counts (preservation.reports.received)
        self._received = received_summary(self.spool, self.records)
        with self.repo.catalog.session() as s:
            record_ingest(
                s,
                aip_id=self.aip_id,
                job_id=None,
                reference_code=self.reference_code or None,
                transfer_name=self.transfer.name,
                descriptive=self.descriptive,
                payload_key=self._payload_key,
                entries=self.spool,
                tag_files={t.path: (t.digests, t.size) for t in tags},
                primary_store=self.primary_name,
                replica_stores=[n for n, st in stores.items() if st.role == "replica"],
                events=self.events,
                agents=self.agents,
                batch_size=self.repo.config.settings.catalog.batch_size,
                record_codes=self._record_codes(),
            )
            q.set_job_state(
                s,
                self.job_id,
                "finalising",
                result={"aip": self.aip_id, "committed": True, "received": self._received},
            )

    def _record_codes(self) -> Mapping[int, str]:
        if isinstance(self.records, RecordTable):
            return self.records.reference_codes()
        return {r.row: r.reference_code for r in self.records if r.reference_code}

    # ------------------------------------------------------------------ run
    def run(self) -> Receipt:
        from preservation.catalog import queries as q

        if not self.req.dry_run:
            with self.repo.catalog.session() as s:
                q.start_job(
                    s,
                    "ingest",
                    {
                        "source": str(self.req.source),
                        "aip": self.aip_id,
                        "staging": staging_prefix(self.job_id),
                        "work": str(self.work),
                    },
                    job_id=self.job_id,
                    aip_id=self.aip_id,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                )
        try:
            self.receive()
            self.inspect()
            self.stream()
            self._payload_key = self.payload_key()
            if not self.req.allow_duplicate:
                with self.repo.catalog.session() as s:
                    dup = q.find_aip_by_payload_key(
                        s, self._payload_key, self.reference_code or None
                    )
                    dup_id = dup.id if dup is not None else None
                if dup_id is not None:
                    raise DuplicateTransfer(aip=dup_id)
            report = self.decide()
            if report.blocked:
                path = self._keep_report("refused")
                raise IngestRefused(
                    f"{self.transfer.name}: {report.blocking_count} blocking finding(s);"
                    f" report: {path}",
                    report=report,
                )
            if self.req.dry_run:
                path = self._keep_report("dry-run")
                return self._receipt(str(path))
            tags = self.package()
            self.stage_tags(tags)
            self.verify_staging(tags)
            self.finalise(tags)
            return self._receipt(join_key(aip_prefix(self.aip_id, 1), "metadata/report.html"))
        except BaseException as exc:
            if isinstance(exc, IngestRefused):
                # the refusal carries the report: its findings outlive the work folder
                # (removed with the report)
                self.findings.detach(self._staging_root())
            else:
                self.findings.close()
            self._abort(exc)
            raise
        finally:
            self.spool.close()
            self.index.close()
            if isinstance(self.records, RecordTable):
                self.records.close()
            if self.transfer is not None:
                self.transfer.cleanup()  # the file table and any unpacked archive
            shutil.rmtree(self.work, ignore_errors=True)

    def _keep_report(self, kind: str) -> Path:
        reports = self.repo.config.staging_dir / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        stem = reports / f"{utcnow():%Y%m%dT%H%M%SZ}-{kind}-{self.job_id}"
        with stem.with_suffix(".json").open("wb") as out:
            self.report.write_json(out)
        with stem.with_suffix(".html").open("wb") as out:
            self.report.write_html(out)
        return stem.with_suffix(".html")

    def _abort(self, exc: BaseException) -> None:
        """Remove every staged object; the journal row says the ingest failed."""
        if self.req.dry_run:
            return
        try:
            self.repo.primary.delete_prefix(staging_prefix(self.job_id) + "/")
            from preservation.catalog import queries as q

            with self.repo.catalog.session() as s:
                q.set_job_state(
                    s,
                    self.job_id,
                    "failed",
                    # the code tells a refusal (ING001) from other failures (statistics)
                    result={"code": exc.code} if isinstance(exc, PreservationError) else None,
                    error=exc.message if isinstance(exc, PreservationError) else repr(exc),
                )
        except Exception:  # the original error matters more; cleanup runs again later
            log.exception("cleanup after failed ingest %s did not finish", self.job_id)

    def _receipt(self, report: str) -> Receipt:
        summary: dict[str, int] = {}
        for check in self.report.checks_used().values():
            summary[check["result"]] = summary.get(check["result"], 0) + 1
        records = self.records
        if isinstance(records, RecordTable):
            volumes = records.count("volume")
        else:
            volumes = sum(1 for r in records if r.level == "volume")
        not_passed = (f for f in self.findings if f.result != "pass")
        total = len(self.findings) - self.findings.count(result="pass")
        return Receipt(
            aip=None if self.req.dry_run else self.aip_id,
            version=None if self.req.dry_run else 1,
            reference_code=self.reference_code,
            transfer=self.transfer.name,
            kind=self.transfer.kind,
            items=len(self.records) - volumes,
            volumes=volumes,
            files=self.spool.count,
            bytes=self.spool.bytes,
            store=None if self.req.dry_run else self.primary_name,
            report=report,
            checks=summary,
            dry_run=self.req.dry_run,
            findings=[f.to_dict() for f in islice(not_passed, RECEIPT_FINDINGS)],
            findings_total=total,
            findings_truncated=total > RECEIPT_FINDINGS,
        )


_MIME = {
    ".json": "application/json",
    ".html": "text/html",
    ".xml": "application/xml",
    ".txt": "text/plain",
}


def _digest_size(path: Path, algorithms: Iterable[str]) -> tuple[int, dict[str, str]]:
    digests, size = hash_file(path, algorithms)
    return size, digests


def shared_reference_code(codes: Iterable[str]) -> str:
    """The longest common leading run of whole levels ('-'-separated) of the codes
    (read once: the codes may come from a table on disk)."""
    common: list[str] | None = None
    for code in codes:
        if not code:
            continue
        parts = code.split("-")
        if common is None:
            common = parts
            continue
        n = 0
        while n < min(len(common), len(parts)) and common[n] == parts[n]:
            n += 1
        del common[n:]
    return "" if common is None else "-".join(common)


def return_large_blocks(threshold: int = 256 * 1024) -> bool:
    """Make glibc serve allocations of ``threshold`` bytes or more with their own
    mappings, given back to the system when freed (``mallopt(M_MMAP_THRESHOLD)``).

    By default glibc raises that threshold each time such a block is freed, so the
    stream threads' 1 MiB copy buffers, allocated and freed per file, end up in the
    heap and stay resident: on an ingest of 400 page images the ingest process
    peaked at 86 MB instead of 94 MB with the threshold fixed at its start
    (``MALLOC_MMAP_THRESHOLD_``), 85 MB with this call and the lazy imports of
    :mod:`preservation.metadata`. Process-wide and harmless elsewhere (a large block
    costs one mmap and one munmap); False where the C library has no ``mallopt``
    (not glibc)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(-3, threshold))  # M_MMAP_THRESHOLD
    except (AttributeError, OSError):
        return False


def _batches(items: Iterable[Any], n: int, nbytes: int | None = None) -> Iterator[list[Any]]:
    """Lists of at most ``n`` items, and of at most ``nbytes`` bytes (by ``.size``)
    unless one item alone is larger."""
    batch: list[Any] = []
    size = 0
    for it in items:
        if batch and nbytes is not None and size + it.size > nbytes:
            yield batch
            batch, size = [], 0
        batch.append(it)
        size += it.size if nbytes is not None else 0
        if len(batch) >= n:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def run_ingest(
    repo: Repository, request: IngestRequest, progress: Reporter | None = None
) -> Receipt:
    """Ingest one transfer; cleans up what interrupted ingests left first."""
    if not request.dry_run:
        cleanup_interrupted(repo)
    return _Ingest(repo, request, progress or Silent()).run()


def ingest_and_replicate(
    repo: Repository, request: IngestRequest, progress: Reporter | None = None
) -> Receipt:
    """Ingest, then replicate the new AIP to every replica store at once.

    A replica store that is down does not undo the ingest: the AIP is on the primary,
    its copies stay queued in the catalogue, health shows the lag and
    ``replicate --pending`` (or the scheduler's hourly job) finishes them later.
    """
    receipt = run_ingest(repo, request, progress)
    if receipt.aip is None:
        return receipt
    from preservation.storage.replicate import replicate_pending

    report = replicate_pending(repo, aip=receipt.aip)
    receipt.replication = {
        "ok": report.ok,
        **{o: report.count(o) for o in ("verified", "waiting", "failed")},
        "stores_down": sorted(report.stores_down),
    }
    return receipt


def cleanup_interrupted(repo: Repository) -> list[dict[str, Any]]:
    """Remove what killed or failed ingests left behind; returns what was cleaned.

    A job that never reached its catalogue commit is rolled back: its staging prefix
    and any objects already moved under its AIP prefix are deleted. One that did is
    rolled forward: the remaining staged objects are moved and its ingest events
    published to the primary store's event log. A job whose process is still alive
    on this host is left alone.
    """
    from preservation.catalog import queries as q
    from preservation.eventlog import publish_recorded

    cleaned: list[dict[str, Any]] = []
    with repo.catalog.session() as s:
        jobs = q.unfinished_jobs(s, "ingest")
    store = repo.primary
    for job in jobs:
        if process_alive(job.get("host"), job.get("pid")):
            continue
        params = job.get("params") or {}
        aip = params.get("aip")
        staged = staging_prefix(job["id"]) + "/"
        committed = False
        if aip and job["state"] == "finalising":
            with repo.catalog.session() as s:
                committed = q.get_aip(s, aip) is not None
        work = params.get("work")
        if work:
            shutil.rmtree(work, ignore_errors=True)
        if committed and aip:
            # Roll forward: the catalogue has the AIP; finish making it final.
            final = aip_prefix(aip, 1) + "/"
            moved = store.move_prefix(staged + "body/", final)
            moved += store.move_prefix(staged + "declaration/", final)
            # the ingest events' documents, which the crash may have kept from the
            # store (rewriting one that is there writes the same bytes)
            publish_recorded(repo, aip, 1, [store.name])
            with repo.catalog.session() as s:
                result = {**(job.get("result") or {}), "aip": aip, "version": 1}
                result.pop("committed", None)
                q.set_job_state(s, job["id"], "done", result=result)
            cleaned.append(
                {"job": job["id"], "completed": aip, "objects_moved": moved, "state": job["state"]}
            )
            continue
        # An upload cut off mid-way (the process or the server died) is no object
        # yet: abort it, or the bucket keeps its parts (and their cost) forever.
        from preservation.storage.replicate import clear_leftovers_under

        removed = clear_leftovers_under(store, staged)
        removed += store.delete_prefix(staged)
        if aip and job["state"] == "finalising":
            removed += store.delete_prefix(f"{aip}/")
        with repo.catalog.session() as s:
            q.set_job_state(s, job["id"], "cancelled", error="interrupted; leftovers removed")
        cleaned.append({"job": job["id"], "objects_removed": removed, "state": job["state"]})
    return cleaned
