"""New AIP versions: v(N+1) of an AIP without re-uploading unchanged payload.

A version is immutable; a metadata correction, a migration or a re-ingest makes the
next one. :func:`new_version` builds it on the primary store:

1. read version N's METS and ``bag-info.txt`` from the store;
2. upload the new files (migrated, added) to ``.staging/<job>/body/data/...``;
3. write the new METS (every object, ``previous_version``, where each carried file's
   bytes live, derivation relationships, the events so far plus the new ones) and the
   bag's tag files: every payload file is in the manifests, and each file carried over
   is also in ``fetch.txt`` with a URL naming the earlier version's object::

       preservation://<aip-uuid>/v<origin>/data/<path, percent-encoded>

   (``<origin>`` is the version whose objects hold the bytes, followed through any
   number of versions; the URL is the store key, so it resolves against any store
   that holds the AIP; the AIP id is the URL's authority, as bagit-python wants one).
   Tag files of version N under ``metadata/`` other than the METS (the ingest
   report, submission metadata) are copied into the new version;
4. finalise exactly as ingest does: staged objects verified, moved to
   ``<aip>/v<N+1>/``, the catalogue commit (version, files with their
   ``origin_version``, copies: primary verified, one pending copy per replica store,
   and the events), ``bagit.txt`` last.

A journal row (``jobs``, kind ``version``) is written first; :func:`cleanup_interrupted`
rolls back a version whose catalogue commit did not happen (staging and the objects
under ``<aip>/v<N+1>/`` deleted; version N is never touched) and rolls forward one
whose commit did.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote

from preservation import AGENT_NAME, __version__
from preservation.errors import (
    IntegrityError,
    JobBusy,
    PreservationError,
    UsageError,
)
from preservation.faults import checkpoint
from preservation.model import Agent, Event, FileEntry, FormatInfo, new_uuid, utcnow
from preservation.paths import join_key, path_problem
from preservation.repository import Repository

log = logging.getLogger(__name__)

JOB_KIND = "version"
STAGING_PREFIX = ".staging"
BAGIT_TXT = "bagit.txt"
METS_PATH = "metadata/mets.xml"
FETCH_SCHEME = "preservation"
# bag-info labels the bag writer computes; never carried over from the previous version
_COMPUTED = {"payload-oxum", "bagging-date", "bag-software-agent", "bag-size"}
# tag files every version writes anew; the other metadata/* files are carried over
_REGENERATED = {METS_PATH}


@dataclass
class NewFile:
    """A file the new version adds (a migrated or access copy, or a new original)."""

    path: str  # payload path, relative to data/
    source: Path  # a local file holding the bytes
    role: Literal["original", "migrated", "access"] = "original"
    derived_from: str | None = None  # uuid of the file it was made from
    format: FormatInfo | None = None  # None: identified here
    uuid: str = field(default_factory=new_uuid)
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class Changes:
    """What differs from the previous version."""

    add: list[NewFile] = field(default_factory=list)
    descriptive: dict[str, str] = field(default_factory=dict)  # AIP-level fields changed
    note: str | None = None


def version_prefix(aip_id: str, version: int) -> str:
    return join_key(aip_id, f"v{version}")


def fetch_url(aip_id: str, origin: int, payload_path: str) -> str:
    """The ``fetch.txt`` URL of a payload file held by version ``origin``."""
    return f"{FETCH_SCHEME}://{aip_id}/v{origin}/data/{quote(payload_path, safe='/')}"


def parse_fetch_url(url: str) -> str:
    """The store key a :func:`fetch_url` names (raises UsageError for any other URL)."""
    prefix = f"{FETCH_SCHEME}://"
    if not url.startswith(prefix):
        raise UsageError(f"not a {prefix} fetch URL: {url!r}")
    key = unquote(url[len(prefix) :])
    parts = key.split("/")
    if len(parts) < 4 or not parts[1].startswith("v") or parts[2] != "data":
        raise UsageError(f"fetch URL {url!r} does not name <aip>/v<N>/data/<path>")
    if path_problem(key):
        raise UsageError(f"fetch URL {url!r}: {path_problem(key)}")
    return key


def default_agents(repo: Repository, person: str | None = None) -> list[Agent]:
    """This software, the organisation, and (when given) the person acting."""
    s = repo.config.settings.repository
    org = s.organization or s.name
    agents = [
        Agent(f"{AGENT_NAME}/{__version__}", AGENT_NAME, "software", version=__version__),
        Agent(f"organization:{org}", org, "organization"),
    ]
    if person:
        agents.append(Agent(f"person:{person}", person, "person"))
    return agents


@dataclass
class VersionResult:
    aip: str
    version: int
    added: list[str]
    carried: int
    uploaded_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Builder:
    def __init__(
        self,
        repo: Repository,
        aip_id: str,
        reason: str,
        changes: Changes,
        events: Sequence[Event],
        agents: Sequence[Agent],
    ) -> None:
        self.repo = repo
        self.aip_id = aip_id
        self.reason = reason
        self.changes = changes
        self.events = list(events)
        self.agents = list(agents)
        self.job_id = new_uuid()
        self.store = repo.primary
        self.algorithms = tuple(repo.config.settings.ingest.digests)
        root = repo.config.staging_dir
        root.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix=f"version-{self.job_id}-", dir=root))
        self.staged: dict[str, int] = {}  # staging key -> size

    # ----------------------------------------------------------------- helpers
    def staging_key(self, bag_path: str) -> str:
        part = "declaration" if bag_path == BAGIT_TXT else "body"
        return join_key(STAGING_PREFIX, self.job_id, part, bag_path)

    def download(self, key: str, rel: str) -> Path:
        target = self.work / "prev" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.store.open(key) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
        return target

    # ----------------------------------------------------------------- steps
    def start(self) -> None:
        from preservation.catalog import queries as q

        with self.repo.catalog.session() as s:
            aip = q.require_aip(s, self.aip_id)
            if aip.state != "active":
                raise UsageError(f"AIP {self.aip_id} is {aip.state}; no new version")
            self.previous = aip.current_version
            self.number = self.previous + 1
            busy = [
                j
                for j in q.unfinished_jobs(s, JOB_KIND)
                if (j.get("params") or {}).get("aip") == self.aip_id
            ]
            if busy:
                raise JobBusy(job=f"new version of {self.aip_id}", holder=busy[0]["id"])
            target = version_prefix(self.aip_id, self.number) + "/"
            if any(True for _ in self.store.list(target)):
                raise UsageError(
                    f"{target} already holds objects on {self.store.name}"
                    " (leftovers of an unrecorded version)"
                )
            q.start_job(
                s,
                JOB_KIND,
                {
                    "aip": self.aip_id,
                    "version": self.number,
                    "staging": join_key(STAGING_PREFIX, self.job_id),
                    "work": str(self.work),
                },
                job_id=self.job_id,
                aip_id=self.aip_id,
                host=socket.gethostname(),
                pid=os.getpid(),
            )

    def read_previous(self) -> None:
        from preservation.bags.tagfiles import read_bag_info
        from preservation.metadata.mets_reader import read_mets

        prefix = version_prefix(self.aip_id, self.previous)
        with self.store.open(join_key(prefix, METS_PATH)) as fh:
            self.summary = read_mets(fh, label=f"{prefix}/{METS_PATH}")
        info_path = self.download(join_key(prefix, "bag-info.txt"), "bag-info.txt")
        info, _problems = read_bag_info(info_path, "utf-8", strict=False)
        self.bag_info = [(k, v) for k, v in info.pairs if k.casefold() not in _COMPUTED]
        self.carried_tags: dict[str, Path] = {}
        for tag in self.summary.tag_files:
            if tag.path.startswith("metadata/") and tag.path not in _REGENERATED:
                self.carried_tags[tag.path] = self.download(join_key(prefix, tag.path), tag.path)
        self.origin: dict[str, int] = {}
        for f in self.summary.files:
            self.origin[f.uuid] = self.summary.stored_in.get(f.uuid, self.previous)
            missing = [a for a in self.algorithms if a not in f.digests]
            if missing:
                raise UsageError(
                    f"{prefix}: {f.path} has no {', '.join(missing)} digest in the METS"
                )

    def upload_new(self) -> None:
        from preservation.ingest.identify import identify_files

        existing = {f.path for f in self.summary.files}
        problems = []
        seen: set[str] = set()
        for nf in self.changes.add:
            problem = path_problem(nf.path)
            if problem:
                problems.append(f"{nf.path!r}: {problem}")
            elif nf.path in existing or nf.path in seen:
                problems.append(f"{nf.path!r} is already in the AIP")
            elif not nf.source.is_file():
                problems.append(f"{nf.source}: not a file")
            seen.add(nf.path)
        if problems:
            raise UsageError("cannot add: " + "; ".join(problems))
        unknown = [nf.source for nf in self.changes.add if nf.format is None]
        formats = identify_files(unknown) if unknown else {}
        self.new_entries: list[FileEntry] = []
        self.uploaded = 0
        for nf in self.changes.add:
            key = self.staging_key(f"data/{nf.path}")
            size = nf.source.stat().st_size
            with nf.source.open("rb") as fh:
                info = self.store.put(key, fh, algorithms=self.algorithms, size=size, sync=False)
            self.staged[key] = info.size
            self.uploaded += info.size
            self.new_entries.append(
                FileEntry(
                    path=nf.path,
                    size=info.size,
                    digests=dict(info.digests),
                    format=nf.format if nf.format is not None else formats.get(nf.source),
                    uuid=nf.uuid,
                    role=nf.role,
                    derived_from=nf.derived_from,
                    properties=dict(nf.properties),
                )
            )
        known = {f.uuid for f in self.summary.files} | {e.uuid for e in self.new_entries}
        dangling = [
            e.path for e in self.new_entries if e.derived_from and e.derived_from not in known
        ]
        if dangling:
            raise UsageError(f"derived from a file not in the AIP: {', '.join(dangling)}")

    def entries(self) -> Iterator[FileEntry]:
        yield from self.summary.files
        yield from self.new_entries

    def package(self) -> list[Any]:
        from preservation.bags.writer import BagWriter
        from preservation.hashing import hash_file
        from preservation.metadata.descriptive import Rights
        from preservation.metadata.mets_writer import MetsPackage, write_mets
        from preservation.metadata.mets_writer import TagFile as MetsTagFile

        tag_dir = self.work / "tags"
        (tag_dir / "metadata").mkdir(parents=True)
        extra: dict[str, Path] = {}
        for rel, src in self.carried_tags.items():
            dst = tag_dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            extra[rel] = dst
        old_tags = {t.path: t for t in self.summary.tag_files}
        listed = []
        for rel, p in extra.items():
            digests, size = hash_file(p, self.algorithms)
            mime = old_tags[rel].mime if rel in old_tags else None
            listed.append(MetsTagFile(rel, size, digests, mime=mime))

        descriptive = dict(self.summary.descriptive)
        descriptive.update(self.changes.descriptive)
        self.descriptive = descriptive
        rights: Rights | None = self.summary.rights
        if any(k in self.changes.descriptive for k in Rights.KEYS):
            base = rights.fields() if rights is not None else {}
            base.update({k: v for k, v in descriptive.items() if k in Rights.KEYS})
            rights = Rights.from_fields(base)
        # A corrected 密级/开放状态/保管期限/保密期限 applies to every record of the AIP
        # (records that carry their own value get the corrected one).
        rights_changed = {k: v for k, v in self.changes.descriptive.items() if k in Rights.KEYS}
        records = [
            dataclasses.replace(
                r, fields={**r.fields, **{k: v for k, v in rights_changed.items() if k in r.fields}}
            )
            for r in self.summary.records
        ]
        agents = {a.identifier: a for a in self.summary.agents}
        agents.update({a.identifier: a for a in self.agents})
        number = self.number
        origin = self.origin

        def stored_in(e: FileEntry) -> int | None:
            return origin.get(e.uuid)

        mets_path = tag_dir / "metadata" / "mets.xml"
        write_mets(
            mets_path,
            MetsPackage(
                aip_id=self.aip_id,
                version=number,
                created=utcnow(),
                label=self.summary.label,
                files=self.entries,
                agents=list(agents.values()),
                events=[*self.summary.events, *self.events],
                descriptive=descriptive,
                records=records,
                rights=rights,
                tag_files=listed,
                previous_version=self.previous,
                stored_in=stored_in,
            ),
        )
        extra[METS_PATH] = mets_path
        writer = BagWriter(tag_dir, algorithms=self.algorithms, info=self.bag_info)
        with writer:
            for f in self.summary.files:
                writer.add_payload(
                    f.path,
                    f.size,
                    f.digests,
                    fetch_url=fetch_url(self.aip_id, self.origin[f.uuid], f.path),
                )
            for e in self.new_entries:
                writer.add_payload(e.path, e.size, e.digests)
            for rel, path in extra.items():
                writer.add_tag_file(rel, path)
            return list(writer.finish())

    def stage_tags(self, tags: list[Any]) -> None:
        for tag in tags:
            key = self.staging_key(tag.path)
            with tag.local.open("rb") as fh:
                self.store.put(
                    key,
                    fh,
                    digests={"sha256": tag.digests["sha256"]},
                    algorithms=("sha256",),
                    size=tag.size,
                    sync=False,
                )
            self.staged[key] = tag.size

    def verify_staging(self) -> None:
        self.store.sync()
        prefix = join_key(STAGING_PREFIX, self.job_id) + "/"
        found = {i.key: i.size for i in self.store.list(prefix)}
        problems = [
            f"{k}: expected {n} bytes, found {found.get(k)}"
            for k, n in self.staged.items()
            if found.get(k) != n
        ]
        problems += [f"{k}: not expected" for k in sorted(set(found) - set(self.staged))]
        if problems:
            raise IntegrityError(
                f"staged version {self.number} of {self.aip_id} failed verification: "
                + "; ".join(problems[:20])
            )

    def finalise(self, tags: list[Any]) -> None:
        from preservation.catalog import queries as q

        with self.repo.catalog.session() as s:
            q.set_job_state(s, self.job_id, "finalising", result={"aip": self.aip_id})
        checkpoint("version:before-finalise")
        final = version_prefix(self.aip_id, self.number)
        body = join_key(STAGING_PREFIX, self.job_id, "body") + "/"
        self.store.move_prefix(body, final + "/")
        self.store.sync()
        checkpoint("version:before-commit")
        docs = self.commit(tags)
        checkpoint("version:after-commit")
        self.store.move(self.staging_key(BAGIT_TXT), join_key(final, BAGIT_TXT))
        with self.repo.catalog.session() as s:
            q.set_job_state(
                s, self.job_id, "done", result={"aip": self.aip_id, "version": self.number}
            )
        self.publish(docs)

    def commit(self, tags: list[Any]) -> list[tuple[Event, bytes]]:
        from preservation import eventlog
        from preservation.catalog import queries as q
        from preservation.catalog.version_record import record_new_version

        settings = self.repo.config.settings
        primary = self.repo.config.primary_store_name
        docs: list[tuple[Event, bytes]] = []
        origin = self.origin
        number = self.number

        def pairs() -> Iterator[tuple[FileEntry, int]]:
            for f in self.summary.files:
                yield f, origin[f.uuid]
            for e in self.new_entries:
                yield e, number

        with self.repo.catalog.session() as s:
            version = record_new_version(
                s,
                aip_id=self.aip_id,
                number=self.number,
                reason=self.reason,
                descriptive=self.descriptive,
                entries=pairs(),
                tag_files={t.path: (t.digests, t.size) for t in tags},
                primary_store=primary,
                replica_stores=[n for n, st in settings.stores.items() if st.role == "replica"],
                note=self.changes.note,
                batch_size=settings.catalog.batch_size,
            )
            for i, event in enumerate(self.events):
                doc = eventlog.append(
                    s,
                    event,
                    aip_id=self.aip_id,
                    version_id=version.id,
                    version=self.number,
                    agents=self.agents if i == 0 else (),
                )
                assert doc is not None
                docs.append((event, doc))
            q.set_job_state(
                s,
                self.job_id,
                "finalising",
                result={"aip": self.aip_id, "version": self.number, "committed": True},
            )
        return docs

    def publish(self, docs: list[tuple[Event, bytes]]) -> None:
        """Event documents go beside the AIP on the primary store now; replicas receive
        them with the version (replication copies the AIP's objects)."""
        from preservation import eventlog

        for event, doc in docs:
            eventlog.publish([self.store], self.aip_id, event, doc)

    def abort(self, exc: BaseException) -> None:
        try:
            self.store.delete_prefix(join_key(STAGING_PREFIX, self.job_id) + "/")
            from preservation.catalog import queries as q

            with self.repo.catalog.session() as s:
                q.set_job_state(
                    s,
                    self.job_id,
                    "failed",
                    error=exc.message if isinstance(exc, PreservationError) else repr(exc),
                )
        except Exception:  # the original error matters more; cleanup runs again later
            log.exception("cleanup after failed version job %s did not finish", self.job_id)

    def run(self) -> VersionResult:
        started = False
        try:
            self.start()
            started = True
            self.read_previous()
            self.upload_new()
            tags = self.package()
            self.stage_tags(tags)
            self.verify_staging()
            self.finalise(tags)
            return VersionResult(
                aip=self.aip_id,
                version=self.number,
                added=[e.path for e in self.new_entries],
                carried=len(self.summary.files),
                uploaded_bytes=self.uploaded,
            )
        except BaseException as exc:
            if started:
                self.abort(exc)
            raise
        finally:
            shutil.rmtree(self.work, ignore_errors=True)


def build_version(
    repo: Repository,
    aip_id: str,
    *,
    reason: str,
    changes: Changes,
    events: Sequence[Event] = (),
    agents: Sequence[Agent] = (),
) -> VersionResult:
    """Make the next version of ``aip_id``; see the module doc. Returns what was done."""
    if reason not in ("metadata", "migration", "reingest"):
        raise UsageError(f"version reason {reason!r} is not one of metadata, migration, reingest")
    cleanup_interrupted(repo)
    return _Builder(repo, aip_id, reason, changes, events, agents).run()


def new_version(
    repo: Repository,
    aip_id: str,
    *,
    reason: str,
    changes: Changes,
    events: Sequence[Event] = (),
    agents: Sequence[Agent] = (),
) -> int:
    """Make the next version of ``aip_id``; returns its number."""
    return build_version(
        repo, aip_id, reason=reason, changes=changes, events=events, agents=agents
    ).version


def cleanup_interrupted(repo: Repository) -> list[dict[str, Any]]:
    """Roll back (or forward) version jobs that a crash left unfinished."""
    from preservation import jobs as journal
    from preservation.catalog import queries as q

    cleaned: list[dict[str, Any]] = []
    with repo.catalog.session() as s:
        jobs = q.unfinished_jobs(s, JOB_KIND)
    store = repo.primary
    for job in jobs:
        if journal.process_alive(job.get("host"), job.get("pid")):
            continue
        params = job.get("params") or {}
        aip, number = params.get("aip"), params.get("version")
        staged = join_key(STAGING_PREFIX, job["id"]) + "/"
        work = params.get("work")
        if work:
            shutil.rmtree(work, ignore_errors=True)
        committed = False
        if aip and number:
            with repo.catalog.session() as s:
                got = q.get_aip(s, aip)
                committed = got is not None and got.current_version >= int(number)
        if committed and aip and number:
            final = version_prefix(aip, int(number)) + "/"
            moved = store.move_prefix(staged + "body/", final)
            moved += store.move_prefix(staged + "declaration/", final)
            with repo.catalog.session() as s:
                q.set_job_state(s, job["id"], "done", result={"aip": aip, "version": number})
            cleaned.append({"job": job["id"], "completed": f"{aip} v{number}", "moved": moved})
            continue
        removed = store.delete_prefix(staged)
        if aip and number and job["state"] == "finalising":
            removed += store.delete_prefix(version_prefix(aip, int(number)) + "/")
        with repo.catalog.session() as s:
            q.set_job_state(s, job["id"], "cancelled", error="interrupted; leftovers removed")
        cleaned.append({"job": job["id"], "removed": removed})
    return cleaned


def materialise(
    repo: Repository, aip_id: str, version: int, target: Path, store: str | None = None
) -> Path:
    """Write version ``version`` as a complete bag in ``target``: its own objects, and
    every ``fetch.txt`` entry resolved by copying the referenced object into place.

    ``fetch.txt`` is kept (BagIt allows a complete bag to keep it); the result
    validates as a complete bag.
    """
    from preservation.bags.manifest import PAYLOAD_DIR

    st = repo.store(store) if store else repo.primary
    prefix = version_prefix(aip_id, version) + "/"
    for info in st.list(prefix):
        out = target / info.key.removeprefix(prefix)
        out.parent.mkdir(parents=True, exist_ok=True)
        with st.open(info.key) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
    fetch = target / "fetch.txt"
    if fetch.is_file():
        for line in fetch.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            url, _length, path = line.split(maxsplit=2)
            path = path.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")
            if not path.startswith(f"{PAYLOAD_DIR}/") or path_problem(path):
                raise UsageError(f"fetch.txt of {aip_id} v{version}: bad path {path!r}")
            out = target / path
            out.parent.mkdir(parents=True, exist_ok=True)
            key = parse_fetch_url(url)
            if not key.startswith(f"{aip_id}/"):
                raise UsageError(f"fetch.txt of {aip_id} v{version} names another AIP: {url}")
            with st.open(key) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
    return target


__all__ = [
    "Changes",
    "NewFile",
    "VersionResult",
    "build_version",
    "cleanup_interrupted",
    "default_agents",
    "fetch_url",
    "materialise",
    "new_version",
    "parse_fetch_url",
]
