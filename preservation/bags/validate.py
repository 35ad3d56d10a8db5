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

Memory does not grow with the number of files: what is known per file (the payload
paths listed and their digests, the files found under ``data/``, which file each
listed path names, the digests computed) is kept in a private scratch SQLite database
in a temporary file, removed when validation ends, and compared there by queries
(listed against found, look-alike names, unlisted files). Only tag files and
``fetch.txt`` entries are held in memory, and the findings. The payload entries are
handed to the caller through ``validate_bag(..., on_entries=...)``, not kept in the
report.

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

import itertools
import multiprocessing
import os
import sqlite3
import tempfile
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
    ManifestEntry,
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
from preservation.scratch import name_key, name_of, open_scratch

__all__ = ["CODES", "JUNK_NAMES", "BagFinding", "BagReport", "EntriesConsumer", "validate_bag"]

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
# Receives the payload manifest entries: (path as listed, {algorithm: digest}).
EntriesConsumer = Callable[[Iterator[tuple[str, dict[str, str]]]], object]


def is_junk(path: str) -> bool:
    return any(seg in JUNK_NAMES or seg.startswith("._") for seg in path.split("/"))


@dataclass
class BagReport:
    """Everything validation found out about one bag.

    ``checked`` tells how far validation went: 'fast' (up to Payload-Oxum),
    'completeness', or 'full' (digests too). The payload entries of the manifests are
    not kept here (a bag may list hundreds of thousands): ask ``validate_bag`` for them
    with ``on_entries``.
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
    on_entries: EntriesConsumer | None = None,
) -> BagReport:
    """Validate the bag at ``path``; never raises for a bad bag, see ``report.valid``.

    ``processes > 1`` digests in a process pool of that size; ``executor`` (a thread
    pool, a ``distributed`` client's executor, ...) is used instead when given.

    ``on_entries``, when given, is called once, after the checks, with an iterator of
    the payload manifest entries: ``(path as listed, {algorithm: digest})``, paths
    relative to the bag root (so starting with ``data/``) in the order first listed.
    The iterator reads the validator's scratch database, so it is only valid during
    the call; it is empty when the bag was not a folder.
    """
    validation = _Validation(Path(path), fast, completeness_only, processes, executor)
    return validation.run(on_entries)


# --------------------------------------------------------------------------- internals

_T = TypeVar("_T")
_R = TypeVar("_R")
HashJob = tuple[str, str, tuple[str, ...], int]  # (bag path, absolute path, algorithms, size)
HashResult = tuple[str, dict[str, str] | None, str | None]
BATCH_FILES = 256
BATCH_BYTES = 64 * 1024 * 1024
WRITE_BATCH = 1000  # rows buffered before an insert into the scratch database
PAGE = 1000  # rows read at a time where the loop writes too


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


def _nfc_key(raw: bytes) -> bytes:
    return raw if raw.isascii() else name_key(_nfc(name_of(raw)))


def _fold_key(raw: bytes) -> bytes:
    return raw.lower() if raw.isascii() else name_key(_fold(name_of(raw)))


# Rows that may name junk: some segment contains a junk name or starts with '._' (every
# payload path starts with 'data/'); is_junk decides.
_JUNK_HINTS = (*(name_key(n) for n in sorted(JUNK_NAMES)), b"/._")
_MAYBE_JUNK = " OR ".join(["instr(path, ?) > 0"] * len(_JUNK_HINTS))

_SCHEMA = (
    # payload paths as listed, in the order first listed; disk: the file they resolve to
    "CREATE TABLE listed (seq INTEGER PRIMARY KEY, path BLOB NOT NULL UNIQUE, literal BLOB,"
    " disk BLOB)",
    "CREATE TABLE digests (path BLOB NOT NULL, alg TEXT NOT NULL, digest TEXT NOT NULL,"
    " PRIMARY KEY (path, alg)) WITHOUT ROWID",
    # regular files under data/, in the order the walk found them
    "CREATE TABLE disk (seq INTEGER PRIMARY KEY, path BLOB NOT NULL, size INTEGER NOT NULL)",
    "CREATE TABLE alias (path BLOB PRIMARY KEY, disk BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE computed (path BLOB NOT NULL, alg TEXT NOT NULL, digest TEXT NOT NULL,"
    " PRIMARY KEY (path, alg)) WITHOUT ROWID",
)


class _Scratch:
    """The per-file state of one validation: a private SQLite database in a temporary
    file (no journal, no fsync, a small page cache; sorts spill to temporary files),
    removed by :meth:`close`. Names are BLOBs (see :func:`preservation.scratch.name_key`)."""

    def __init__(self) -> None:
        fd, name = tempfile.mkstemp(prefix="bag-validate-", suffix=".sqlite")
        os.close(fd)
        self.path = Path(name)
        try:
            self.db = open_scratch(self.path)
        except sqlite3.Error:
            self.path.unlink(missing_ok=True)
            raise
        self.db.create_function("nfc", 1, _nfc_key, deterministic=True)
        self.db.create_function("fold", 1, _fold_key, deterministic=True)
        for stmt in _SCHEMA:
            self.db.execute(stmt)

    def one(self, sql: str, *args: Any) -> Any:
        row = self.db.execute(sql, args).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)


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
        self.tag_disk: set[str] = set()
        self._scratch: _Scratch | None = None

    @property
    def sql(self) -> _Scratch:
        if self._scratch is None:
            raise RuntimeError("no scratch database outside run()")
        return self._scratch

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

    def run(self, on_entries: EntriesConsumer | None) -> BagReport:
        if not self.root.is_dir():
            self.out.append(error("BAG109", f"{self.root} is not a directory"))
            if on_entries is not None:
                on_entries(iter(()))
            return self.report
        self._scratch = _Scratch()
        try:
            self._checks()
            if on_entries is not None:
                on_entries(self._entries())
        finally:
            self._scratch.close()
            self._scratch = None
        return self.report

    def _checks(self) -> None:
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
            return
        self._completeness()
        self.report.checked = "completeness"
        if self.completeness_only:
            return
        self._digests()
        self.report.checked = "full"

    def _entries(self) -> Iterator[tuple[str, dict[str, str]]]:
        """The payload entries as listed, in the order first listed, from the database."""
        rows = self.sql.db.execute(
            "SELECT l.path, g.alg, g.digest FROM listed l JOIN digests g ON g.path = l.path"
            " ORDER BY l.seq"
        )
        path: bytes | None = None
        digests: dict[str, str] = {}
        for raw, alg, digest in rows:
            if raw != path:
                if path is not None:
                    yield name_of(path), digests
                path, digests = raw, {}
            digests[alg] = digest
        if path is not None:
            yield name_of(path), digests

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

    def _duplicate(self, entry: ManifestEntry, old: str, name: str) -> BagFinding:
        if old == entry.digest:
            msg = f"{entry.path} is listed more than once (same digest)"
            return by_version(self.strict, "BAG307", msg, name, entry.line)
        msg = f"{entry.path} is listed more than once with different digests"
        return error("BAG306", msg, name, entry.line)

    def _read_tag_listing(self, name: str, alg: str) -> None:
        text = TagText(self.root / name, self.codec, ())
        decode = self.decl.strict
        for e in read_manifest(text, alg, self.out, kind="tag", file=name, decode_percent=decode):
            digests = self.tag_entries.setdefault(e.path, {})
            old = digests.get(alg)
            if old is None:
                digests[alg] = e.digest
            else:
                self.out.append(self._duplicate(e, old, name))

    def _read_payload_listing(self, name: str, alg: str) -> None:
        """One payload manifest into the tables ``listed`` and ``digests``, in batches.

        A path listed twice is reported where it was read: each entry keeps the number
        of findings before it, and the batch's duplicate findings are put there.
        """
        text = TagText(self.root / name, self.codec, self.parse_algorithms)
        decode = self.decl.strict
        batch: list[tuple[int, ManifestEntry]] = []
        for e in read_manifest(
            text, alg, self.out, kind="payload", file=name, decode_percent=decode
        ):
            batch.append((len(self.out), e))
            if len(batch) >= WRITE_BATCH:
                self._add_listing(batch, alg, name)
                batch.clear()
        self._add_listing(batch, alg, name)
        self.parsed_digests[name] = text.digests()

    def _add_listing(self, batch: list[tuple[int, ManifestEntry]], alg: str, name: str) -> None:
        if not batch:
            return
        db = self.sql.db
        keys = [name_key(e.path) for _, e in batch]
        marks = ", ".join("?" * len(keys))
        seen: dict[bytes, str] = dict(
            db.execute(
                f"SELECT path, digest FROM digests WHERE alg = ? AND path IN ({marks})",
                (alg, *keys),
            )
        )
        duplicates: list[tuple[int, BagFinding]] = []
        for key, (pos, e) in zip(keys, batch, strict=True):
            old = seen.get(key)
            if old is None:
                seen[key] = e.digest
            else:
                duplicates.append((pos, self._duplicate(e, old, name)))
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO digests VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            ((key, alg, e.digest) for key, (_, e) in zip(keys, batch, strict=True)),
        )
        db.executemany(
            "INSERT INTO listed (path, literal) VALUES (?, ?) ON CONFLICT (path)"
            " DO UPDATE SET literal = excluded.literal WHERE excluded.literal IS NOT NULL",
            (
                (key, None if e.literal is None else name_key(e.literal))
                for key, (_, e) in zip(keys, batch, strict=True)
            ),
        )
        db.execute("COMMIT")
        for pos, finding in reversed(duplicates):
            self.out.insert(pos, finding)

    def _payload_manifests(self) -> None:
        for alg, name in self.manifest_files.items():
            if alg not in SUPPORTED:
                msg = f"algorithm {alg} is not supported; {name} is not verified"
                self.out.append(warning("BAG313", msg, name))
            self._read_payload_listing(name, alg)
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
            self._read_tag_listing(name, alg)
        for path in self.tag_entries:
            if TAGMANIFEST_RE.fullmatch(path):
                msg = f"a tag manifest lists the tag manifest {path}"
                self.out.append(by_version(self.strict, "BAG315", msg, path))

    def _listed_algorithms(self, path: str) -> set[str]:
        rows = self.sql.db.execute("SELECT alg FROM digests WHERE path = ?", (name_key(path),))
        return {alg for (alg,) in rows}

    def _fetch_txt(self) -> None:
        if not self._is_file(FETCH_TXT):
            return
        text = TagText(self.root / FETCH_TXT, self.codec, self.parse_algorithms)
        for e in read_fetch(text, self.out, decode_percent=self.decl.strict):
            if e.path in self.fetch:
                self.out.append(error("BAG607", f"{e.path} is listed twice", FETCH_TXT, e.line))
                continue
            self.fetch[e.path] = e
            self.report.fetch.append(e)
            listed = self._listed_algorithms(e.path)
            missing = [self.manifest_files[a] for a in self.manifest_files if a not in listed]
            if missing:
                msg = f"{e.path} is not listed in {', '.join(missing)}"
                self.out.append(error("BAG604", msg, FETCH_TXT, e.line))
        self.parsed_digests[FETCH_TXT] = text.digests()

    def _look_alikes(self) -> None:
        """Listed payload paths that differ only in normalisation or in case.

        Groups of listed paths with one NFC form, in the order their first path was
        listed (BAG311); then the first path of each such group grouped by case-folded
        form (BAG310). Indexes on both forms make the grouping a walk in key order.
        """
        db = self.sql.db
        db.execute("CREATE INDEX listed_nfc ON listed (nfc(path))")
        db.execute("CREATE INDEX listed_fold ON listed (fold(path))")
        groups = db.execute(
            "SELECT nfc(path) AS k, min(seq) AS first FROM listed GROUP BY k"
            " HAVING count(*) > 1 ORDER BY first"
        ).fetchall()  # only the look-alike groups: as many as warnings
        for key, _ in groups:
            paths = [
                name_of(p)
                for (p,) in db.execute(
                    "SELECT path FROM listed WHERE nfc(path) = ? ORDER BY seq", (key,)
                )
            ]
            shown = ", ".join(ascii(p) for p in paths)
            msg = f"listed under several Unicode normalisations: {shown}"
            self.out.append(warning("BAG311", msg, paths[0]))
        firsts = "SELECT min(seq) FROM listed WHERE fold(path) = ? GROUP BY nfc(path)"
        folds = db.execute(
            "SELECT fold(path) AS f, min(seq) AS first FROM listed GROUP BY f"
            " HAVING count(DISTINCT nfc(path)) > 1 ORDER BY first"
        ).fetchall()
        for key, _ in folds:
            query = f"SELECT path FROM listed WHERE seq IN ({firsts}) ORDER BY seq"
            paths = [name_of(p) for (p,) in db.execute(query, (key,))]
            shown = ", ".join(repr(p) for p in paths)
            msg = f"names differ only in case (one file on case-insensitive systems): {shown}"
            self.out.append(warning("BAG310", msg, paths[0]))

    # ----------------------------------------------------------------- walk the bag

    def _walk(self) -> None:
        """Every entry of the bag, depth first, a folder's names in sorted order.

        Payload files go to the table ``disk`` in that order without a folder's names
        being held: each folder is read unsorted into ``walk`` (folder number, name),
        and one sorted copy numbers them. Folders still to visit are held (their names
        only), and the odd entries of one folder (links, devices) to report in order.
        """
        db = self.sql.db
        db.execute("CREATE TABLE walk (dir INTEGER NOT NULL, name BLOB NOT NULL,"
                   " path BLOB NOT NULL, size INTEGER NOT NULL)")  # fmt: skip
        batch: list[tuple[int, bytes, bytes, int]] = []
        count = octets = 0

        def flush() -> None:
            db.execute("BEGIN")
            db.executemany("INSERT INTO walk VALUES (?, ?, ?, ?)", batch)
            db.execute("COMMIT")
            batch.clear()

        stack = [""]
        folder = 0
        while stack:
            rel_dir = stack.pop()
            folder += 1
            prefix = f"{rel_dir}/" if rel_dir else ""
            in_payload = prefix.startswith(PAYLOAD_DIR + "/")
            subdirs: list[str] = []
            odd: list[tuple[str, BagFinding]] = []
            try:
                with os.scandir(self.root / rel_dir if rel_dir else self.root) as it:
                    for entry in it:
                        rel = prefix + entry.name
                        if entry.is_symlink():
                            odd.append(
                                (entry.name, error("BAG506", "symbolic link (not followed)", rel))
                            )
                        elif entry.is_dir(follow_symlinks=False):
                            subdirs.append(entry.name)
                        elif not entry.is_file(follow_symlinks=False):
                            odd.append((entry.name, error("BAG506", "not a regular file", rel)))
                        elif in_payload:
                            try:
                                size = entry.stat(follow_symlinks=False).st_size
                            except OSError as e:  # gone since listed
                                problem = f"cannot read: {e.strerror}"
                                odd.append((entry.name, error("BAG703", problem, rel)))
                                continue
                            batch.append((folder, name_key(entry.name), name_key(rel), size))
                            count += 1
                            octets += size
                            if len(batch) >= WRITE_BATCH:
                                flush()
                        else:
                            self.tag_disk.add(rel)
            except OSError as e:
                self.out.append(error("BAG703", f"cannot list: {e.strerror}", rel_dir or "."))
                continue
            odd.sort(key=lambda o: o[0])
            self.out.extend(f for _, f in odd)
            stack.extend(prefix + name for name in sorted(subdirs))
        flush()
        db.execute("BEGIN")
        db.execute("INSERT INTO disk (path, size) SELECT path, size FROM walk ORDER BY dir, name")
        db.execute("DROP TABLE walk")
        db.execute("COMMIT")
        db.execute("CREATE UNIQUE INDEX disk_path ON disk (path)")
        self.report.payload_files = count
        self.report.payload_bytes = octets

    def _disk_size(self, path: str) -> int | None:
        size: int | None = self.sql.one("SELECT size FROM disk WHERE path = ?", name_key(path))
        return size

    # ----------------------------------------------------------------- 4 Payload-Oxum

    def _payload_oxum(self) -> None:
        declared = self.info.payload_oxum()
        if declared is None:
            if self.fast and not any(f.code == "BAG205" for f in self.out):
                self.out.append(warning("BAG403", "no Payload-Oxum in bag-info.txt"))
            return
        octets, count = declared
        absent = [e for p, e in self.fetch.items() if self._disk_size(p) is None]
        found = self.report.payload_files + len(absent)
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
        """Set ``listed.disk``: the file each listed path names (itself, mostly)."""
        db = self.sql.db
        db.execute("UPDATE listed SET disk = path WHERE path IN (SELECT path FROM disk)")
        misses = db.execute(
            "SELECT path, literal FROM listed WHERE disk IS NULL ORDER BY seq"
        ).fetchmany
        indexed = False
        while rows := misses(PAGE):
            if not indexed:  # built on the first miss only
                db.execute("CREATE INDEX disk_nfc ON disk (nfc(path), seq)")
                db.execute("CREATE INDEX disk_fold ON disk (fold(path), seq)")
                indexed = True
            db.execute("BEGIN")
            for raw, literal in rows:
                disk = self._resolve_miss(name_of(raw), raw, literal)
                if disk is not None:
                    db.execute("INSERT OR REPLACE INTO alias VALUES (?, ?)", (raw, disk))
            db.execute("COMMIT")
        if indexed:
            db.execute(
                "UPDATE listed SET disk = (SELECT a.disk FROM alias a WHERE a.path = listed.path)"
                " WHERE disk IS NULL"
            )
        db.execute("CREATE INDEX listed_disk ON listed (disk)")

    def _resolve_miss(self, p: str, raw: bytes, literal: bytes | None) -> bytes | None:
        """The file on disk a listed path that names no file stands for, if any."""
        if p in self.fetch:
            self.report.unfetched.append(p)
            url = self.fetch[p].url
            msg = f"not present; fetch.txt fetches it from {url} (not verified)"
            self.out.append(warning("BAG605", msg, p))
            return None
        sql = self.sql
        if literal is not None and sql.one("SELECT 1 FROM disk WHERE path = ?", literal):
            msg = (
                f"percent-decoded as {p!r}, which is missing; the file named as written,"
                f" {name_of(literal)!r}, exists (the bag's writer did not encode '%')"
            )
            self.out.append(warning("BAG507", msg, p))
            return literal
        same_nfc: bytes | None = sql.one(
            "SELECT path FROM disk WHERE nfc(path) = ? AND path != ? ORDER BY seq LIMIT 1",
            _nfc_key(raw),
            raw,
        )
        if same_nfc is not None:
            msg = f"listed as {p!a}; on disk as {name_of(same_nfc)!a} (other Unicode normalisation)"
            self.out.append(warning("BAG507", msg, p))
            return same_nfc
        same_case: bytes | None = sql.one(
            "SELECT d.path FROM disk d WHERE fold(d.path) = ? AND d.path != ?"
            " AND EXISTS (SELECT 1 FROM listed l WHERE l.path = d.path) ORDER BY d.seq LIMIT 1",
            _fold_key(raw),
            raw,
        )
        if same_case is not None:
            msg = (
                f"listed as {p!r} and as {name_of(same_case)!r}; only the latter exists"
                " (names differ in case)"
            )
            self.out.append(warning("BAG507", msg, p))
            return same_case
        self.out.append(error("BAG501", "listed in the manifest but missing", p))
        return None

    def _unlisted_payload(self) -> None:
        db = self.sql.db
        manifests = self.manifest_files
        # the files not listed in every payload manifest (under any of their names):
        # the algorithms they are listed with, comma-separated (names are alphanumeric)
        rows = db.execute(
            "SELECT path, algs FROM (SELECT d.seq, d.path, (SELECT group_concat(DISTINCT g.alg)"
            " FROM listed l JOIN digests g ON g.path = l.path WHERE l.disk = d.path) AS algs"
            " FROM disk d) WHERE algs IS NULL"
            " OR length(algs) - length(replace(algs, ',', '')) + 1 < ? ORDER BY seq",
            (len(manifests),),
        )
        for raw, algs in rows:
            if not algs:
                self.out.append(error("BAG502", "not listed in any payload manifest", name_of(raw)))
                continue
            listed_in = set(algs.split(","))
            missing = [manifests[a] for a in manifests if a not in listed_in]
            if missing:
                msg = f"not listed in {', '.join(missing)}"
                self.out.append(by_version(self.strict, "BAG503", msg, name_of(raw)))
        junk = sorted(
            p
            for (raw,) in db.execute(
                f"SELECT path FROM disk WHERE {_MAYBE_JUNK}"
                f" UNION SELECT path FROM listed WHERE {_MAYBE_JUNK}",
                _JUNK_HINTS * 2,
            )
            if is_junk(p := name_of(raw))
        )
        for p in junk:
            msg = "operating-system junk file in the payload"
            self.out.append(warning("BAG508", msg, p))

    def _fetch_sizes(self) -> None:
        for p, e in self.fetch.items():
            size = self._disk_size(p)
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
        db = self.sql.db
        supported = [a for a in sorted(self.manifest_files) if a in SUPPORTED]
        found: list[BagFinding] = []
        # tag files: a handful, in memory
        tag_checks: list[tuple[str, str, str, str]] = []  # (path, alg, expected, manifest)
        tag_jobs: dict[str, set[str]] = {}
        for path, digests in self.tag_entries.items():
            if path not in self.tag_disk:
                continue
            for alg, digest in digests.items():
                if alg not in SUPPORTED:
                    continue
                tag_checks.append((path, alg, digest, self.tagmanifest_files[alg]))
                if alg not in self.parsed_digests.get(path, {}):
                    tag_jobs.setdefault(path, set()).add(alg)
        tag_computed = {p: dict(d) for p, d in self.parsed_digests.items()}
        tag_work: list[HashJob] = [
            (r, str(self.root / r), tuple(sorted(algs)), BLOCK_SIZE) for r, algs in tag_jobs.items()
        ]
        # payload files: each file once with every algorithm of every name it is
        # listed under, biggest first, streamed from the database
        marks = ", ".join("?" * len(supported))
        payload_work = (
            (name_of(disk), str(self.root / name_of(disk)), tuple(sorted(algs.split(","))), size)
            for disk, size, algs in db.execute(
                "SELECT l.disk, d.size, group_concat(DISTINCT g.alg) FROM listed l"
                " JOIN disk d ON d.path = l.disk JOIN digests g ON g.path = l.path"
                f" WHERE g.alg IN ({marks}) GROUP BY l.disk ORDER BY d.size DESC, min(l.seq)",
                supported,
            )
        )
        batch: list[tuple[bytes, str, str]] = []

        def flush() -> None:
            db.execute("BEGIN")
            db.executemany("INSERT OR REPLACE INTO computed VALUES (?, ?, ?)", batch)
            db.execute("COMMIT")
            batch.clear()

        for rel, result, problem in self._run_jobs(itertools.chain(tag_work, payload_work)):
            if result is None:
                found.append(error("BAG703", f"cannot read: {problem or 'unreadable'}", rel))
            elif rel.startswith(PAYLOAD_DIR + "/"):
                key = name_key(rel)
                batch.extend((key, alg, digest) for alg, digest in result.items())
                if len(batch) >= WRITE_BATCH:
                    flush()
            else:
                tag_computed.setdefault(rel, {}).update(result)
        flush()
        for disk, alg, expected, listed, got in db.execute(
            "SELECT l.disk, g.alg, g.digest, l.path, c.digest FROM listed l"
            " JOIN digests g ON g.path = l.path"
            " JOIN computed c ON c.path = l.disk AND c.alg = g.alg WHERE c.digest != g.digest"
        ):
            where = f" (file on disk: {name_of(disk)})" if disk != listed else ""
            msg = f"{alg} is {got}, {self.manifest_files[alg]} says {expected}{where}"
            found.append(error("BAG701", msg, name_of(listed)))
        for path, alg, expected, manifest in tag_checks:
            got = tag_computed.get(path, {}).get(alg)
            if got is None or got == expected:
                continue
            found.append(error("BAG702", f"{alg} is {got}, {manifest} says {expected}", path))
        found.sort(key=lambda f: (f.file or "", f.code, f.message))
        self.out.extend(found)

    def _run_jobs(self, work: Iterable[HashJob]) -> Iterator[HashResult]:
        """Digest each file once with all of its algorithms (in the order given)."""
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
