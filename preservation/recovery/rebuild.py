"""Rebuild the catalogue from one store alone.

``preservation catalog rebuild --from STORE [--into URL] [--force]`` reads everything
the store holds and writes a catalogue from it (the repository's own catalogue URL by
default, or another database with ``--into``; migrated to the head revision first).
A catalogue that already holds AIPs or events is refused unless ``--force`` (which
first deletes what a rebuild writes: AIPs, versions, files, copies, events,
incidents, journal rows; stores, agents and users stay).

What comes from where:

========================== =============================================================
AIPs, versions             every ``<aip>/v<N>/`` that holds ``bagit.txt`` (a declared
                           bag; leftovers without one are ignored and reported);
                           descriptive fields, reference code, title, transfer name
                           from the METS of the latest version; ``created_at`` of a
                           version from its METS header; the reason of a later version
                           from its events (migration, metadata modification, else
                           re-ingest); ``payload_key`` recomputed as ingest computes it
files                      payload: path, size, format, UUID, original name, role,
                           derivation, where the bytes live (``origin_version``) and
                           what opening it found (``properties``) from the METS,
                           digests from the bag manifests (compared
                           with the METS); record reference codes from the METS
                           records; tag files: every other object of the version,
                           hashed as it is read (and compared with the tag manifests)
copies, file copies        the primary store holds every version (verified when it was
                           made); a replica holds a version once a copy-level
                           ``replication`` event for it succeeded (verified then); a
                           replica without one is queued (pending); the rebuilt-from
                           store, if neither, holds it as ``stored``; the last
                           ``fixity check`` event gives ``last_audit_at``; files that
                           the last fixity check of a copy named as failed stay
                           failed unless a later repair event fixed them
events                     the METS of each version (ingest-time events) and the event
                           documents under ``<aip>/events/`` (everything later, and the
                           chain links of ingest events), inserted in chain order with
                           their recorded hashes, so ``events verify`` passes
agents                     the METS agents and the agent records of event documents
deleted AIPs               ``<aip>/tombstone.json``: the AIP row (state ``deleted``)
                           and its events; versions and files of a deleted AIP are gone
========================== =============================================================

Not reconstructible from the stores (documented in ``docs/decisions.md``):
incidents, journal rows (``jobs``), deletion requests, users and the access log
(operational records that are not written to the stores); a version's ``note``; exact
``created_at`` times of AIP rows and copies (the METS creation time stands in).

Memory: per AIP, the METS summary of one version at a time; for the whole run, the
event documents (about 1 KB each), which must be linked into one chain at the end.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, cast

from preservation.errors import PreservationError, UsageError
from preservation.hashing import HashingReader
from preservation.model import Agent, Event, FileEntry, Record, stored_properties
from preservation.paths import join_key

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from preservation.catalog.db import Catalog
    from preservation.metadata.mets_reader import MetsSummary
    from preservation.repository import Repository
    from preservation.storage.base import Store

log = logging.getLogger(__name__)

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_VERSION = re.compile(r"^v([1-9][0-9]*)$")
METS_PATH = "metadata/mets.xml"
BAGIT_TXT = "bagit.txt"
MAX_EVENT_DOCUMENT = 4 * 1024 * 1024
_REASON_OF_EVENT = {"migration": "migration", "metadata modification": "metadata"}
GENESIS = "0" * 64


@dataclass
class RebuildReport:
    store: str
    into: str
    aips: int = 0
    deleted_aips: int = 0
    versions: int = 0
    files: int = 0
    copies: int = 0
    events: int = 0
    agents: int = 0
    chain_ok: bool = False
    chain_segments: int = 0  # 1: one unbroken chain from the first event
    relinked: int = 0  # events without recorded links, chained anew at the end
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Scan:
    versions: set[int] = field(default_factory=set)
    prefixes: set[int] = field(default_factory=set)  # version prefixes with any object
    events: list[str] = field(default_factory=list)
    tombstone: bool = False


@dataclass
class _Doc:
    event: Event
    aip: str | None
    version: int | None
    version_id: int | None
    store: str | None
    prev_hash: str | None
    hash: str | None
    agents: list[Agent]


# --------------------------------------------------------------------- reading


def scan_store(store: Store) -> dict[str, _Scan]:
    """What the store holds, per AIP: declared versions, event documents, tombstone."""
    from preservation.eventlog import EVENTS_DIR
    from preservation.storage.deletion import TOMBSTONE

    found: dict[str, _Scan] = {}
    for info in store.list(""):
        parts = info.key.split("/")
        if len(parts) < 2 or not _UUID.match(parts[0]):
            continue
        scan = found.setdefault(parts[0], _Scan())
        m = _VERSION.match(parts[1])
        if m and len(parts) > 2:
            scan.prefixes.add(int(m.group(1)))
            if len(parts) == 3 and parts[2] == BAGIT_TXT:
                scan.versions.add(int(m.group(1)))
        elif parts[1] == EVENTS_DIR and len(parts) == 3 and parts[2].endswith(".json"):
            scan.events.append(info.key)
        elif len(parts) == 2 and parts[1] == TOMBSTONE:
            scan.tombstone = True
    return found


def _read_json(store: Store, key: str) -> dict[str, Any]:
    with store.open(key) as fh:
        data = fh.read(MAX_EVENT_DOCUMENT + 1)
    if len(data) > MAX_EVENT_DOCUMENT:
        raise UsageError(f"{store.name}:{key} is larger than {MAX_EVENT_DOCUMENT} bytes")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{store.name}:{key} is not a JSON document: {e}") from e
    if not isinstance(doc, dict):
        raise UsageError(f"{store.name}:{key} is not a JSON object")
    return doc


def _parse_doc(doc: Mapping[str, Any]) -> _Doc:
    e = doc["event"]
    event = Event(
        type=str(e["type"]),
        outcome=e["outcome"],
        detail=str(e.get("detail") or ""),
        outcome_detail=str(e.get("outcome_detail") or ""),
        datetime=datetime.fromisoformat(e["datetime"]),
        identifier=str(e["identifier"]),
        agents=[(str(a[0]), str(a[1])) for a in e.get("agents") or []],
        objects=[str(o) for o in e.get("objects") or []],
    )
    agents = [
        Agent(str(a["id"]), str(a["name"]), a["type"], version=a.get("version"), note=a.get("note"))
        for a in doc.get("agent_records") or []
    ]
    vid = doc.get("version_id")
    return _Doc(
        event=event,
        aip=doc.get("aip"),
        version=doc.get("version"),
        version_id=int(vid) if vid is not None else None,
        store=doc.get("store"),
        prev_hash=doc.get("prev_hash"),
        hash=doc.get("hash"),
        agents=agents,
    )


class _Readable(io.RawIOBase):
    """A plain, non-seekable binary stream over a :class:`HashingReader`."""

    def __init__(self, reader: HashingReader) -> None:
        self.reader = reader

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return self.reader.readinto(b)


def _lines(reader: HashingReader) -> Iterator[str]:
    """The UTF-8 lines of a stream, read in blocks."""
    rest = b""
    while block := reader.read(1024 * 1024):
        rest += block
        *lines, rest = rest.split(b"\n")
        for line in lines:
            yield line.decode("utf-8").rstrip("\r")
    if rest:
        yield rest.decode("utf-8").rstrip("\r")


def _manifest_lines(reader: HashingReader) -> Iterator[tuple[str, str]]:
    from preservation.bags.manifest import decode_path

    for line in _lines(reader):
        if not line.strip():
            continue
        digest, _, path = line.partition(" ")
        yield decode_path(path.lstrip(" *")), digest.lower()


@dataclass
class _Version:
    number: int
    summary: MetsSummary
    mets_sha256: str
    tags: dict[str, tuple[dict[str, str], int]]  # path -> (digests, size)
    manifests: dict[str, dict[str, str]]  # algorithm -> path -> digest
    own: dict[str, int]  # payload objects held by this version: bag path -> size


def read_version(store: Store, aip_id: str, number: int, problems: list[str]) -> _Version:
    """One declared version: its METS, manifests, and every tag file hashed."""
    from preservation.metadata.mets_reader import read_mets

    prefix = join_key(aip_id, f"v{number}") + "/"
    listing = {i.key[len(prefix) :]: i.size for i in store.list(prefix)}
    tags: dict[str, tuple[dict[str, str], int]] = {}
    manifests: dict[str, dict[str, str]] = {}
    tag_manifests: dict[str, dict[str, str]] = {}
    summary: MetsSummary | None = None
    mets_sha256 = ""
    for rel in sorted(p for p in listing if not p.startswith("data/")):
        with store.open(prefix + rel) as raw:
            reader = HashingReader(raw, ("sha256", "sha512"))
            m = re.fullmatch(r"(tag)?manifest-(\w+)\.txt", rel)
            if rel == METS_PATH:
                summary = read_mets(
                    cast("IO[bytes]", _Readable(reader)), label=f"{store.name}:{prefix}{rel}"
                )
            elif m:
                target = tag_manifests if m.group(1) else manifests
                target[m.group(2)] = dict(_manifest_lines(reader))
            while reader.read(1024 * 1024):
                pass
        digests = reader.hexdigests()
        tags[rel] = (digests, reader.size)
        if rel == METS_PATH:
            mets_sha256 = digests["sha256"]
    if summary is None:
        raise UsageError(f"{store.name}:{prefix}{METS_PATH} is missing: not an AIP version")
    for alg, listed in tag_manifests.items():
        for path, digest in listed.items():
            got = tags.get(path, ({}, 0))[0].get(alg)
            if got is not None and got != digest:
                problems.append(
                    f"{store.name}:{prefix}{path}: {alg} {got} differs from tagmanifest ({digest})"
                )
    own = {p: n for p, n in listing.items() if p.startswith("data/")}
    return _Version(number, summary, mets_sha256, tags, manifests, own)


# --------------------------------------------------------------------- building rows


def _record_codes(summary: MetsSummary) -> dict[str, str]:
    """Payload path -> reference code of the record that lists it (the last one, as
    ingest links a file to its sheet row)."""
    row_of: dict[str, Record] = {}
    for r in summary.records:
        for path in r.files:
            row_of[path] = r
    return {p: r.reference_code for p, r in row_of.items() if r.reference_code}


def _file_rows(
    v: _Version, aip_id: str, problems: list[str], store_name: str
) -> tuple[list[dict[str, Any]], int, int]:
    codes = _record_codes(v.summary)
    rows: list[dict[str, Any]] = []
    count = size = 0
    for f in v.summary.files:
        rows.append(_payload_row(f, v, codes, problems, aip_id, store_name))
        count += 1
        size += f.size
    for path, (digests, n) in sorted(v.tags.items()):
        rows.append(
            {
                "path": path,
                "kind": "tag",
                "size": n,
                "sha256": digests["sha256"],
                "sha512": digests.get("sha512"),
                "origin_version": v.number,
            }
        )
    return rows, count, size


def _payload_row(
    f: FileEntry,
    v: _Version,
    codes: Mapping[str, str],
    problems: list[str],
    aip_id: str,
    store_name: str,
) -> dict[str, Any]:
    bag_path = f.bag_path
    digests = dict(f.digests)
    for alg in ("sha256", "sha512"):
        listed = v.manifests.get(alg, {}).get(bag_path)
        if listed is None:
            continue
        if alg in digests and digests[alg].lower() != listed:
            problems.append(
                f"{aip_id} v{v.number} {bag_path}: {alg} in the manifest ({listed}) differs"
                f" from the METS ({digests[alg]}); the manifest's is kept"
            )
        digests[alg] = listed
    if "sha256" not in digests:
        raise UsageError(f"{aip_id} v{v.number} {bag_path}: no sha256 in manifest or METS")
    origin = v.summary.stored_in.get(f.uuid, v.number)
    if origin == v.number and v.own.get(bag_path) != f.size:
        problems.append(
            f"{store_name}:{aip_id}/v{v.number}/{bag_path}: expected {f.size} bytes,"
            f" found {v.own.get(bag_path, 'no object')}"
        )
    fmt = f.format
    return {
        "path": bag_path,
        "kind": "payload",
        "size": f.size,
        "sha256": digests["sha256"],
        "sha512": digests.get("sha512"),
        "puid": fmt.puid if fmt else None,
        "mime": fmt.mime if fmt else None,
        "format_name": fmt.name if fmt else None,
        "format_version": fmt.version if fmt else None,
        "file_uuid": f.uuid,
        "original_name": f.original_name,
        "role": f.role,
        "derived_from": f.derived_from,
        "record_reference_code": codes.get(f.path),
        "origin_version": origin,
        "properties": stored_properties(f.properties),
    }


def _payload_key(v1: _Version, reference_code: str | None) -> str:
    """As ingest computes it: sha256 over sorted ``path<TAB>sha256`` lines, then the
    reference code."""
    h = hashlib.sha256()
    digests = {f.path: f.digests.get("sha256", "") for f in v1.summary.files}
    for f in v1.summary.files:
        listed = v1.manifests.get("sha256", {}).get(f.bag_path)
        if listed:
            digests[f.path] = listed
    for path in sorted(digests):
        h.update(f"{path}\t{digests[path]}\n".encode())
    h.update((reference_code or "").encode())
    return h.hexdigest()


def _year(value: str | None) -> int | None:
    if value and re.fullmatch(r"\d{4}", value.strip()):
        return int(value.strip())
    return None


# --------------------------------------------------------------------- copies


@dataclass
class _CopyState:
    state: str | None = None
    verified_at: datetime | None = None
    last_audit_at: datetime | None = None
    failed: dict[str, str] = field(default_factory=dict)  # path -> outcome


_FAILED = re.compile(r"files failed: (.*?)(?:; and \d+ more \(audit log, run [^)]*\))?$")


def _failed_paths(outcome_detail: str) -> dict[str, str]:
    m = _FAILED.search(outcome_detail)
    if not m:
        return {}
    found: dict[str, str] = {}
    for part in m.group(1).split("; "):
        pm = re.fullmatch(r"(.+) \((\w+)\)", part.strip())
        if pm:
            found[pm.group(1)] = pm.group(2)
    return found


def _copy_states(
    aip_id: str, docs: Sequence[_Doc], uuids: Mapping[str, str]
) -> dict[tuple[int, str], _CopyState]:
    """(version, store) -> what the events say of that copy, oldest event first."""
    states: dict[tuple[int, str], _CopyState] = {}
    for d in sorted(docs, key=lambda d: d.event.datetime):
        if d.version is None or d.store is None:
            continue
        c = states.setdefault((int(d.version), d.store), _CopyState())
        e = d.event
        if e.type == "replication" and e.objects == [f"urn:uuid:{aip_id}"]:
            if e.outcome == "success":
                c.state, c.verified_at = "verified", e.datetime
            else:
                c.state = "failed"
        elif e.type == "replication" and e.outcome == "success":  # a repair of files
            # the repaired object is shared by every version that reuses it
            for (_, store), other in states.items():
                if store == d.store:
                    for obj in e.objects:
                        other.failed.pop(uuids.get(obj, ""), None)
        elif e.type == "fixity check":
            c.last_audit_at = e.datetime
            c.failed = _failed_paths(e.outcome_detail) if e.outcome == "failure" else {}
    return states


# --------------------------------------------------------------------- the chain


def chain_order(events: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], int, int]:
    """Event rows in chain order: segments of recorded links (a segment starts where
    an event's predecessor is not among the events), oldest segment first; then the
    events without recorded links, chained anew after the last one.

    Returns ``(rows, segments, relinked)``.
    """
    from preservation.catalog.events import canonical_event_bytes, event_hash

    linked = [e for e in events if e.get("hash") and e.get("prev_hash")]
    loose = [e for e in events if not (e.get("hash") and e.get("prev_hash"))]
    by_prev: dict[str, list[dict[str, Any]]] = {}
    hashes = {e["hash"] for e in linked}
    for e in linked:
        by_prev.setdefault(e["prev_hash"], []).append(e)
    heads = sorted(
        (e for e in linked if e["prev_hash"] not in hashes), key=lambda e: e["datetime"]
    )
    ordered: list[dict[str, Any]] = []
    placed: set[str] = set()
    for head in heads:
        cur: dict[str, Any] | None = head
        while cur is not None and cur["id"] not in placed:
            ordered.append(cur)
            placed.add(cur["id"])
            nxt = sorted(by_prev.get(cur["hash"], []), key=lambda x: x["datetime"])
            cur = next((x for x in nxt if x["id"] not in placed), None)
    # cycles or forks leave events unplaced: keep them, in time order
    rest = sorted((e for e in linked if e["id"] not in placed), key=lambda e: e["datetime"])
    ordered.extend(rest)
    prev = ordered[-1]["hash"] if ordered else GENESIS
    for e in sorted(loose, key=lambda x: x["datetime"]):
        e["prev_hash"] = prev
        e["hash"] = event_hash(
            canonical_event_bytes(
                identifier=e["id"],
                type=e["type"],
                datetime=e["datetime"],
                outcome=e["outcome"],
                detail=e["detail"],
                outcome_detail=e["outcome_detail"],
                agents=e["agents"],
                objects=e["objects"],
                aip_id=e["aip_id"],
                version_id=e["version_id"],
                store_name=e["store_name"],
                prev_hash=prev,
            )
        )
        prev = e["hash"]
        ordered.append(e)
    return ordered, len(heads) + len(rest), len(loose)


def _event_row(
    event: Event, aip_id: str, version_id: int | None, store: str | None,
    prev_hash: str | None, hash: str | None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "id": event.identifier,
        "aip_id": aip_id,
        "version_id": version_id,
        "store_name": store,
        "type": event.type,
        "datetime": event.datetime,
        "outcome": event.outcome,
        "detail": event.detail,
        "outcome_detail": event.outcome_detail,
        "agents": [[a, r] for a, r in event.agents],
        "objects": list(event.objects),
        "prev_hash": prev_hash,
        "hash": hash,
    }


# --------------------------------------------------------------------- the run


class _Rebuild:
    def __init__(self, repo: Repository, source: str, catalog: Catalog, report: RebuildReport):
        self.repo = repo
        self.store = repo.store(source)
        self.catalog = catalog
        self.report = report
        self.primary = repo.config.primary_store_name
        self.configured = dict(repo.config.settings.stores)
        self.events: list[dict[str, Any]] = []
        self.agents: dict[str, Agent] = {}

    def run(self) -> None:
        from preservation.catalog import recovery_queries as rq

        scans = scan_store(self.store)
        docs: dict[str, list[_Doc]] = {}
        for aip_id, scan in sorted(scans.items()):
            docs[aip_id] = []
            for key in sorted(scan.events):
                try:
                    docs[aip_id].append(_parse_doc(_read_json(self.store, key)))
                except (KeyError, TypeError, ValueError, UsageError) as e:
                    self.report.problems.append(f"{self.store.name}:{key}: unreadable event ({e})")
        known_ids: dict[tuple[str, int], int] = {}
        for aip_id, ds in docs.items():
            for d in ds:
                if d.version is not None and d.version_id is not None:
                    known = known_ids.setdefault((aip_id, int(d.version)), d.version_id)
                    if known != d.version_id:
                        self.report.problems.append(
                            f"{aip_id} v{d.version}: event documents name version ids"
                            f" {known} and {d.version_id}"
                        )
        self.next_id = max(known_ids.values(), default=0) + 1
        with self.catalog.session() as s:
            self.stores = rq.known_stores(s)
        for aip_id, scan in sorted(scans.items()):
            leftovers = sorted(scan.prefixes - scan.versions)
            for n in leftovers:
                self.report.problems.append(
                    f"{self.store.name}:{aip_id}/v{n}/ has no bagit.txt: leftovers, not a version"
                )
            try:
                if scan.versions:
                    self.aip(aip_id, scan, docs[aip_id], known_ids)
                elif scan.tombstone:
                    self.deleted_aip(aip_id, docs[aip_id])
                elif docs[aip_id]:
                    self.report.problems.append(
                        f"{aip_id}: events but neither a version nor a tombstone on"
                        f" {self.store.name}; its {len(docs[aip_id])} events are left out"
                    )
            except PreservationError as e:
                self.report.problems.append(f"{aip_id}: not rebuilt: {e.code}: {e.message}")
        self.finish_events()

    def aip(
        self, aip_id: str, scan: _Scan, docs: list[_Doc], known_ids: Mapping[tuple[str, int], int]
    ) -> None:
        from preservation.catalog import queries as q
        from preservation.catalog import recovery_queries as rq

        numbers = sorted(scan.versions)
        by_event = {d.event.identifier: d for d in docs}
        problems = self.report.problems
        with self.catalog.session() as s:
            version_ids: dict[int, int] = {}
            latest: _Version | None = None
            first: _Version | None = None
            uuids: dict[str, str] = {}
            rows_added = False
            for n in numbers:
                v = read_version(self.store, aip_id, n, problems)
                if v.summary.aip_id != aip_id:
                    raise UsageError(f"{aip_id}/v{n}: the METS describes AIP {v.summary.aip_id}")
                if first is None:
                    first = v
                    self._add_aip(s, aip_id, v)
                    rows_added = True
                latest = v
                vid = known_ids.get((aip_id, n))
                if vid is None:
                    vid = self.next_id
                    self.next_id += 1
                version_events = [d for d in docs if d.version == n]
                reason = "ingest" if n == 1 else "reingest"
                for d in version_events:
                    reason = _REASON_OF_EVENT.get(d.event.type, reason) if n > 1 else reason
                created = v.summary.created or min(
                    (e.datetime for e in v.summary.events), default=None
                )
                version_ids[n] = rq.add_rebuilt_version(
                    s,
                    {
                        "id": vid,
                        "aip_id": aip_id,
                        "number": n,
                        "created_at": created,
                        "reason": reason,
                        "mets_sha256": v.mets_sha256,
                        "bag_sha256": v.tags.get("tagmanifest-sha256.txt", ({}, 0))[0].get(
                            "sha256"
                        ),
                        "descriptive": dict(v.summary.descriptive),
                    },
                )
                rows, count, size = _file_rows(v, aip_id, problems, self.store.name)
                q.add_files_batched(s, version_ids[n], rows)
                rq.set_version_totals(s, version_ids[n], count, size)
                uuids.update({f.uuid: f.bag_path for f in v.summary.files})
                self.report.versions += 1
                self.report.files += len(rows)
                for a in v.summary.agents:
                    self.agents.setdefault(a.identifier, a)
                # ingest-time events: the METS of the first version
                if n == numbers[0]:
                    for event in v.summary.events:
                        chained = by_event.get(event.identifier)
                        self.events.append(
                            _event_row(
                                event,
                                aip_id,
                                chained.version_id if chained else vid,
                                chained.store if chained else None,
                                chained.prev_hash if chained else None,
                                chained.hash if chained else None,
                            )
                        )
            assert first is not None and latest is not None and rows_added
            self._finish_aip(s, aip_id, first, latest)
            self._copies(s, aip_id, numbers, version_ids, docs, uuids)
            mets_ids = {e.identifier for e in first.summary.events}
            for d in docs:
                if d.event.identifier in mets_ids:
                    continue
                vid2 = d.version_id
                if vid2 is None and d.version is not None:
                    vid2 = version_ids.get(int(d.version))
                self.events.append(
                    _event_row(d.event, aip_id, vid2, d.store, d.prev_hash, d.hash)
                )
                for a in d.agents:
                    self.agents.setdefault(a.identifier, a)
            self.report.aips += 1

    def _add_aip(self, s: Session, aip_id: str, v1: _Version) -> None:
        from preservation.catalog import recovery_queries as rq

        d = v1.summary.descriptive
        ref = v1.summary.reference_code or d.get("reference_code")
        rq.add_rebuilt_aip(
            s,
            {
                "id": aip_id,
                "reference_code": ref or None,
                "transfer_name": d.get("transfer") or v1.summary.label or None,
                "created_at": v1.summary.created
                or min((e.datetime for e in v1.summary.events), default=None),
                "state": "active",
                "current_version": v1.number,
                "payload_key": _payload_key(v1, ref),
            },
        )

    def _finish_aip(self, s: Session, aip_id: str, first: _Version, latest: _Version) -> None:
        from preservation.catalog.models import Aip
        from preservation.catalog.visibility import is_public

        aip = s.get(Aip, aip_id)
        assert aip is not None
        d = latest.summary.descriptive
        aip.current_version = latest.number
        aip.title = d.get("title") or latest.summary.label or None
        aip.fonds = d.get("fonds") or None
        aip.year = _year(d.get("year"))
        aip.security_level = d.get("security_level") or None
        aip.open_status = d.get("open_status") or None
        aip.retention = d.get("retention") or None
        if hasattr(aip, "public"):
            aip.public = is_public(d)

    def _copies(
        self,
        s: Session,
        aip_id: str,
        numbers: Sequence[int],
        version_ids: Mapping[int, int],
        docs: Sequence[_Doc],
        uuids: Mapping[str, str],
    ) -> None:
        from sqlalchemy import select, update

        from preservation.catalog import recovery_queries as rq
        from preservation.catalog.models import AipVersion, File, FileCopy

        states = _copy_states(aip_id, docs, uuids)
        for n in numbers:
            vid = version_ids[n]
            made = s.get(AipVersion, vid)
            created = made.created_at if made is not None else None
            for name in sorted(self.configured):
                if name not in self.stores:
                    continue
                c = states.get((n, name), _CopyState())
                if name == self.primary:
                    state, verified = "verified", c.verified_at or created
                elif c.state is not None:
                    state, verified = c.state, c.verified_at
                elif name == self.store.name:
                    state, verified = "stored", None
                elif self.configured[name].role == "replica":
                    state, verified = "pending", None
                else:
                    continue
                copy_id = rq.add_rebuilt_copy(
                    s,
                    vid,
                    name,
                    state=state,
                    created_at=None,
                    verified_at=verified,
                    last_audit_at=c.last_audit_at,
                )
                self.report.copies += 1
                if c.failed:
                    ids = dict(
                        s.execute(
                            select(File.path, File.id).where(
                                File.version_id == vid, File.path.in_(list(c.failed))
                            )
                        ).all()
                    )
                    for path, outcome in c.failed.items():
                        if path in ids:
                            s.execute(
                                update(FileCopy)
                                .where(FileCopy.copy_id == copy_id, FileCopy.file_id == ids[path])
                                .values(outcome="missing" if outcome == "missing" else "fail")
                            )

    def deleted_aip(self, aip_id: str, docs: list[_Doc]) -> None:
        from preservation.catalog import recovery_queries as rq
        from preservation.storage.deletion import tombstone_key

        tomb = _read_json(self.store, tombstone_key(aip_id))
        versions = tomb.get("versions") or []
        with self.catalog.session() as s:
            rq.add_rebuilt_aip(
                s,
                {
                    "id": aip_id,
                    "reference_code": tomb.get("reference_code"),
                    "title": tomb.get("title"),
                    "state": "deleted",
                    "current_version": max(
                        (int(v.get("number", 1)) for v in versions if isinstance(v, dict)),
                        default=1,
                    ),
                },
            )
        for d in docs:
            self.events.append(
                _event_row(d.event, aip_id, d.version_id, d.store, d.prev_hash, d.hash)
            )
            for a in d.agents:
                self.agents.setdefault(a.identifier, a)
        self.report.deleted_aips += 1

    def finish_events(self) -> None:
        from preservation.catalog import recovery_queries as rq
        from preservation.catalog.events import upsert_agent, verify_chain

        rows, segments, relinked = chain_order(self.events)
        with self.catalog.session() as s:
            rq.advance_sequences(s)
            for agent in self.agents.values():
                upsert_agent(s, agent)
            self.report.events = rq.add_rebuilt_events(s, rows)
        self.report.agents = len(self.agents)
        self.report.chain_segments = segments
        self.report.relinked = relinked
        if relinked:
            self.report.problems.append(
                f"{relinked} events have no recorded chain links on {self.store.name}"
                " (written before event documents carried them): chained anew at the end"
            )
        with self.catalog.session() as s:
            self.report.chain_ok = verify_chain(s).ok


def rebuild_catalog(
    repo: Repository, *, source: str, into: str | None = None, force: bool = False
) -> RebuildReport:
    """Rebuild the catalogue from store ``source`` into ``into`` (default: the
    repository's catalogue); see the module docstring."""
    from preservation.catalog import recovery_queries as rq
    from preservation.catalog.db import Catalog
    from preservation.catalog.models import sync_stores

    repo.config.store_settings(source)  # ConfigError for an unknown store
    if repo.config.settings.stores[source].cold:
        raise UsageError(f"store {source} is cold: its objects cannot be read without a restore")
    url = into or repo.config.catalog_url
    catalog = Catalog(url)
    try:
        catalog.upgrade()
        with catalog.session() as s:
            counts = rq.catalog_row_counts(s)
            if any(counts.values()):
                if not force:
                    listed = ", ".join(f"{n} {t}" for t, n in counts.items() if n)
                    raise UsageError(
                        f"the catalogue at {catalog.url.render_as_string(hide_password=True)}"
                        f" is not empty ({listed}); rebuild into an empty one, or pass --force"
                        " to replace its contents"
                    )
                rq.clear_catalog(s)
            sync_stores(s, repo.config)
        report = RebuildReport(
            store=source, into=catalog.url.render_as_string(hide_password=True)
        )
        _Rebuild(repo, source, catalog, report).run()
        return report
    finally:
        catalog.dispose()


__all__ = ["RebuildReport", "chain_order", "read_version", "rebuild_catalog", "scan_store"]
