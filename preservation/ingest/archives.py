"""Safe extraction of zip and tar transfers.

:func:`extract` unpacks a zip, tar, tar.gz/tgz, tar.bz2, tar.xz or tar.zst archive
into a folder, or refuses it and leaves nothing behind. The type is decided by the
magic bytes (:func:`detect`), never by the file name; a compressed stream must hold a
tar archive.

What is refused (every bad member is collected first, then one
:class:`~preservation.errors.ArchiveRefused` lists them all in ``findings``, each
naming the member):

- ARC-002 members that would land outside the folder: absolute paths, drive letters
  (``C:``), ``..`` segments. A leading ``./`` is dropped, the ``.`` entry ignored.
- ARC-003 symbolic and hard links; ARC-004 device, FIFO, socket and unknown member
  types. Nothing is ever created but regular files and folders.
- ARC-005 names that are not valid UTF-8 (tar; zip names flagged UTF-8), or not
  portable (:func:`preservation.paths.path_problem`: control characters, backslashes, empty
  segments, names over 255 bytes). A top-level name starting with ``~`` (Office lock
  files ``~$x.docx``) is allowed here: it is written literally inside the folder and
  the path check (PATH-001 / junk) judges it afterwards.
- ARC-006 encrypted zip members (never decrypted, never extracted).
- ARC-007 a total uncompressed size over ``max_archive_bytes``; ARC-008 more than
  ``max_archive_files`` members (folders count); ARC-009 a compression ratio over
  ``max_compression_ratio``. These are checked on the sizes the headers declare before
  anything is written (zip: central directory; tar: each header before its data) and
  again on the bytes actually produced while streaming, so a bomb whose headers lie is
  stopped as soon as it exceeds a limit: the zip member that expands beyond its
  declared size, the zip member or compressed tar stream whose output outgrows
  ``max_compression_ratio`` times its input. Ratios are only judged once the output is
  larger than :data:`RATIO_FLOOR` (1 MiB), so small, very compressible files such as
  an empty text file in a zip never trip it.
- ARC-010 an archive that cannot be read (truncated, bad CRC, unsupported zip
  compression method such as Deflate64); ARC-011 a member given twice, or a path that
  is both a file and a folder (it would silently overwrite).

Zip names without the UTF-8 flag (bit 11): the Info-ZIP Unicode Path extra field
(0x7075) is used when its CRC matches; otherwise pure ASCII is ASCII; bytes that are
valid UTF-8 are UTF-8 (macOS and many tools write UTF-8 without setting the flag);
bytes that decode strictly as GB18030 and contain at least one CJK ideograph and no
private-use or control character are taken as GB18030 (zips made by Chinese-locale
Windows, whose "ANSI" code page is GBK); anything else is read as cp437, the zip
specification's default. The last two cases are reported as ARC-012 warnings naming
the raw bytes, because a heuristic can be wrong; the decoded names are listed in
:attr:`ExtractResult.decoded_names`.

Extraction writes every member in blocks (:data:`preservation.hashing.BLOCK_SIZE`);
nothing is held in memory whole, and nothing is kept per member: the names seen are in
a scratch database (:class:`_Tree`), tar members are dropped once read, and a zip's
central directory is read by :mod:`preservation.ingest.zipstream` one entry at a time,
twice (first to judge every member, then to extract), never held as a whole.
Extraction goes into a temporary sibling folder that is renamed to ``dest`` only on
success; on any error it is removed, so ``dest`` is left as it was (absent, or an
empty folder). Python's ``tarfile.data_filter`` runs as an
extra guard after our own checks.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import lzma
import os
import re
import shutil
import stat
import struct
import tarfile
import tempfile
import unicodedata
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal, Protocol, cast

import zstandard

from preservation.config import IngestSettings
from preservation.errors import ArchiveError, ArchiveRefused, PreservationError, StorageFull
from preservation.hashing import BLOCK_SIZE
from preservation.ingest.findings import CheckDef, Finding, Result, define
from preservation.ingest.zipstream import METHODS, BadZip, Entry, ZipReader
from preservation.paths import path_problem
from preservation.scratch import name_key, open_scratch

ArchiveKind = Literal["zip", "tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst"]

UNSUPPORTED = define(
    "ARC-001", "usability", "The transfer is a supported archive format", "移交包格式可识别", 1
)
ESCAPE = define(
    "ARC-002",
    "security",
    "No archive member escapes the extraction folder",
    "压缩包成员不越出解压目录",
    2,
)
LINK = define("ARC-003", "security", "No links in the archive", "压缩包不含链接", 2)
SPECIAL = define(
    "ARC-004", "security", "No device, FIFO or other special members", "压缩包不含设备等特殊文件", 2
)
BAD_NAME = define(
    "ARC-005",
    "usability",
    "Member names are valid, portable UTF-8",
    "成员名称为有效可移植的UTF-8",
    2,
)
ENCRYPTED = define("ARC-006", "security", "No encrypted members", "压缩包成员未加密", 2)
TOO_BIG = define(
    "ARC-007", "security", "Uncompressed size within the limit", "解压后总大小不超过限值", 1
)
TOO_MANY = define("ARC-008", "security", "Member count within the limit", "成员数量不超过限值", 1)
RATIO = define(
    "ARC-009",
    "security",
    "Compression ratio within the limit (no archive bomb)",
    "压缩比不超过限值（无压缩炸弹）",
    1,
)
CORRUPT = define("ARC-010", "usability", "The archive reads without error", "压缩包可完整读取", 3)
DUPLICATE = define(
    "ARC-011",
    "integrity",
    "No member is given twice or as both file and folder",
    "成员不重复、文件与文件夹不冲突",
    2,
)
LEGACY_NAME = define(
    "ARC-012", "usability", "Member names are declared UTF-8", "成员名称声明为UTF-8编码", 4
)

CHECKS: tuple[CheckDef, ...] = (
    UNSUPPORTED,
    ESCAPE,
    LINK,
    SPECIAL,
    BAD_NAME,
    ENCRYPTED,
    TOO_BIG,
    TOO_MANY,
    RATIO,
    CORRUPT,
    DUPLICATE,
    LEGACY_NAME,
)

RATIO_FLOOR = 1024 * 1024  # outputs up to this size are never judged by their ratio
MAX_FINDINGS_PER_CHECK = 100  # further findings of one check are summarised in one line
ZIP_METHODS = METHODS  # stored, deflate, bzip2, lzma
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_COMPRESSED_MAGIC: tuple[tuple[bytes, ArchiveKind], ...] = (
    (b"\x1f\x8b", "tar.gz"),
    (b"BZh", "tar.bz2"),
    (b"\xfd7zXZ\x00", "tar.xz"),
    (b"\x28\xb5\x2f\xfd", "tar.zst"),
)
_DRIVE = re.compile(r"^[A-Za-z]:")
_DATA_FILTER = getattr(tarfile, "data_filter", None)  # Python 3.11.4 and later
_READ_ERRORS = (
    tarfile.TarError,
    BadZip,
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    zstandard.ZstdError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    struct.error,
)


@dataclass
class ExtractResult:
    kind: ArchiveKind
    root: Path  # the destination folder, holding what was extracted
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    findings: list[Finding] = field(default_factory=list)  # warnings that did not refuse
    # path -> raw name (escaped) of the first legacy-named members (ARC-012 counts the rest)
    decoded_names: dict[str, str] = field(default_factory=dict)


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Stop(Exception):
    """A limit was exceeded while streaming: stop reading at once."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


