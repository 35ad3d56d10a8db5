"""Validate a BagIt bag (v0.93 to v1.0, RFC 8493) and collect every finding.

Checks run cheapest first and never stop at the first problem:

1. the bag is a directory; ``bagit.txt`` is present and well-formed (BAG1xx);
2. ``bag-info.txt`` parses in the declared encoding (BAG2xx);
3. manifests, tag manifests and ``fetch.txt`` parse; every path is judged (escaping
   the bag is an error), duplicates and case/normalisation look-alikes are found
   (BAG3xx, BAG6xx);
4. Payload-Oxum against the files in ``data/`` plus absent files of ``fetch.txt``
   (BAG4xx) -- ``fast=True`` stops here;
5. completeness (BAG5xx): every manifest entry exists (files absent locally are
   allowed only when ``fetch.txt`` lists them: a warning, not verified), every payload
   file is in every payload manifest (BagIt 1.0; older bags need one), every tag file
   in every tag manifest (a warning, RFC 8493 says SHOULD) -- ``completeness_only``
   stops here;
6. digests (BAG7xx): each file is read once for all of its algorithms
   (:func:`preservation.hashing.hash_file`), big files first; with ``processes > 1``
   in a process pool (spawned, so safe inside a threaded server), or in any
   ``concurrent.futures`` executor given (threads suffice: hashlib releases the GIL),
   small files handed over in batches, at most a few batches in flight. Tag files
   that were parsed (bagit.txt, bag-info.txt, manifests, fetch.txt) were digested
   during that read and are not read again.

Files are only ever opened when they were found by walking the bag (symbolic links
are reported, never followed), so a manifest path can never make the validator read
outside the bag.

Tolerances, each with a warning and taken from the LoC conformance suite: a leading
``./`` or md5sum ``*`` in manifest paths; a path listed under a different Unicode
normalisation than the file on disk; a file listed twice under names that differ only
in case, where one name exists (a bag made on a case-insensitive file system). And one
for interoperability: a path with ``%25`` that names no file once decoded, while the
file named literally exists (written by a tool that does not encode '%', such as
bagit-python, LibraryOfCongress/bagit-python#157).

The codes and their descriptions are in :data:`CODES` (defined in
:mod:`preservation.bags.findings`, where the table lives next to BagFinding).
"""

from __future__ import annotations

import multiprocessing
import os
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from preservation.bags.findings import CODES, BagFinding, by_version, error, warning
from preservation.bags.manifest import (
    FETCH_TXT,
    MANIFEST_RE,
    PAYLOAD_DIR,
    TAGMANIFEST_RE,
    FetchEntry,
    ManifestKind,
    read_fetch,
    read_manifest,
)
from preservation.bags.tagfiles import (
    BAG_INFO_TXT,
    BAGIT_TXT,
    LEGACY_BAG_INFO_TXT,
    BagInfo,
    Declaration,
    TagText,
    read_bag_info,
    read_bagit_txt,
)
from preservation.errors import BagInvalid
from preservation.hashing import BLOCK_SIZE, SUPPORTED, hash_file

__all__ = ["CODES", "JUNK_NAMES", "BagFinding", "BagReport", "validate_bag"]

WEAK_ALGORITHMS = frozenset({"md5", "sha1"})
# Files that operating systems drop into folders; they are payload if listed, but
# usually by accident.
JUNK_NAMES = frozenset(
    {
        ".DS_Store",
        "Thumbs.db",
        "ehthumbs.db",
        "desktop.ini",
        ".Spotlight-V100",
        ".Trashes",
        ".fseventsd",
        ".TemporaryItems",
        "__MACOSX",
        "Icon\r",
    }
)
Level = Literal["none", "structure", "fast", "completeness", "full"]


def is_junk(path: str) -> bool:
    return any(seg in JUNK_NAMES or seg.startswith("._") for seg in path.split("/"))


