"""``preservation check``: the four-property check (DA/T 70) of stored AIPs.

For each AIP checked, the current version on one store (the primary by default) is
read object by object (each into a scratch file, digested on the way, opened, then
deleted: memory and disk do not grow with the AIP) and compared with the catalogue:

=========  ========  ===============================================================
property   code      what
=========  ========  ===============================================================
integrity  PCK-101   every catalogued file is on the store with its size
integrity  PCK-102   files and bytes agree: catalogue rows, version totals, manifest,
                     bag-info ``Payload-Oxum``
authentic. PCK-001   every stored object's digests equal the catalogue's
authentic. PCK-002   the bag's payload manifests agree with the catalogue
authentic. PCK-003   the catalogue's event chain verifies; the AIP's events on the store
                     are all in the catalogue (missing ones: warn)
authentic. PCK-004   the METS validates against the official schemas and is the METS
                     the catalogue recorded
usability  PCK-201   the METS parses (safely)
usability  PCK-202   every payload file still opens (``preservation.ingest.usability``)
usability  PCK-203   no format is obsolete (fail) or at risk (warn) under the current
                     policy, unless a migrated derivative is in the version
security   PCK-301   restricted AIPs: the access log is in place and flags every
                     access to the AIP as restricted
security   PCK-302   no object under ``<aip>/`` that the catalogue does not know
=========  ========  ===============================================================

The report per AIP is a :class:`~preservation.ingest.report.CheckReport` of kind
``preservation`` (same JSON schema as the ingest report), written as JSON and HTML
into ``reports/checks/<UTC time>/``. Every AIP checked gets a PREMIS ``validation``
event (outcome failure when a check failed, warning for warnings); the run is a
``jobs`` row of kind ``check``. The check never changes stored data.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preservation.errors import NotInCatalog, PreservationError, UsageError
from preservation.hashing import MultiHasher
from preservation.ingest.findings import PROPERTIES, Finding, define
from preservation.model import Event, FileEntry, FormatInfo, utcnow

if TYPE_CHECKING:
    from preservation.catalog.events import ChainReport
    from preservation.catalog.report_queries import CatalogFile, CheckedAip
    from preservation.repository import Repository
    from preservation.storage.base import Store

CHECK_KIND = "check"
METS_PATH = "metadata/mets.xml"
BLOCK = 1024 * 1024
REPORTS_DIR = Path("reports") / "checks"

FIXITY = define(
    "PCK-001",
    "authenticity",
    "Stored objects match the catalogue's digests",
    "存储对象与目录固定值一致",
    80,
)
MANIFEST = define(
    "PCK-002", "authenticity", "Bag manifests agree with the catalogue", "包清单与目录一致", 30
)
CHAIN = define("PCK-003", "authenticity", "Event chain intact", "事件链完整", 20)
METS_VALID = define(
    "PCK-004",
    "authenticity",
    "METS valid against the schemas and unchanged",
    "METS 符合模式且未被改动",
    40,
)
PRESENT = define(
    "PCK-101",
    "integrity",
    "Every catalogued file is stored with its size",
    "目录所列文件齐全且大小一致",
    10,
)
TOTALS = define("PCK-102", "integrity", "File and byte totals agree", "文件数与字节数一致", 11)
XML_PARSES = define("PCK-201", "usability", "METS parses", "METS 可解析", 45)
OPENS = define("PCK-202", "usability", "Files still open", "文件仍可打开", 90)
FORMATS = define(
    "PCK-203",
    "usability",
    "No obsolete format under the current policy",
    "无过时格式(现行格式策略)",
    15,
)
ACCESS_LOG = define(
    "PCK-301", "security", "Access to restricted records is logged", "受控档案的利用有日志记录", 5
)
UNEXPECTED = define(
    "PCK-302", "security", "No unexpected objects in the store", "存储中无多余对象", 12
)


@dataclass
class CheckRequest:
    aips: Sequence[str] = ()
    all: bool = False
    sample: int | None = None
    store: str | None = None
    out: Path | None = None
    workers: int = 2
    seed: int | None = None


@dataclass
class AipOutcome:
    aip: str
    version: int
    store: str
    ok: bool
    totals: dict[str, int]
    failed_checks: list[str]
    report_json: str
    report_html: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class CheckRun:
    job: str
    store: str
    folder: str
    aips: list[AipOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.aips)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "store": self.store,
            "ok": self.ok,
            "checked": len(self.aips),
            "failed": sum(1 for a in self.aips if not a.ok),
            "reports": self.folder,
            "aips": [a.to_dict() for a in self.aips],
        }

    def summary(self) -> dict[str, Any]:
        """What the ``jobs`` row keeps: counts and the failed AIPs (at most 1,000)."""
        d = self.to_dict()
        d.pop("aips")
        d["failed_aips"] = [a.aip for a in self.aips if not a.ok][:1000]
        return d


def fetch_object(
    store: Store, key: str, dest: Path, algorithms: Iterable[str]
) -> tuple[dict[str, str], int]:
    """Copy one object into ``dest`` in blocks, digesting it on the way."""
    hasher = MultiHasher(algorithms)
    with store.open(key) as src, dest.open("wb") as out:
        while True:
            block = src.read(BLOCK)
            if not block:
                break
            hasher.update(block)
            out.write(block)
    return hasher.hexdigests(), hasher.size


class _AipCheck:
    """The check of one AIP version on one store."""

    def __init__(
        self,
        repo: Repository,
        aip: CheckedAip,
        store_name: str,
        chain: ChainReport,
        work: Path,
        workers: int,
    ) -> None:
        self.repo = repo
        self.aip = aip
        self.store_name = store_name
        self.store = repo.store(store_name)
        self.chain = chain
        self.work = work
        self.workers = workers
        self.findings: list[Finding] = []
        self.performed: set[str] = set()
        self.mets_events: set[str] = set()  # ingest-time events: in the METS, not events/

    def add(
        self, check: Any, result: str, message: str, file: str | None = None, **details: Any
    ) -> None:
        self.findings.append(Finding(check.code, result, message, file=file, details=details))  # type: ignore[arg-type]

    def key(self, f: CatalogFile) -> str:
        number = f.origin_version if f.kind == "payload" else self.aip.current_version
        return f"{self.aip.id}/v{number}/{f.path}"

    def run(self) -> None:
        from preservation.catalog import report_queries as rq

        with self.repo.catalog.session() as s:
            files = list(rq.version_files(s, self.aip.version_id))
            expected_keys = rq.aip_object_keys(s, self.aip.id)
            event_ids = set(rq.aip_event_ids(s, self.aip.id))
            access = (
                (rq.access_log_present(s), *rq.access_entries_of(s, self.aip.id))
                if not self.aip.public and rq.access_log_present(s)
                else (rq.access_log_present(s), 0, 0)
            )
        listing = {i.key: i.size for i in self.store.list(f"{self.aip.id}/")}
        present = self._integrity(files, listing)
        self._unexpected(listing, expected_keys)
        self._access(*access)
        self._formats(files)
        self._content(files, present)
        self._chain(listing, event_ids)

    # -------------------------------------------------------------- integrity
    def _integrity(self, files: list[CatalogFile], listing: dict[str, int]) -> list[CatalogFile]:
        self.performed |= {PRESENT.code, TOTALS.code}
        present: list[CatalogFile] = []
        for f in files:
            k = self.key(f)
            size = listing.get(k, -1)
            if size == -1:
                self.add(PRESENT, "fail", f"{f.path}: not on store {self.store_name} ({k})", f.path)
            elif size != f.size:
                self.add(
                    PRESENT,
                    "fail",
                    f"{f.path}: {size} bytes on store {self.store_name},"
                    f" the catalogue says {f.size}",
                    f.path,
                    expected=f.size,
                    found=size,
                )
                present.append(f)
            else:
                present.append(f)
        missing = len(files) - len(present)
        if not missing:
            self.add(PRESENT, "pass", f"all {len(files)} catalogued files are on {self.store_name}")
        payload = [f for f in files if f.kind == "payload"]
        count, size = len(payload), sum(f.size for f in payload)
        if (count, size) != (self.aip.file_count, self.aip.byte_count):
            self.add(
                TOTALS,
                "fail",
                f"catalogue rows give {count} files, {size} bytes; the version"
                f" records {self.aip.file_count} files, {self.aip.byte_count} bytes",
                expected=[self.aip.file_count, self.aip.byte_count],
                found=[count, size],
            )
        else:
            self.add(TOTALS, "pass", f"{count} payload files, {size} bytes, as the version records")
        self.payload_totals = (count, size)
        return present

    def _unexpected(self, listing: dict[str, int], expected: set[str]) -> None:
        self.performed.add(UNEXPECTED.code)
        events = f"{self.aip.id}/events/"
        extra = sorted(
            k
            for k in listing
            if k not in expected
            and not (k.startswith(events) and k.endswith(".json") and "/" not in k[len(events) :])
        )
        for k in extra[:100]:
            self.add(
                UNEXPECTED,
                "fail",
                f"{k}: object on {self.store_name} the catalogue does not know",
                k.removeprefix(f"{self.aip.id}/"),
            )
        if len(extra) > 100:
            self.add(UNEXPECTED, "fail", f"{len(extra) - 100} more unexpected objects")
        if not extra:
            self.add(UNEXPECTED, "pass", f"{len(listing)} objects under {self.aip.id}/, all known")

    # -------------------------------------------------------------- authenticity
    def _chain(self, listing: dict[str, int], event_ids: set[str]) -> None:
        self.performed.add(CHAIN.code)
        if not self.chain.ok:
            brk = self.chain.first_break
            assert brk is not None
            self.add(
                CHAIN,
                "fail",
                f"the catalogue's event chain is broken at seq {brk.seq}"
                f" ({brk.kind}); {self.chain.breaks} broken rows",
                seq=brk.seq,
            )
            return
        prefix = f"{self.aip.id}/events/"
        stored = {
            k[len(prefix) :].removesuffix(".json")[-36:] for k in listing if k.startswith(prefix)
        }
        unknown = sorted(stored - event_ids)
        for ident in unknown:
            self.add(CHAIN, "fail", f"event {ident} on {self.store_name} is not in the catalogue")
        later = event_ids - self.mets_events
        absent = len(later - stored)
        if absent:
            self.add(
                CHAIN,
                "warn",
                f"{absent} of the AIP's {len(later)} post-ingest events are"
                f" not on {self.store_name}",
                absent=absent,
            )
        if not unknown and not absent:
            self.add(
                CHAIN,
                "pass",
                f"chain of {self.chain.count} events verified; the AIP's"
                f" {len(later)} post-ingest events are on {self.store_name}",
            )

    def _content(self, files: list[CatalogFile], present: list[CatalogFile]) -> None:
        """Fixity of every present object, the METS, and whether payload files open."""
        from preservation.executor import bounded_map

        self.performed |= {FIXITY.code, OPENS.code}
        passed = opened = 0

        def one(f: CatalogFile) -> tuple[CatalogFile, dict[str, str] | None, str | None, Any]:
            algorithms = ["sha256"] + (["sha512"] if f.sha512 else [])
            tmp = Path(tempfile.mkstemp(dir=self.work)[1])
            try:
                try:
                    digests, _size = fetch_object(self.store, self.key(f), tmp, algorithms)
                except PreservationError as e:
                    return f, None, f"{e.code}: {e.message}", None
                extra: Any = None
                if f.kind == "payload":
                    extra = self._open(f, tmp)
                elif f.path == METS_PATH:
                    extra = self._mets(tmp)
                return f, digests, None, extra
            finally:
                tmp.unlink(missing_ok=True)

        for f, digests, error, extra in bounded_map(one, present, self.workers):
            if digests is None:
                self.add(
                    FIXITY, "fail", f"{f.path}: unreadable on {self.store_name}: {error}", f.path
                )
                continue
            bad = {
                a: d for a, d in digests.items() if d != (f.sha256 if a == "sha256" else f.sha512)
            }
            if bad:
                self.add(
                    FIXITY,
                    "fail",
                    f"{f.path}: {', '.join(sorted(bad))} differ from the catalogue",
                    f.path,
                    found=bad,
                )
            else:
                passed += 1
            if f.kind == "payload":
                result, message = extra
                if result == "pass":
                    opened += 1
                else:
                    self.add(OPENS, result, message, f.path)
            elif f.path == METS_PATH:
                self._mets_findings(f, digests, extra)
        if passed:
            self.add(FIXITY, "pass", f"{passed} of {len(files)} objects match the catalogue")
        payload = sum(1 for f in present if f.kind == "payload")
        if opened:
            self.add(OPENS, "pass", f"{opened} of {payload} payload files opened")
        self._manifests(present)

    def _open(self, f: CatalogFile, path: Path) -> tuple[str, str]:
        from preservation.ingest.usability import check_file

        fmt = FormatInfo(puid=f.puid, mime=f.mime, name=f.format_name, version=None, basis=None)
        entry = FileEntry(
            path=f.path.removeprefix("data/"), size=f.size, digests={}, source=path, format=fmt
        )
        outcome = check_file(entry)
        return outcome.result, outcome.message or f"{f.path}: {outcome.result}"

    def _mets(self, path: Path) -> tuple[str | None, list[str]]:
        from preservation.metadata.mets_reader import read_mets
        from preservation.metadata.xmlsafe import xml_wellformed
        from preservation.metadata.xsd import validate_mets

        problem = xml_wellformed(path, label=METS_PATH)
        if problem:
            return problem, []
        invalid = validate_mets(path)
        try:
            self.mets_events = {e.identifier for e in read_mets(path, label=METS_PATH).events}
        except PreservationError as e:
            invalid.append(f"{e.code}: {e.message}")
        return None, invalid

    def _mets_findings(self, f: CatalogFile, digests: dict[str, str], extra: Any) -> None:
        problem, invalid = extra
        self.performed |= {XML_PARSES.code, METS_VALID.code}
        if problem:
            self.add(XML_PARSES, "fail", problem, METS_PATH)
            return
        self.add(XML_PARSES, "pass", "METS parses", METS_PATH)
        recorded = self.aip.mets_sha256
        if recorded and digests.get("sha256") != recorded:
            self.add(
                METS_VALID,
                "fail",
                "the METS is not the one the catalogue recorded",
                METS_PATH,
                expected=recorded,
                found=digests.get("sha256"),
            )
        if invalid and "schemas not available" in invalid[0].lower():
            self.add(METS_VALID, "not performed", invalid[0], METS_PATH)
        elif invalid:
            for msg in invalid[:20]:
                self.add(METS_VALID, "fail", msg, METS_PATH)
        elif not recorded or digests.get("sha256") == recorded:
            self.add(METS_VALID, "pass", "METS valid against METS 1.12 / PREMIS 3", METS_PATH)

    def _manifests(self, present: list[CatalogFile]) -> None:
        """Payload manifests and Payload-Oxum of the stored bag against the catalogue."""
        from preservation.bags.manifest import read_manifest
        from preservation.bags.tagfiles import TagText

        self.performed.add(MANIFEST.code)
        payload = {f.path: f for f in present if f.kind == "payload"}
        manifests = [f for f in present if f.kind == "tag" and f.path.startswith("manifest-")]
        if not manifests:
            self.add(MANIFEST, "fail", "no payload manifest on the store")
            return
        problems = 0
        for m in manifests:
            algorithm = m.path.removeprefix("manifest-").removesuffix(".txt")
            if algorithm not in ("sha256", "sha512"):
                continue
            tmp = Path(tempfile.mkstemp(dir=self.work)[1])
            try:
                try:
                    fetch_object(self.store, self.key(m), tmp, ("sha256",))
                except PreservationError as e:
                    self.add(MANIFEST, "fail", f"{m.path}: unreadable: {e.message}", m.path)
                    problems += 1
                    continue
                bag_findings: list[Any] = []
                listed: set[str] = set()
                for entry in read_manifest(
                    TagText(tmp, "utf-8"), algorithm, bag_findings, kind="payload", file=m.path
                ):
                    listed.add(entry.path)
                    f = payload.get(entry.path)
                    want = None if f is None else (f.sha256 if algorithm == "sha256" else f.sha512)
                    if f is None:
                        self.add(
                            MANIFEST,
                            "fail",
                            f"{m.path} lists {entry.path}, which the catalogue does not",
                            entry.path,
                        )
                        problems += 1
                    elif want is not None and want != entry.digest:
                        self.add(
                            MANIFEST,
                            "fail",
                            f"{m.path}: {entry.path} is {entry.digest}, the catalogue says {want}",
                            entry.path,
                        )
                        problems += 1
                for path in sorted(set(payload) - listed):
                    self.add(MANIFEST, "fail", f"{m.path} does not list {path}", path)
                    problems += 1
            finally:
                tmp.unlink(missing_ok=True)
        problems += self._oxum(present)
        if not problems:
            self.add(
                MANIFEST,
                "pass",
                f"{len(manifests)} manifests agree with the catalogue on"
                f" {len(payload)} payload files",
            )

    def _oxum(self, present: list[CatalogFile]) -> int:
        """Payload-Oxum of the stored bag-info.txt against the payload totals (PCK-102)."""
        info = next((f for f in present if f.path == "bag-info.txt"), None)
        if info is None:
            return 0
        tmp = Path(tempfile.mkstemp(dir=self.work)[1])
        try:
            try:
                fetch_object(self.store, self.key(info), tmp, ("sha256",))
            except PreservationError:
                return 0  # reported by PCK-001
            text = tmp.read_text(encoding="utf-8", errors="replace")
        finally:
            tmp.unlink(missing_ok=True)
        for line in text.splitlines():
            label, _, value = line.partition(":")
            if label.strip().lower() != "payload-oxum":
                continue
            octets, _, count = value.strip().partition(".")
            want = f"{self.payload_totals[1]}.{self.payload_totals[0]}"
            if f"{octets}.{count}" != want:
                self.add(
                    TOTALS,
                    "fail",
                    f"bag-info.txt Payload-Oxum {value.strip()}, the catalogue gives {want}",
                    "bag-info.txt",
                )
                return 1
        return 0

    # -------------------------------------------------------------- usability, security
    def _formats(self, files: list[CatalogFile]) -> None:
        from preservation.formats.policy import policy_for

        self.performed.add(FORMATS.code)
        policy = policy_for(self.repo)
        payload = [f for f in files if f.kind == "payload"]
        derived = {f.derived_from for f in payload if f.derived_from}
        risky = 0
        for f in payload:
            status = policy.status_of(f.puid, f.mime, f.path)
            if status not in ("obsolete", "at-risk") or f.file_uuid in derived:
                continue
            risky += 1
            self.add(
                FORMATS,
                "fail" if status == "obsolete" else "warn",
                f"{f.path}: {f.format_name or f.puid or 'unidentified'} is {status} under"
                f" policy {policy.version}",
                f.path,
                puid=f.puid,
                status=status,
            )
        if not risky:
            self.add(
                FORMATS,
                "pass",
                f"no payload file in an obsolete or at-risk format under"
                f" policy {policy.version} ({len(payload)} files)",
            )

    def _access(self, present: bool, entries: int, unflagged: int) -> None:
        if self.aip.public:
            return  # public records: nothing to restrict
        self.performed.add(ACCESS_LOG.code)
        if not present:
            self.add(
                ACCESS_LOG,
                "fail",
                "the catalogue has no access log (run 'preservation db upgrade')",
            )
        elif unflagged:
            self.add(
                ACCESS_LOG,
                "fail",
                f"{unflagged} of {entries} logged accesses to this"
                " restricted AIP are not flagged restricted",
                entries=entries,
            )
        else:
            self.add(
                ACCESS_LOG,
                "pass",
                f"access log in place; {entries} accesses to this"
                " restricted AIP logged, all flagged",
                entries=entries,
            )


def _select(repo: Repository, req: CheckRequest, store: str) -> list[str]:
    from preservation.catalog import report_queries as rq

    if bool(req.aips) == req.all:
        raise UsageError("give --aip ID (one or more) or --all")
    with repo.catalog.session() as s:
        if req.aips:
            for aip in req.aips:
                found = rq.checked_aip(s, aip)
                if found is None:
                    raise NotInCatalog(kind="active AIP", ident=aip)
                if found.current_version not in rq.held_versions(s, aip, store):
                    raise UsageError(
                        f"AIP {aip}: store {store} holds no copy of its current version"
                        f" v{found.current_version}"
                    )
            ids = list(req.aips)
        else:
            ids = [a for a, _v in rq.aips_held_on(s, store)]
    if req.sample is not None:
        if req.sample < 1:
            raise UsageError("--sample must be at least 1")
        rng = random.Random(req.seed)
        ids = sorted(rng.sample(ids, min(req.sample, len(ids))))
    return ids


def run_check(repo: Repository, req: CheckRequest) -> CheckRun:
    """Check the AIPs the request names; one report and one event per AIP."""
    from preservation.catalog import queries as q
    from preservation.catalog import report_queries as rq
    from preservation.catalog.events import verify_chain
    from preservation.ingest.report import CheckReport
    from preservation.jobs import software_agent

    store = req.store or repo.config.primary_store_name
    settings = repo.config.settings.stores.get(store)
    if settings is None:
        raise UsageError(f"no store named {store!r}")
    if settings.cold:
        raise UsageError(
            f"store {store} is cold: its objects cannot be read without a restore;"
            " check a warm copy (--store) instead"
        )
    ids = _select(repo, req, store)
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    folder = req.out or repo.root / REPORTS_DIR / stamp
    folder.mkdir(parents=True, exist_ok=True)
    with repo.catalog.session() as s:
        job = q.start_job(
            s, CHECK_KIND, {"store": store, "aips": len(ids), "sample": req.sample, "all": req.all}
        )
        chain = verify_chain(s)
    run = CheckRun(job=job, store=store, folder=str(folder))
    agent = software_agent()
    try:
        for aip_id in ids:
            with repo.catalog.session() as s:
                aip = rq.checked_aip(s, aip_id)
            if aip is None:
                continue  # deleted meanwhile
            started = utcnow()
            work = Path(
                tempfile.mkdtemp(
                    prefix=f"check-{aip_id}-",
                    dir=repo.config.staging_dir if repo.config.staging_dir.is_dir() else None,
                )
            )
            try:
                check = _AipCheck(repo, aip, store, chain, work, req.workers)
                check.run()
            finally:
                shutil.rmtree(work, ignore_errors=True)
            report = CheckReport(
                transfer=aip.reference_code or aip.transfer_name or aip.id,
                aip=aip.id,
                started=started,
                finished=utcnow(),
                findings=check.findings,
                blocking_properties=PROPERTIES,
                settings={"store": store, "version": aip.current_version},
                kind="preservation",
                performed=check.performed,
            )
            json_path = folder / f"{aip.id}.json"
            html_path = folder / f"{aip.id}.html"
            with json_path.open("wb") as out:
                report.write_json(out)
            with html_path.open("wb") as out:
                report.write_html(out)
            totals = report.totals()
            failed = sorted(c for c, v in report.checks_used().items() if v["result"] == "fail")
            outcome = "failure" if failed else ("warning" if totals["warn"] else "success")
            from preservation import eventlog

            eventlog.record(
                repo,
                Event(
                    type="validation",
                    outcome=outcome,  # type: ignore[arg-type]
                    detail=f"DA/T 70 four-property check during long-term preservation of"
                    f" version {aip.current_version} on store {store}",
                    outcome_detail=", ".join(f"{n} {r}" for r, n in totals.items() if n)
                    + (f"; failed: {', '.join(failed)}" if failed else ""),
                    agents=[(agent.identifier, "executing program")],
                ),
                aip_id=aip.id,
                version_id=aip.version_id,
                version=aip.current_version,
                store_name=store,
                agents=[agent],
            )
            run.aips.append(
                AipOutcome(
                    aip.id,
                    aip.current_version,
                    store,
                    not failed,
                    totals,
                    failed,
                    str(json_path),
                    str(html_path),
                )
            )
    except BaseException as e:
        with repo.catalog.session() as s:
            q.set_job_state(
                s, job, "failed", result=run.summary(), error=getattr(e, "message", None) or repr(e)
            )
        raise
    with repo.catalog.session() as s:
        bad = sum(1 for a in run.aips if not a.ok)
        q.set_job_state(
            s,
            job,
            "done" if run.ok else "failed",
            result=run.summary(),
            error=None if run.ok else f"{bad} AIP(s) failed a check",
        )
    return run