def show(name: str) -> str:
    """A member name for messages: undecodable bytes appear as ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class _Problems:
    """The findings of one archive, capped per check, with a summary line per cap."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self.findings: list[Finding] = []
        self._count: dict[str, int] = {}

    def add(self, check: CheckDef, member: str | None, reason: str) -> None:
        self.add_finding(_finding(self.archive, check, member, reason))

    def add_finding(self, finding: Finding) -> None:
        n = self._count.get(finding.code, 0) + 1
        self._count[finding.code] = n
        if n <= MAX_FINDINGS_PER_CHECK:
            self.findings.append(finding)

    @property
    def failed(self) -> bool:
        return bool(self.findings)

    def refusal(self) -> ArchiveRefused:
        out = list(self.findings)
        for code, n in self._count.items():
            if n > MAX_FINDINGS_PER_CHECK:
                more = n - MAX_FINDINGS_PER_CHECK
                out.append(
                    Finding(
                        code,
                        "fail",
                        f"{self.archive.name}: {more} more member(s) with the same problem",
                        details={"archive": str(self.archive), "more": more},
                    )
                )
        shown = "; ".join(f.message for f in out[:10])
        extra = f" (and {len(out) - 10} more)" if len(out) > 10 else ""
        return ArchiveRefused(
            f"{self.archive}: archive refused, nothing extracted: {shown}{extra}",
            findings=out,
            path=self.archive,
        )