@dataclass
class BagReport:
    """Everything validation found out about one bag.

    ``entries`` maps payload paths as listed (relative to the bag root, so starting
    with ``data/``) to ``{algorithm: digest}``. ``checked`` tells how far validation
    went: 'fast' (up to Payload-Oxum), 'completeness', or 'full' (digests too).
    """

    path: Path
    findings: list[BagFinding] = field(default_factory=list)
    version: str | None = None
    encoding: str | None = None
    algorithms: list[str] = field(default_factory=list)  # payload manifests
    tag_algorithms: list[str] = field(default_factory=list)
    payload_oxum: str | None = None  # as declared in bag-info.txt
    payload_files: int = 0  # regular files found under data/
    payload_bytes: int = 0
    info: dict[str, str | list[str]] = field(default_factory=dict)
    entries: dict[str, dict[str, str]] = field(default_factory=dict)
    fetch: list[FetchEntry] = field(default_factory=list)
    unfetched: list[str] = field(default_factory=list)  # in fetch.txt, absent, not verified
    checked: Level = "none"

    @property
    def valid(self) -> bool:
        return not any(f.is_error for f in self.findings)

    @property
    def errors(self) -> list[BagFinding]:
        return [f for f in self.findings if f.is_error]

    @property
    def warnings(self) -> list[BagFinding]:
        return [f for f in self.findings if not f.is_error]

    def codes(self, severity: str | None = None) -> set[str]:
        return {f.code for f in self.findings if severity is None or f.severity == severity}

    def raise_for_errors(self) -> None:
        """Raise BagInvalid (BAG001) carrying every error, if there is any."""
        errors = self.errors
        if errors:
            shown = "; ".join(str(f) for f in errors[:5])
            more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
            raise BagInvalid(f"{self.path}: invalid bag: {shown}{more}", findings=errors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "valid": self.valid,
            "checked": self.checked,
            "version": self.version,
            "encoding": self.encoding,
            "algorithms": list(self.algorithms),
            "tag_algorithms": list(self.tag_algorithms),
            "payload_oxum": self.payload_oxum,
            "payload_files": self.payload_files,
            "payload_bytes": self.payload_bytes,
            "unfetched": list(self.unfetched),
            "findings": [f.to_dict() for f in self.findings],
        }


def validate_bag(
    path: Path,
    *,
    fast: bool = False,
    completeness_only: bool = False,
    processes: int = 1,
    executor: Executor | None = None,
) -> BagReport:
    """Validate the bag at ``path``; never raises for a bad bag, see ``report.valid``.

    ``processes > 1`` digests in a process pool of that size; ``executor`` (a thread
    pool, a ``distributed`` client's executor, ...) is used instead when given.
    """
    return _Validation(Path(path), fast, completeness_only, processes, executor).run()


# --------------------------------------------------------------------------- internals

_T = TypeVar("_T")
_R = TypeVar("_R")
HashJob = tuple[str, str, tuple[str, ...], int]  # (bag path, absolute path, algorithms, size)
HashResult = tuple[str, dict[str, str] | None, str | None]
BATCH_FILES = 256
BATCH_BYTES = 64 * 1024 * 1024


def _hash_job(job: HashJob) -> HashResult:
    """Digest one file with all its algorithms (module level: picklable for processes).

    The result carries the bag-relative path, the digests (None if unreadable) and the
    problem. (hash_file sizes its buffer to the file.)
    """
    rel, file, algorithms, _size = job
    try:
        digests, _ = hash_file(Path(file), algorithms)
    except OSError as e:
        return rel, None, e.strerror or str(e)
    return rel, digests, None


def _hash_batch(batch: list[HashJob]) -> list[HashResult]:
    return [_hash_job(job) for job in batch]


def _batches(jobs: Iterable[HashJob]) -> Iterator[list[HashJob]]:
    """Group small files so that a pool pays its hand-over cost per batch, not per file."""
    batch: list[HashJob] = []
    size = 0
    for job in jobs:
        batch.append(job)
        size += job[3]
        if len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _bounded_map(
    executor: Executor, fn: Callable[[_T], _R], jobs: Iterable[_T], window: int
) -> Iterator[_R]:
    """Like ``executor.map`` but with at most ``window`` jobs in flight, any order."""
    pending: set[Future[_R]] = set()
    for job in jobs:
        if len(pending) >= window:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
        pending.add(executor.submit(fn, job))
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for fut in done:
            yield fut.result()


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _fold(text: str) -> str:
    return _nfc(text).casefold()