def _finding(
    archive: Path, check: CheckDef, member: str | None, reason: str, result: Result = "fail"
) -> Finding:
    if member is None:
        message = f"{archive.name}: {reason}"
        details = {"archive": str(archive)}
    else:
        message = f"{archive.name}: member {show(member)!r}: {reason}"
        details = {"archive": str(archive), "member": show(member)}
    file = None if member is None else show(member)
    return Finding(check.code, result, message, file=file, details=details)


class _Budget:
    """Counts the bytes actually written and stops at the limits."""

    def __init__(self, archive: Path, limits: IngestSettings) -> None:
        self.archive = archive
        self.max_bytes = limits.max_archive_bytes
        self.max_ratio = limits.max_compression_ratio
        self.written = 0

    def over_ratio(self, produced: int, consumed: int) -> bool:
        return produced > RATIO_FLOOR and produced > self.max_ratio * max(consumed, 1)

    def add(self, n: int, member: str) -> None:
        self.written += n
        if self.written > self.max_bytes:
            raise _Stop(
                _finding(
                    self.archive,
                    TOO_BIG,
                    member,
                    f"extraction stopped: more than {self.max_bytes} bytes uncompressed",
                )
            )


class _Counter:
    """Counts the compressed bytes a decompressor consumes."""

    def __init__(self, raw: _Readable) -> None:
        self._raw = raw
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
        block = self._raw.read(size)
        self.count += len(block)
        return block

    def readable(self) -> bool:
        return True


class _Guard:
    """The decompressed stream of a compressed tar: stops when the ratio is exceeded."""

    def __init__(self, inner: _Readable, counter: _Counter, budget: _Budget) -> None:
        self._inner = inner
        self._counter = counter
        self._budget = budget
        self.produced = 0
        self.member: str | None = None  # the member being read, for messages

    def read(self, size: int = -1, /) -> bytes:
        block = self._inner.read(size)
        self.produced += len(block)
        if self._budget.over_ratio(self.produced, self._counter.count):
            raise _Stop(
                _finding(
                    self._budget.archive,
                    RATIO,
                    self.member,
                    f"extraction stopped: {self.produced} bytes decompressed from"
                    f" {self._counter.count} compressed bytes, more than the limit of"
                    f" {self._budget.max_ratio:g}:1",
                )
            )
        return block

    def readable(self) -> bool:
        return True


# --------------------------------------------------------------------------- detection