class _Validation:
    def __init__(
        self,
        root: Path,
        fast: bool,
        completeness_only: bool,
        processes: int,
        executor: Executor | None,
    ) -> None:
        self.root = root
        self.fast = fast
        self.completeness_only = completeness_only
        self.processes = max(1, processes)
        self.executor = executor
        self.report = BagReport(path=root)
        self.out = self.report.findings
        self.decl = Declaration()
        self.codec = "utf-8"
        self.info = BagInfo()
        self.root_names: set[str] = set()
        self.manifest_files: dict[str, str] = {}  # algorithm -> file name
        self.tagmanifest_files: dict[str, str] = {}
        self.tag_entries: dict[str, dict[str, str]] = {}  # tag path -> {alg: digest}
        self.parsed_digests: dict[str, dict[str, str]] = {}  # tag file -> digests while parsing
        self.fetch: dict[str, FetchEntry] = {}
        self.payload_disk: dict[str, int] = {}  # data/... -> size
        self.tag_disk: set[str] = set()
        self.resolved: dict[str, str] = {}  # listed payload path -> path on disk
        self.literal: dict[str, str] = {}  # decoded path -> path as written, if different

    # ----------------------------------------------------------------- driver

    @property
    def strict(self) -> bool:
        return self.decl.strict

    @property
    def want_digests(self) -> bool:
        return not (self.fast or self.completeness_only)

    @property
    def parse_algorithms(self) -> tuple[str, ...]:
        """Tag-manifest algorithms to digest tag files with while parsing them."""
        if not self.want_digests:
            return ()
        return tuple(a for a in self.tagmanifest_files if a in SUPPORTED)

    def run(self) -> BagReport:
        if not self.root.is_dir():
            self.out.append(error("BAG109", f"{self.root} is not a directory"))
            return self.report
        self.report.checked = "structure"
        self._list_root()
        self._bagit_txt()
        self._bag_info()
        self._payload_manifests()
        self._tag_manifests()
        self._fetch_txt()
        self._look_alikes()
        self._walk()
        self.report.checked = "fast"
        self._payload_oxum()
        if self.fast:
            return self.report
        self._completeness()
        self.report.checked = "completeness"
        if self.completeness_only:
            return self.report
        self._digests()
        self.report.checked = "full"
        return self.report

    # ----------------------------------------------------------------- 1 structure

    def _list_root(self) -> None:
        try:
            self.root_names = {p.name for p in self.root.iterdir()}
        except OSError as e:
            self.out.append(error("BAG109", f"cannot list {self.root}: {e.strerror}"))
            return
        for name in sorted(self.root_names):
            m = MANIFEST_RE.fullmatch(name)
            t = TAGMANIFEST_RE.fullmatch(name)
            if m:
                self.manifest_files[m.group(1).lower()] = name
            elif t:
                self.tagmanifest_files[t.group(1).lower()] = name
        self.report.algorithms = sorted(self.manifest_files)
        self.report.tag_algorithms = sorted(self.tagmanifest_files)
        data = self.root / PAYLOAD_DIR
        if data.is_symlink() or not data.is_dir():
            self.out.append(error("BAG108", "no payload directory data/", PAYLOAD_DIR))

    def _is_file(self, name: str) -> bool:
        p = self.root / name
        return name in self.root_names and p.is_file() and not p.is_symlink()

    def _bagit_txt(self) -> None:
        if not self._is_file(BAGIT_TXT):
            self.out.append(error("BAG101", "bagit.txt is missing", BAGIT_TXT))
            return
        self.decl, problems = read_bagit_txt(self.root / BAGIT_TXT, self.parse_algorithms)
        self.out.extend(problems)
        self.parsed_digests[BAGIT_TXT] = self.decl.digests
        self.codec = self.decl.codec or "utf-8"
        self.report.version = self.decl.version
        self.report.encoding = self.decl.encoding

    # ----------------------------------------------------------------- 2 bag-info

    def _bag_info(self) -> None:
        name = BAG_INFO_TXT
        legacy = self.decl.version_tuple is not None and self.decl.version_tuple < (0, 96)
        if not self._is_file(name) and legacy and self._is_file(LEGACY_BAG_INFO_TXT):
            name = LEGACY_BAG_INFO_TXT
        if not self._is_file(name):
            return
        self.info, problems = read_bag_info(
            self.root / name,
            self.codec,
            strict=self.strict,
            algorithms=self.parse_algorithms,
            file=name,
        )
        self.out.extend(problems)
        self.parsed_digests[name] = self.info.digests
        self.report.info = self.info.as_dict()
        oxums = self.info.values("Payload-Oxum")
        self.report.payload_oxum = oxums[0] if oxums else None

    # ----------------------------------------------------------------- 3 manifests

    def _read_listing(
        self, name: str, alg: str, kind: ManifestKind, entries: dict[str, dict[str, str]]
    ) -> None:
        text = TagText(
            self.root / name, self.codec, self.parse_algorithms if kind == "payload" else ()
        )
        decode = self.decl.strict
        for e in read_manifest(text, alg, self.out, kind=kind, file=name, decode_percent=decode):
            if e.literal is not None and kind == "payload":
                self.literal[e.path] = e.literal
            digests = entries.setdefault(e.path, {})
            old = digests.get(alg)
            if old is None:
                digests[alg] = e.digest
            elif old == e.digest:
                msg = f"{e.path} is listed more than once (same digest)"
                self.out.append(by_version(self.strict, "BAG307", msg, name, e.line))
            else:
                msg = f"{e.path} is listed more than once with different digests"
                self.out.append(error("BAG306", msg, name, e.line))
        if kind == "payload":
            self.parsed_digests[name] = text.digests()

    def _payload_manifests(self) -> None:
        entries = self.report.entries
        for alg, name in self.manifest_files.items():
            if alg not in SUPPORTED:
                msg = f"algorithm {alg} is not supported; {name} is not verified"
                self.out.append(warning("BAG313", msg, name))
            self._read_listing(name, alg, "payload", entries)
        supported = [a for a in self.manifest_files if a in SUPPORTED]
        if not supported:
            what = "no payload manifest" if not self.manifest_files else "no supported algorithm"
            self.out.append(error("BAG301", f"{what} (manifest-<alg>.txt)"))
        elif set(supported) <= WEAK_ALGORITHMS:
            msg = f"payload manifests use only {', '.join(supported)}; prefer sha512 or sha256"
            self.out.append(warning("BAG312", msg, self.manifest_files[supported[0]]))

    def _tag_manifests(self) -> None:
        for alg, name in self.tagmanifest_files.items():
            if alg not in SUPPORTED:
                msg = f"algorithm {alg} is not supported; {name} is not verified"
                self.out.append(warning("BAG313", msg, name))
            self._read_listing(name, alg, "tag", self.tag_entries)
        for path in self.tag_entries:
            if TAGMANIFEST_RE.fullmatch(path):
                msg = f"a tag manifest lists the tag manifest {path}"
                self.out.append(by_version(self.strict, "BAG315", msg, path))

    def _fetch_txt(self) -> None:
        if not self._is_file(FETCH_TXT):
            return
        text = TagText(self.root / FETCH_TXT, self.codec, self.parse_algorithms)
        entries = self.report.entries
        for e in read_fetch(text, self.out, decode_percent=self.decl.strict):
            if e.path in self.fetch:
                self.out.append(error("BAG607", f"{e.path} is listed twice", FETCH_TXT, e.line))
                continue
            self.fetch[e.path] = e
            self.report.fetch.append(e)
            listed = entries.get(e.path, {})
            missing = [self.manifest_files[a] for a in self.manifest_files if a not in listed]
            if missing:
                msg = f"{e.path} is not listed in {', '.join(missing)}"
                self.out.append(error("BAG604", msg, FETCH_TXT, e.line))
        self.parsed_digests[FETCH_TXT] = text.digests()

    def _look_alikes(self) -> None:
        """Listed payload paths that differ only in normalisation or in case."""
        by_nfc: dict[str, list[str]] = {}
        for p in self.report.entries:
            by_nfc.setdefault(_nfc(p), []).append(p)
        by_fold: dict[str, list[str]] = {}
        for key, paths in by_nfc.items():
            if len(paths) > 1:
                shown = ", ".join(ascii(p) for p in paths)
                msg = f"listed under several Unicode normalisations: {shown}"
                self.out.append(warning("BAG311", msg, paths[0]))
            by_fold.setdefault(key.casefold(), []).append(paths[0])
        for paths in by_fold.values():
            if len(paths) > 1:
                shown = ", ".join(repr(p) for p in paths)
                msg = f"names differ only in case (one file on case-insensitive systems): {shown}"
                self.out.append(warning("BAG310", msg, paths[0]))

    # ----------------------------------------------------------------- walk the bag

    def _walk(self) -> None:
        stack = [""]
        while stack:
            rel_dir = stack.pop()
            try:
                with os.scandir(self.root / rel_dir if rel_dir else self.root) as it:
                    items = sorted(it, key=lambda d: d.name)
            except OSError as e:
                self.out.append(error("BAG703", f"cannot list: {e.strerror}", rel_dir or "."))
                continue
            for entry in items:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_symlink():
                    self.out.append(error("BAG506", "symbolic link (not followed)", rel))
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(rel)
                elif not entry.is_file(follow_symlinks=False):
                    self.out.append(error("BAG506", "not a regular file", rel))
                elif rel.startswith(PAYLOAD_DIR + "/"):
                    self.payload_disk[rel] = entry.stat(follow_symlinks=False).st_size
                else:
                    self.tag_disk.add(rel)
        self.report.payload_files = len(self.payload_disk)
        self.report.payload_bytes = sum(self.payload_disk.values())

    # ----------------------------------------------------------------- 4 Payload-Oxum

    def _payload_oxum(self) -> None:
        declared = self.info.payload_oxum()
        if declared is None:
            if self.fast and not any(f.code == "BAG205" for f in self.out):
                self.out.append(warning("BAG403", "no Payload-Oxum in bag-info.txt"))
            return
        octets, count = declared
        absent = [e for p, e in self.fetch.items() if p not in self.payload_disk]
        found = len(self.payload_disk) + len(absent)
        plus = f" (with {len(absent)} absent files of fetch.txt)" if absent else ""
        name = BAG_INFO_TXT if BAG_INFO_TXT in self.root_names else LEGACY_BAG_INFO_TXT
        if found != count:
            msg = f"Payload-Oxum says {count} files; the payload has {found}{plus}"
            self.out.append(error("BAG401", msg, name))
        if any(e.length is None for e in absent):
            msg = "fetch.txt gives no length for some absent files; octets not checked"
            self.out.append(warning("BAG404", msg, FETCH_TXT))
            return
        size = self.report.payload_bytes + sum(e.length or 0 for e in absent)
        if size != octets:
            msg = f"Payload-Oxum says {octets} octets; the payload has {size}{plus}"
            self.out.append(error("BAG402", msg, name))

    # ----------------------------------------------------------------- 5 completeness

    def _completeness(self) -> None:
        self._resolve_listed()
        self._unlisted_payload()
        self._fetch_sizes()
        self._tag_completeness()

    def _resolve_listed(self) -> None:
        entries = self.report.entries
        disk_nfc: dict[str, list[str]] | None = None
        disk_fold: dict[str, list[str]] = {}
        for p in entries:
            if p in self.payload_disk:
                self.resolved[p] = p
                continue
            if p in self.fetch:
                self.report.unfetched.append(p)
                url = self.fetch[p].url
                msg = f"not present; fetch.txt fetches it from {url} (not verified)"
                self.out.append(warning("BAG605", msg, p))
                continue
            literal = self.literal.get(p)
            if literal is not None and literal in self.payload_disk:
                self.resolved[p] = literal
                msg = (
                    f"percent-decoded as {p!r}, which is missing; the file named as written,"
                    f" {literal!r}, exists (the bag's writer did not encode '%')"
                )
                self.out.append(warning("BAG507", msg, p))
                continue
            if disk_nfc is None:  # built on the first miss only
                disk_nfc, disk_fold = {}, {}
                for d in self.payload_disk:
                    disk_nfc.setdefault(_nfc(d), []).append(d)
                    disk_fold.setdefault(_fold(d), []).append(d)
            same_nfc = [d for d in disk_nfc.get(_nfc(p), []) if d != p]
            same_case = [d for d in disk_fold.get(_fold(p), []) if d != p and d in entries]
            if same_nfc:
                self.resolved[p] = same_nfc[0]
                msg = f"listed as {p!a}; on disk as {same_nfc[0]!a} (other Unicode normalisation)"
                self.out.append(warning("BAG507", msg, p))
            elif same_case:
                self.resolved[p] = same_case[0]
                msg = (
                    f"listed as {p!r} and as {same_case[0]!r}; only the latter exists"
                    " (names differ in case)"
                )
                self.out.append(warning("BAG507", msg, p))
            else:
                self.out.append(error("BAG501", "listed in the manifest but missing", p))

    def _unlisted_payload(self) -> None:
        entries = self.report.entries
        aliases: dict[str, list[str]] = {}
        for p, d in self.resolved.items():
            aliases.setdefault(d, []).append(p)
        manifests = self.manifest_files
        for d in self.payload_disk:
            names = aliases.get(d, [])
            listed_in = {a for p in names for a in entries.get(p, {})}
            if not listed_in:
                self.out.append(error("BAG502", "not listed in any payload manifest", d))
                continue
            missing = [manifests[a] for a in manifests if a not in listed_in]
            if missing:
                msg = f"not listed in {', '.join(missing)}"
                self.out.append(by_version(self.strict, "BAG503", msg, d))
        for p in sorted(set(self.payload_disk) | set(entries)):
            if is_junk(p):
                msg = "operating-system junk file in the payload"
                self.out.append(warning("BAG508", msg, p))

    def _fetch_sizes(self) -> None:
        for p, e in self.fetch.items():
            size = self.payload_disk.get(p)
            if size is not None and e.length is not None and size != e.length:
                msg = f"fetch.txt gives {e.length} octets; the local file has {size}"
                self.out.append(error("BAG606", msg, p))

    def _tag_completeness(self) -> None:
        for path, digests in self.tag_entries.items():
            if path not in self.tag_disk:
                where = ", ".join(self.tagmanifest_files[a] for a in digests)
                self.out.append(error("BAG504", f"listed in {where} but missing", path))
        if not self.tagmanifest_files:
            return
        own = set(self.tagmanifest_files.values())
        for path in sorted(self.tag_disk - own):
            listed = self.tag_entries.get(path, {})
            missing = [n for a, n in self.tagmanifest_files.items() if a not in listed]
            if missing:
                msg = f"tag file not listed in {', '.join(missing)}"
                self.out.append(warning("BAG505", msg, path))

    # ----------------------------------------------------------------- 6 digests

    def _digests(self) -> None:
        # (disk path, algorithm, expected digest, listed path, kind, manifest name)
        checks: list[tuple[str, str, str, str, str, str]] = []
        jobs: dict[str, set[str]] = {}
        for p, d in self.resolved.items():
            for alg, digest in self.report.entries[p].items():
                if alg in SUPPORTED:
                    checks.append((d, alg, digest, p, "payload", self.manifest_files[alg]))
                    jobs.setdefault(d, set()).add(alg)
        for path, digests in self.tag_entries.items():
            if path not in self.tag_disk:
                continue
            for alg, digest in digests.items():
                if alg not in SUPPORTED:
                    continue
                checks.append((path, alg, digest, path, "tag", self.tagmanifest_files[alg]))
                if alg not in self.parsed_digests.get(path, {}):
                    jobs.setdefault(path, set()).add(alg)
        computed: dict[str, dict[str, str]] = {p: dict(d) for p, d in self.parsed_digests.items()}
        unreadable: dict[str, str] = {}
        for rel, result, problem in self._run_jobs(jobs):
            if result is None:
                unreadable[rel] = problem or "unreadable"
            else:
                computed.setdefault(rel, {}).update(result)
        found: list[BagFinding] = []
        for rel, reason in unreadable.items():
            found.append(error("BAG703", f"cannot read: {reason}", rel))
        for disk, alg, expected, listed, kind, manifest in checks:
            got = computed.get(disk, {}).get(alg)
            if got is None or got == expected:
                continue
            code = "BAG701" if kind == "payload" else "BAG702"
            where = f" (file on disk: {disk})" if disk != listed else ""
            msg = f"{alg} is {got}, {manifest} says {expected}{where}"
            found.append(error(code, msg, listed))
        found.sort(key=lambda f: (f.file or "", f.code, f.message))
        self.out.extend(found)

    def _run_jobs(self, jobs: dict[str, set[str]]) -> Iterator[HashResult]:
        """Digest each file once with all of its algorithms (big files first)."""
        sizes = self.payload_disk
        ordered = sorted(jobs, key=lambda r: -sizes.get(r, 0))
        work = (
            (r, str(self.root / r), tuple(sorted(jobs[r])), sizes.get(r, BLOCK_SIZE))
            for r in ordered
        )
        if self.executor is None and self.processes == 1:
            yield from map(_hash_job, work)
            return
        if self.executor is not None:
            window = 4 * max(self.processes, os.cpu_count() or 1)
            for results in _bounded_map(self.executor, _hash_batch, _batches(work), window):
                yield from results
            return
        # spawn, not fork: safe in a process that runs threads (API server, scheduler)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.processes, mp_context=ctx) as pool:
            for results in _bounded_map(pool, _hash_batch, _batches(work), 2 * self.processes):
                yield from results