def _is_tar_block(block: bytes) -> bool:
    if len(block) < 512:
        return False
    if block[:512] == bytes(512):  # an empty archive starts with its end marker
        return True
    if block[257:262] == b"ustar":
        return True
    try:
        tarfile.TarInfo.frombuf(block[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _decompressor(kind: ArchiveKind, raw: _Readable) -> _Readable:
    """A decompressing reader over ``raw`` (which may be one of our counting wrappers)."""
    fileobj = cast(IO[bytes], raw)
    if kind == "tar":
        return raw
    if kind == "tar.gz":
        return gzip.GzipFile(fileobj=fileobj, mode="rb")
    if kind == "tar.bz2":
        return bz2.BZ2File(fileobj, "rb")
    if kind == "tar.xz":
        return lzma.LZMAFile(fileobj, "rb")
    reader: _Readable = zstandard.ZstdDecompressor().stream_reader(
        fileobj, read_across_frames=True, closefd=False
    )
    return reader


def _read_upto(stream: _Readable, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        block = stream.read(n - got)
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def detect(path: Path) -> ArchiveKind | None:
    """The archive type by magic bytes, or None if ``path`` is not a zip or tar archive.

    A compressed stream counts only when its first 512 decompressed bytes are a tar
    header (a gzip of a single document is not an archive).
    """
    with path.open("rb") as f:
        head = f.read(512)
    if head[:4] in _ZIP_MAGIC:
        return "zip"
    for magic, kind in _COMPRESSED_MAGIC:
        if head.startswith(magic):
            try:
                with path.open("rb") as f:
                    inner = _read_upto(_decompressor(kind, f), 512)
            except _READ_ERRORS:
                return None
            return kind if _is_tar_block(inner) else None
    return "tar" if _is_tar_block(head) else None


# --------------------------------------------------------------------------- names


def _member_target(name: str) -> tuple[str | None, tuple[CheckDef, str] | None]:
    """The relative path to write, or the check and reason that refuse the member.

    Returns ``("", None)`` for the archive's own root entry (``.`` or ``./``).
    """
    if "\x00" in name:
        return None, (BAD_NAME, "contains a NUL byte")
    if name.startswith(("/", "\\")):
        return None, (ESCAPE, "is an absolute path")
    if _DRIVE.match(name):
        return None, (ESCAPE, "starts with a drive letter")
    if ".." in re.split(r"[/\\]", name):
        return None, (ESCAPE, "has a '..' segment that escapes the folder")
    rel = name
    while rel.startswith("./"):
        rel = rel[2:]
    rel = rel.rstrip("/")
    if rel in ("", "."):
        return "", None
    # '~' is only dangerous to shells; the name is written literally inside the folder.
    problem = path_problem("_" + rel[1:] if rel.startswith("~") else rel)
    if problem:
        return None, (BAD_NAME, problem)
    return rel, None


class _Tree:
    """Paths seen so far: detects members given twice or as both file and folder.

    Kept in a private temporary SQLite database (on disk, removed when closed), so that
    memory does not grow with the number of members. Members mostly come folder by
    folder: the folders above a member are looked up only when they change.
    """

    _FILE, _DIR = 0, 1

    def __init__(self) -> None:
        self._db = open_scratch()
        self._db.execute(
            "CREATE TABLE seen (path BLOB PRIMARY KEY, kind INTEGER NOT NULL) WITHOUT ROWID"
        )
        self._db.execute("BEGIN")
        self._parents: list[str] = []  # the folders above the last member added
        self._pending = 0

    def _kind(self, path: str) -> int | None:
        row = self._db.execute("SELECT kind FROM seen WHERE path = ?", (name_key(path),)).fetchone()
        return None if row is None else int(row[0])

    def add(self, rel: str, is_dir: bool) -> str | None:
        parts = rel.split("/")
        parents = ["/".join(parts[:i]) for i in range(1, len(parts))]
        if parents != self._parents:
            for p in parents:
                if self._kind(p) == self._FILE:
                    return f"{p!r} is both a file and a folder"
        kind = self._kind(rel)
        if is_dir:
            if kind == self._FILE:
                return f"{rel!r} is both a file and a folder"
        else:
            if kind == self._FILE:
                return "is given twice (the second copy would overwrite the first)"
            if kind == self._DIR:
                return f"{rel!r} is both a file and a folder"
        rows = [(name_key(rel), self._DIR if is_dir else self._FILE)]
        if parents != self._parents:
            rows += [(name_key(p), self._DIR) for p in parents]
            self._parents = parents
        self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?)", rows)
        self._pending += 1
        if self._pending >= 5_000:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN")
            self._pending = 0
        return None

    def close(self) -> None:
        self._db.close()


def _plausible_chinese(text: str) -> bool:
    has_cjk = False
    for c in text:
        o = ord(c)
        if o < 0x80:
            continue
        cat = unicodedata.category(c)
        if cat in ("Co", "Cc", "Cn", "Cs"):
            return False
        if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2FA1F:
            has_cjk = True
    return has_cjk


def _unicode_path_extra(extra: bytes, raw: bytes) -> str | None:
    """The Info-ZIP Unicode Path extra field (0x7075), if present and current."""
    i = 0
    while i + 4 <= len(extra):
        hid, size = struct.unpack_from("<HH", extra, i)
        data = extra[i + 4 : i + 4 + size]
        if hid == 0x7075 and len(data) >= 5 and data[0] == 1:
            (crc,) = struct.unpack_from("<I", data, 1)
            if crc == zlib.crc32(raw):
                try:
                    return data[5:].decode("utf-8")
                except UnicodeDecodeError:
                    return None
        i += 4 + size
    return None


def _zip_name(entry: Entry) -> tuple[str, str | None, bool]:
    """The decoded member name, the legacy encoding used when guessed, and whether the
    name is flagged UTF-8 but is not (then undecodable bytes are surrogate escapes)."""
    raw = entry.raw_name
    if entry.utf8:
        try:
            return raw.decode("utf-8"), None, True
        except UnicodeDecodeError:
            return raw.decode("utf-8", "surrogateescape"), None, False
    if raw.isascii():
        return raw.decode("ascii"), None, True
    unicode_path = _unicode_path_extra(entry.extra, raw)
    if unicode_path is not None:
        return unicode_path, None, True
    try:
        return raw.decode("utf-8"), None, True
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        text = None
    if text is not None and _plausible_chinese(text):
        return text, "gb18030", True
    return raw.decode("cp437"), "cp437", True


@dataclass(frozen=True, slots=True)
class _ZipMember:
    """What a central directory entry means here: its name, where it goes, or why not."""

    name: str
    rel: str | None  # the relative path to write; None when refused, "" for the root
    bad: tuple[CheckDef, str] | None
    is_dir: bool
    legacy: str | None  # the legacy encoding the name was decoded with, if guessed


def _zip_member(entry: Entry) -> _ZipMember:
    """Judge one entry: the same answer every time the directory is read."""
    name, legacy, valid = _zip_name(entry)
    if not valid:
        return _ZipMember(name, None, (BAD_NAME, "is flagged UTF-8 but is not valid UTF-8"),
                          False, None)  # fmt: skip
    rel, bad = _member_target(name)
    mode = entry.unix_mode
    kind = stat.S_IFMT(mode)
    is_dir = entry.is_dir or kind == stat.S_IFDIR
    if bad is None and rel:
        if kind == stat.S_IFLNK:
            bad = (LINK, "is a symbolic link")
        elif kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            bad = (SPECIAL, f"is a special file (mode {oct(mode)})")
        elif entry.encrypted:
            bad = (ENCRYPTED, "is encrypted (not extracted)")
        elif not is_dir and entry.method not in ZIP_METHODS:
            bad = (
                CORRUPT,
                f"uses compression method {entry.method}, which is not supported"
                " (re-create the zip with deflate)",
            )
    return _ZipMember(name, None if bad else rel, bad, is_dir, legacy)


# --------------------------------------------------------------------------- writing


def _set_mtime(target: Path, when: float | None) -> None:
    if when is None:
        return
    with contextlib.suppress(OSError, OverflowError, ValueError):
        os.utime(target, (when, when))


def _copy(
    archive: Path,
    src: _Readable,
    target: Path,
    member: str,
    budget: _Budget,
    declared: int,
    compressed: int | None,
) -> int:
    """Stream one member to ``target`` in blocks, checking every limit on the way."""
    try:
        out = target.open("xb")
    except FileExistsError:
        raise _Stop(
            _finding(archive, DUPLICATE, member, "collides with a file already extracted")
        ) from None
    except OSError as e:
        raise _write_error(archive, member, e) from e
    n = 0
    with out:
        while True:
            block = src.read(BLOCK_SIZE)
            if not block:
                break
            n += len(block)
            budget.add(len(block), member)
            if n > declared:
                raise _Stop(
                    _finding(
                        archive,
                        RATIO,
                        member,
                        f"expands beyond its declared size of {declared} bytes",
                    )
                )
            if compressed is not None and budget.over_ratio(n, compressed):
                raise _Stop(
                    _finding(
                        archive,
                        RATIO,
                        member,
                        f"{n} bytes decompressed from {compressed} compressed bytes,"
                        f" more than the limit of {budget.max_ratio:g}:1",
                    )
                )
            try:
                out.write(block)
            except OSError as e:
                raise _write_error(archive, member, e) from e
    return n


def _write_error(archive: Path, member: str, e: OSError) -> PreservationError:
    """A failed write while unpacking: a full staging area is the repository's
    problem (StorageFull, retried once space is back), anything else the archive's."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return StorageFull(
            store="staging", reason=f"unpacking {show(member)!r} from {archive}: {e.strerror}"
        )
    return ArchiveError(path=archive, reason=f"cannot write {show(member)!r}: {e}")


def _zip_time(entry: Entry) -> float | None:
    try:
        # Zip times carry no zone; they are read as UTC.
        return datetime(*entry.date_time, tzinfo=UTC).timestamp()
    except (ValueError, OverflowError):
        return None


def _too_many(archive: Path, reader: ZipReader, limit: int) -> ArchiveRefused:
    """ARC-008 alone, naming the first member over ``limit`` and the real count."""
    count, first = 0, ""
    for entry in reader.entries():
        if count == limit:
            first = _zip_name(entry)[0]
        count += 1
    problems = _Problems(archive)
    problems.add(
        TOO_MANY,
        first,
        f"the archive has {count} members, more than the limit of {limit}",
    )
    return problems.refusal()


def _check_zip(
    archive: Path, reader: ZipReader, limits: IngestSettings, result: ExtractResult
) -> _Problems:
    """Judge every central directory entry before anything is written: names, types,
    encryption, duplicates, declared sizes and ratios. One entry in memory at a time;
    the names seen are kept on disk (:class:`_Tree`)."""
    problems = _Problems(archive)
    budget = _Budget(archive, limits)
    tree = _Tree()
    total = 0
    legacy: dict[str, int] = {}  # legacy encoding -> names decoded with it
    try:
        if reader.count > limits.max_archive_files:
            raise _too_many(archive, reader, limits.max_archive_files)
        for entry in reader.entries():
            if entry.index >= limits.max_archive_files:  # the end record understated
                raise _too_many(archive, reader, limits.max_archive_files)
            member = _zip_member(entry)
            name, rel = member.name, member.rel
            if member.bad is not None:
                problems.add(member.bad[0], name, member.bad[1])
                continue
            if not rel:
                continue
            clash = tree.add(rel, member.is_dir)
            if clash:
                problems.add(DUPLICATE, name, clash)
                continue
            if not member.is_dir:
                before = total
                total += entry.size
                if before <= limits.max_archive_bytes < total:
                    problems.add(
                        TOO_BIG,
                        name,
                        f"declared uncompressed total reaches {total} bytes here, more than"
                        f" the limit of {limits.max_archive_bytes}",
                    )
                if budget.over_ratio(entry.size, entry.compressed_size):
                    problems.add(
                        RATIO,
                        name,
                        f"declares {entry.size} bytes from {entry.compressed_size} compressed"
                        f" bytes, more than the limit of {limits.max_compression_ratio:g}:1",
                    )
            if member.legacy is not None:
                # a zip from a Chinese Windows desktop may name every member so: the
                # first names are listed, the rest counted (memory stays flat)
                legacy[member.legacy] = legacy.get(member.legacy, 0) + 1
                if sum(legacy.values()) <= MAX_FINDINGS_PER_CHECK:
                    shown = entry.raw_name.decode("ascii", "backslashreplace")
                    result.decoded_names[rel] = shown
                    result.findings.append(
                        _finding(
                            archive,
                            LEGACY_NAME,
                            name,
                            f"name not flagged UTF-8; raw bytes {shown} decoded as"
                            f" {member.legacy}",
                            result="warn",
                        )
                    )
    except (BadZip, OSError) as e:
        # what was judged of a directory that turns out corrupt is not to be trusted
        problems = _Problems(archive)
        problems.add(CORRUPT, None, f"not a readable zip archive ({e})")
        return problems
    finally:
        tree.close()
    more = sum(legacy.values()) - MAX_FINDINGS_PER_CHECK
    if more > 0:
        encodings = ", ".join(f"{n} as {enc}" for enc, n in sorted(legacy.items()))
        result.findings.append(
            Finding(
                LEGACY_NAME.code,
                "warn",
                f"{archive.name}: {more} more member name(s) not flagged UTF-8"
                f" (in all: {encodings})",
                details={"archive": str(archive), "more": more},
            )
        )
    size = reader.file_size
    if budget.over_ratio(total, size):
        problems.add(
            RATIO,
            None,
            f"declares {total} bytes uncompressed from a {size}-byte archive, more than"
            f" the limit of {limits.max_compression_ratio:g}:1",
        )
    return problems


def _extract_zip(archive: Path, root: Path, limits: IngestSettings, result: ExtractResult) -> None:
    """Check the whole central directory, then read it again and extract member by
    member: memory does not grow with the number of members."""
    problems = _Problems(archive)
    try:
        reader = ZipReader(archive)
    except (BadZip, OSError) as e:
        problems.add(CORRUPT, None, f"not a readable zip archive ({e})")
        raise problems.refusal() from e
    with reader:
        problems = _check_zip(archive, reader, limits, result)
        if problems.failed:
            raise problems.refusal()
        budget = _Budget(archive, limits)
        size = reader.file_size
        current: str | None = None
        made: Path | None = None  # the folder the last file went into
        try:
            for entry in reader.entries():
                member = _zip_member(entry)
                current = member.name
                if member.bad is not None:  # the archive changed since it was checked
                    raise _Stop(_finding(archive, member.bad[0], member.name, member.bad[1]))
                if not member.rel:
                    continue
                target = root.joinpath(*member.rel.split("/"))
                if member.is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                    result.dirs += 1
                    continue
                if target.parent != made:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    made = target.parent
                with reader.open(entry) as src:
                    result.bytes += _copy(
                        archive, src, target, member.name, budget, entry.size,
                        entry.compressed_size,
                    )  # fmt: skip
                if budget.over_ratio(budget.written, size):
                    raise _Stop(
                        _finding(
                            archive,
                            RATIO,
                            member.name,
                            f"{budget.written} bytes extracted from a {size}-byte archive,"
                            f" more than the limit of {limits.max_compression_ratio:g}:1",
                        )
                    )
                _set_mtime(target, _zip_time(entry))
                result.files += 1
        except _Stop as stop:
            problems.add_finding(stop.finding)
            raise problems.refusal() from None
        except ArchiveError:
            raise
        except _READ_ERRORS as e:
            problems.add(CORRUPT, current, f"cannot be read ({e})")
            raise problems.refusal() from e


def _tar_check(member: tarfile.TarInfo) -> tuple[CheckDef, str] | None:
    if member.issym():
        return LINK, f"is a symbolic link to {show(member.linkname)!r}"
    if member.islnk():
        return LINK, f"is a hard link to {show(member.linkname)!r}"
    if member.ischr() or member.isblk():
        return SPECIAL, "is a device file"
    if member.isfifo():
        return SPECIAL, "is a FIFO"
    if not (member.isreg() or member.isdir()):
        return SPECIAL, f"has an unsupported member type {member.type!r}"
    return None


def _extract_tar(
    archive: Path, kind: ArchiveKind, root: Path, limits: IngestSettings, result: ExtractResult
) -> None:
    problems = _Problems(archive)
    budget = _Budget(archive, limits)
    tree = _Tree()
    declared_total = 0
    count = 0
    current: str | None = None
    with archive.open("rb") as raw:
        counter = _Counter(raw)
        guard = _Guard(_decompressor(kind, counter), counter, budget)
        try:
            with tarfile.open(
                fileobj=cast(IO[bytes], guard),
                mode="r|",
                encoding="utf-8",
                errors="surrogateescape",
            ) as tf:
                for member in tf:
                    # tarfile keeps every member it has read; only the current one is
                    # needed (a list of 200,000 TarInfo objects is some 200 MB)
                    del tf.members[:-1]  # type: ignore[attr-defined]
                    current = member.name
                    guard.member = member.name
                    count += 1
                    if count > limits.max_archive_files:
                        problems.add(
                            TOO_MANY,
                            member.name,
                            f"more than the limit of {limits.max_archive_files} members",
                        )
                        break
                    rel, bad = _member_target(member.name)
                    if bad is None:
                        bad = _tar_check(member)
                    if bad is None and rel:
                        clash = tree.add(rel, member.isdir())
                        if clash:
                            bad = (DUPLICATE, clash)
                    if bad is None and rel and _DATA_FILTER is not None:
                        try:
                            _DATA_FILTER(member, str(root))
                        except tarfile.FilterError as e:
                            bad = (ESCAPE, f"refused by tarfile's data filter ({e})")
                    if bad is not None:
                        problems.add(bad[0], member.name, bad[1])
                        continue
                    if not rel:
                        continue
                    if member.isreg():
                        declared_total += member.size
                        if declared_total > limits.max_archive_bytes:
                            problems.add(
                                TOO_BIG,
                                member.name,
                                f"declared uncompressed total reaches {declared_total} bytes"
                                f" here, more than the limit of {limits.max_archive_bytes}",
                            )
                            break
                    if problems.failed:
                        continue  # keep looking for more problems; write nothing more
                    target = root.joinpath(*rel.split("/"))
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        result.dirs += 1
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = tf.extractfile(member)
                    if src is None:  # pragma: no cover - isreg() members always have data
                        problems.add(CORRUPT, member.name, "has no data")
                        continue
                    with src:
                        result.bytes += _copy(
                            archive, src, target, member.name, budget, member.size, None
                        )
                    _set_mtime(target, float(member.mtime))
                    result.files += 1
        except _Stop as stop:
            problems.add_finding(stop.finding)
        except ArchiveError:
            raise
        except _READ_ERRORS as e:
            where = "" if current is None else f" after member {show(current)!r}"
            problems.add(CORRUPT, None, f"cannot be read{where} ({e})")
        finally:
            tree.close()
    if problems.failed:
        raise problems.refusal()


# --------------------------------------------------------------------------- entry point


def extract(archive: Path, dest: Path, limits: IngestSettings) -> ExtractResult:
    """Extract ``archive`` into ``dest`` (absent or an empty folder), or refuse it.

    Raises :class:`~preservation.errors.ArchiveRefused` (ARC002) listing every problem
    as findings, or :class:`~preservation.errors.ArchiveError` when the destination is
    unusable or cannot be written. On any error ``dest`` is left as it was.
    """
    kind = detect(archive)
    if kind is None:
        problems = _Problems(archive)
        problems.add(
            UNSUPPORTED,
            None,
            "not a zip or tar archive (tar may be compressed with gzip, bzip2, xz or zstd)",
        )
        raise problems.refusal()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ArchiveError(path=dest, reason="the destination exists and is not an empty folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    result = ExtractResult(kind=kind, root=dest)
    try:
        if kind == "zip":
            _extract_zip(archive, tmp, limits, result)
        else:
            _extract_tar(archive, kind, tmp, limits, result)
        if dest.exists():
            dest.rmdir()
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result
