"""Receiving a transfer: recognise it, unpack it safely, discover its payload files.

:func:`receive` accepts

- a folder, read in place and never modified;
- a zip, tar, tar.gz/tgz, tar.bz2, tar.xz or tar.zst archive (recognised by its magic
  bytes), unpacked by :func:`preservation.ingest.archives.extract` into a temporary
  folder under ``staging_dir`` (:attr:`Transfer.work_dir`, removed by
  :meth:`Transfer.cleanup`). When the archive holds a single top-level folder (system
  junk such as ``__MACOSX/`` aside), that folder is the payload root, so ``T01.zip``
  made by zipping the folder ``T01`` gives the same payload paths as the folder;
- a BagIt bag: a folder with ``bagit.txt``, or an archive with ``bagit.txt`` at its top
  level or one folder down. The payload root is ``data/``; the payload manifests become
  the supplied digests. Structure, Payload-Oxum, ``fetch.txt`` and completeness come
  from :func:`preservation.bags.validate.validate_bag` (``completeness_only=True``:
  no payload file is read); its findings are reported as FIX-103 with the bag code
  (``BAG5xx``...) in the message and details. The tag files (small) are digested here
  against the tag manifests (FIX-105).

Discovery walks the payload with :func:`os.scandir` without following links and never
reads file contents: a symbolic link is a PATH-002 failure and a device, FIFO or socket
a PATH-003 failure; neither is listed as a file. An unreadable folder is PATH-004 and an
empty folder PATH-013 (BagIt keeps no empty folders).

Supplied checksum files (plain transfers; their names are matched case-insensitively,
``<alg>`` is one of md5, sha1, sha224, sha256, sha384, sha512):

- at the top level of the payload root: ``manifest-<alg>.txt``, ``checksums.<alg>``,
  ``<alg>sums``, ``<alg>sums.txt``, ``<alg>sum.txt`` (e.g. ``SHA256SUMS``). They are
  transfer metadata, not payload: they are taken out of :attr:`Transfer.files` and
  offered to the AIP as :attr:`Transfer.submission_tag_files`;
- beside the transfer, in its parent folder: ``<file or folder name>.<alg>`` or
  ``<transfer name>.<alg>``, e.g. ``T01.zip.sha256`` or ``T01.sha256``. A line naming
  the archive itself is the digest of the archive: it is verified at once (FIX-104,
  pass or fail); other lines are payload digests.

Lines are ``<hex digest>  <path>`` or ``<hex digest> *<path>`` (GNU coreutils,
including its ``\\``-escaped form; any run of spaces or tabs is accepted as the
separator) or ``SHA256 (<path>) = <hex digest>`` (BSD);
blank lines and ``#`` comments are skipped. Paths are relative to the payload root
(``./`` and a leading ``<transfer name>/`` are dropped, backslashes read as ``/``).
Files are UTF-8 (BOM tolerated) or, failing that, GB18030. Receive only collects the
supplied digests (:attr:`Transfer.supplied`); the pipeline compares them during its
single hashing pass.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from preservation.config import IngestSettings
from preservation.errors import TransferUnreadable
from preservation.hashing import SUPPORTED, hash_file
from preservation.ingest import pathcheck
from preservation.ingest.archives import ArchiveKind, extract, show
from preservation.ingest.filetable import FileTable, TransferFile
from preservation.ingest.findings import CheckDef, Finding, define
from preservation.paths import nfc, path_problem

TransferKind = Literal["folder", "zip", "tar", "bag"]

CHECKSUM_FILE = define(
    "FIX-101", "authenticity", "Supplied checksum files are well-formed", "移交校验文件格式正确", 6
)
SUPPLIED_MISSING = define(
    "FIX-102",
    "integrity",
    "Every supplied checksum names a file of the transfer",
    "校验清单所列文件均存在",
    7,
)
BAG_STRUCTURE = define(
    "FIX-103", "integrity", "A supplied bag is complete and well-formed", "移交BagIt包完整", 7
)
ARCHIVE_DIGEST = define(
    "FIX-104",
    "authenticity",
    "The received archive matches its supplied checksum",
    "移交包与其校验值一致",
    8,
)
TAG_DIGEST = define(
    "FIX-105",
    "authenticity",
    "Bag tag files match their tag manifests",
    "BagIt标签文件与标签清单一致",
    8,
)

CHECKS: tuple[CheckDef, ...] = (
    CHECKSUM_FILE, SUPPLIED_MISSING, BAG_STRUCTURE, ARCHIVE_DIGEST, TAG_DIGEST,
)  # fmt: skip

ARCHIVE_SUFFIXES = (
    ".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tgz", ".tbz2", ".tbz", ".txz", ".tzst",
    ".zip", ".tar",
)  # fmt: skip
_GNU_LINE = re.compile(r"^(?P<digest>[0-9A-Fa-f]+)[ \t]+\*?(?P<path>.+)$")
_BSD_LINE = re.compile(r"^(?P<alg>[A-Za-z0-9-]+) ?\((?P<path>.+)\) ?= ?(?P<digest>[0-9A-Fa-f]+)$")


@dataclass
class Transfer:
    kind: TransferKind
    name: str
    source: Path
    payload_root: Path
    files: FileTable  # on disk (see preservation.ingest.filetable); holds supplied digests
    findings: list[Finding] = field(default_factory=list)
    work_dir: Path | None = None  # extraction folder: delete after ingest (cleanup())
    container: ArchiveKind | None = None  # archive format, when the transfer was unpacked
    bag_root: Path | None = None
    bag_info: dict[str, str | list[str]] = field(default_factory=dict)
    supplied_from: list[str] = field(default_factory=list)  # checksum files / manifests read
    submission_tag_files: dict[str, Path] = field(default_factory=dict)  # keep in the AIP
    decoded_names: dict[str, str] = field(default_factory=dict)  # legacy-decoded zip names

    @property
    def bytes(self) -> int:
        return self.files.bytes

    @property
    def supplied(self) -> Mapping[str, dict[str, str]]:
        """Supplied digests by payload path (read from :attr:`files`; nothing held)."""
        return self.files.supplied

    def cleanup(self) -> None:
        """Close and remove the file table, and remove the extraction folder (a folder
        transfer has none and is never touched)."""
        self.files.close()
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None


# --------------------------------------------------------------------------- discovery


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return "a special file"


def discover(root: Path, files: FileTable) -> list[Finding]:
    """Add every regular file under ``root`` to ``files`` (links not followed, contents
    not read); returns the findings."""
    findings: list[Finding] = []
    stack: list[tuple[str, str]] = [("", os.fspath(root.absolute()))]  # entry.path absolute
    while stack:
        rel_dir, directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as e:
            findings.append(
                Finding(
                    pathcheck.UNREADABLE.code,
                    "fail",
                    f"cannot read folder {show(rel_dir) or '.'!r}: {e.strerror}",
                    file=show(nfc(rel_dir)) or None,
                )
            )
            continue
        if not entries and rel_dir:
            findings.append(
                Finding(
                    pathcheck.EMPTY_FOLDER.code,
                    "warn",
                    "empty folder (not kept: a bag holds files only)",
                    file=show(nfc(rel_dir)),
                )
            )
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            shown = show(nfc(rel))
            try:
                if entry.is_symlink():
                    target = os.fspath(Path(entry.path).readlink())
                    findings.append(
                        Finding(
                            pathcheck.SYMLINK.code,
                            "fail",
                            f"symbolic link to {show(target)!r}: not followed, not ingested",
                            file=shown,
                            details={"target": show(target)},
                        )
                    )
                elif entry.is_dir(follow_symlinks=False):
                    stack.append((rel, entry.path))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    files.add(
                        TransferFile(
                            path=nfc(rel),
                            original_name=rel,
                            size=st.st_size,
                            abspath=entry.path,
                            mtime=st.st_mtime,
                        )
                    )
                else:
                    mode = entry.stat(follow_symlinks=False).st_mode
                    findings.append(
                        Finding(
                            pathcheck.SPECIAL.code,
                            "fail",
                            f"{_special_kind(mode)}: not ingested",
                            file=shown,
                        )
                    )
            except OSError as e:
                findings.append(
                    Finding(
                        pathcheck.UNREADABLE.code, "fail", f"cannot read: {e.strerror}", file=shown
                    )
                )
    files.seal()  # read back sorted by path
    return findings


# --------------------------------------------------------------------------- checksum files


def _alg_of_inside_name(name: str) -> str | None:
    lower = name.lower()
    for alg in SUPPORTED:
        names = (f"manifest-{alg}.txt", f"checksums.{alg}", f"{alg}sums", f"{alg}sums.txt",
                 f"{alg}sum.txt")  # fmt: skip
        if lower in names:
            return alg
    return None


def _decode_line(raw: bytes) -> str | None:
    for enc in ("utf-8", "gb18030"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return None


def _unescape_gnu(path: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(path):
        c = path[i]
        if c == "\\" and i + 1 < len(path):
            nxt = path[i + 1]
            out.append({"n": "\n", "r": "\r", "\\": "\\"}.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class ChecksumLine:
    file: str  # the checksum file's name
    line: int
    algorithm: str
    path: str  # as written, unescaped, '/'-separated
    digest: str  # lower-case hex


def parse_checksum_file(path: Path, default_alg: str) -> tuple[list[ChecksumLine], list[Finding]]:
    """Read a GNU- or BSD-style checksum file line by line (see the module docstring)."""
    lines: list[ChecksumLine] = []
    findings: list[Finding] = []

    def bad(lineno: int, reason: str) -> None:
        findings.append(
            Finding(
                CHECKSUM_FILE.code,
                "fail",
                f"{path.name} line {lineno}: {reason}",
                details={"checksum_file": path.name, "line": lineno},
            )
        )

    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            text = _decode_line(raw.rstrip(b"\r\n"))
            if text is None:
                bad(lineno, "neither UTF-8 nor GB18030")
                continue
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            escaped = text.startswith("\\")
            body = text[1:] if escaped else text
            alg = default_alg
            m = _GNU_LINE.match(body)
            if m is None:
                m = _BSD_LINE.match(body)
                if m is None:
                    bad(lineno, f"not a '<digest>  <path>' line: {text[:80]!r}")
                    continue
                alg = m.group("alg").lower().replace("-", "")
                if alg not in SUPPORTED:
                    bad(lineno, f"unknown algorithm {m.group('alg')!r}")
                    continue
            digest = m.group("digest").lower()
            if len(digest) != hashlib.new(alg).digest_size * 2:
                bad(lineno, f"a {alg} digest has {hashlib.new(alg).digest_size * 2} hex digits,"
                            f" this one {len(digest)}")  # fmt: skip
                continue
            p = _unescape_gnu(m.group("path")) if escaped else m.group("path").replace("\\", "/")
            while p.startswith("./"):
                p = p[2:]
            lines.append(ChecksumLine(path.name, lineno, alg, p, digest))
    return lines, findings


def _resolve(lines: Iterable[ChecksumLine], files: FileTable, prefixes: set[str]) -> list[Finding]:
    """Record payload digests in ``files``; findings for unknown, unsafe or conflicting
    lines."""
    findings: list[Finding] = []
    for ln in lines:
        p = nfc(ln.path)
        where = f"{ln.file} line {ln.line}"
        if p not in files:
            first, _, rest = p.partition("/")
            if rest and first in prefixes and rest in files:
                p = rest
        problem = path_problem(p)
        if problem:
            findings.append(
                Finding(
                    CHECKSUM_FILE.code,
                    "fail",
                    f"{where}: unsafe path {show(ln.path)!r} ({problem})",
                    details={"checksum_file": ln.file, "line": ln.line},
                )
            )
            continue
        if p not in files:
            findings.append(
                Finding(
                    SUPPLIED_MISSING.code,
                    "fail",
                    f"{where} lists {show(ln.path)!r}, which is not in the transfer",
                    file=show(p),
                    details={"checksum_file": ln.file, "line": ln.line},
                )
            )
            continue
        other = files.add_supplied(p, ln.algorithm, ln.digest)
        if other is not None:
            findings.append(
                Finding(
                    CHECKSUM_FILE.code,
                    "fail",
                    f"{where} gives {ln.algorithm} {ln.digest} for {show(p)!r},"
                    f" another line gives {other}",
                    file=show(p),
                    details={"checksum_file": ln.file, "line": ln.line},
                )
            )
    return findings


def _sidecars(source: Path, name: str) -> list[tuple[Path, str]]:
    out: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for base in dict.fromkeys((source.name, name)):
        for alg in SUPPORTED:
            candidate = source.parent / f"{base}.{alg}"
            if candidate not in seen and candidate.is_file():
                seen.add(candidate)
                out.append((candidate, alg))
    return out


def _verify_archive(source: Path, lines: list[ChecksumLine]) -> list[Finding]:
    """Check the digests a sidecar gives for the archive itself (one read, all algorithms)."""
    algs = sorted({ln.algorithm for ln in lines})
    actual, _ = hash_file(source, algs)
    findings: list[Finding] = []
    for ln in lines:
        got = actual[ln.algorithm]
        ok = got == ln.digest
        findings.append(
            Finding(
                ARCHIVE_DIGEST.code,
                "pass" if ok else "fail",
                f"{source.name}: {ln.algorithm} {got} "
                + ("agrees with" if ok else f"differs from {ln.digest} given in")
                + f" {ln.file} line {ln.line}",
                details={"algorithm": ln.algorithm, "expected": ln.digest, "found": got},
            )
        )
    return findings


# --------------------------------------------------------------------------- bags


def _payload_key(path: str) -> str | None:
    return nfc(path[len("data/") :]) if path.startswith("data/") else None


@dataclass
class _BagRead:
    info: dict[str, str | list[str]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def _regular_inside(root: Path, rel: str) -> Path | None:
    """``root/rel`` if it is a regular file reached without following any link."""
    current = root
    for part in rel.split("/"):
        current = current / part
        try:
            mode = current.lstat().st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return None
    return current if stat.S_ISREG(mode) else None


def _verify_tag_manifests(bag_root: Path) -> list[Finding]:
    """Digest the tag files listed in tag manifests (small files, one read each).

    Malformed lines, escaping paths and missing tag files are the bag validator's
    findings; only digests are compared here.
    """
    wanted: dict[str, dict[str, tuple[str, str]]] = {}  # path -> alg -> (digest, manifest)
    for manifest in _top_files(bag_root):
        m = re.fullmatch(r"tagmanifest-([a-z0-9]+)\.txt", manifest.name)
        if m is None or m.group(1) not in SUPPORTED:
            continue
        lines, _ = parse_checksum_file(manifest, m.group(1))
        for ln in lines:
            if path_problem(ln.path) is None and not ln.path.startswith("data/"):
                wanted.setdefault(ln.path, {})[ln.algorithm] = (ln.digest, manifest.name)
    findings: list[Finding] = []
    for rel, expected in sorted(wanted.items()):
        target = _regular_inside(bag_root, rel)
        if target is None:
            continue
        actual, _ = hash_file(target, sorted(expected))
        for alg, (digest, manifest_name) in sorted(expected.items()):
            if actual[alg] != digest:
                findings.append(
                    Finding(
                        TAG_DIGEST.code,
                        "fail",
                        f"bag tag file {rel}: {alg} {actual[alg]} differs from {digest}"
                        f" in {manifest_name}",
                        details={"tag_file": rel, "algorithm": alg, "expected": digest},
                    )
                )
    return findings


def _read_bag(bag_root: Path, files: FileTable) -> _BagRead:
    """Structure and completeness by the bag validator; supplied digests from its
    manifests, recorded in ``files``.

    Payload digests are not computed here (the pipeline compares them in its single
    hashing pass); tag-file digests are (:func:`_verify_tag_manifests`).
    """

    def supplied(entries: Iterable[tuple[str, dict[str, str]]]) -> None:
        files.add_supplied_many(
            (key, a.lower(), d.lower())
            for path, digests in entries
            if (key := _payload_key(path)) is not None
            for a, d in digests.items()
        )

    from preservation.bags.validate import validate_bag  # only a bag transfer needs it

    report = validate_bag(bag_root, completeness_only=True, on_entries=supplied)
    out = _BagRead(
        info=dict(report.info),
        sources=[f"manifest-{a}.txt" for a in report.algorithms],
    )
    for bf in report.findings:
        payload = _payload_key(bf.file) if bf.file else None
        details: dict[str, Any] = {"bag_code": bf.code}
        if bf.file and payload is None:
            details["tag_file"] = bf.file
        if bf.line is not None:
            details["line"] = bf.line
        where = f"{bf.file}: " if bf.file else ""
        out.findings.append(
            Finding(
                BAG_STRUCTURE.code,
                "fail" if bf.is_error else "warn",
                f"{bf.code} {where}{bf.message}",
                file=payload,
                details=details,
            )
        )
    out.findings.extend(_verify_tag_manifests(bag_root))
    return out


# --------------------------------------------------------------------------- receive


def transfer_name(source: Path) -> str:
    """The folder name, or the archive file name without its archive suffixes."""
    name = source.name
    lower = name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return nfc(name[: -len(suffix)])
    return nfc(name)


def _single_folder(root: Path) -> tuple[Path | None, list[str]]:
    """The only top-level folder (junk aside), and the junk names beside it."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return None, []
    junk = [e.name for e in entries if pathcheck.junk_reason(e.name + "/x") is not None
            or pathcheck.junk_reason(e.name) is not None]  # fmt: skip
    rest = [e for e in entries if e.name not in junk]
    if len(rest) == 1 and rest[0].is_dir(follow_symlinks=False):
        return Path(rest[0].path), sorted(junk)
    return None, []


def _top_files(root: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(root) if e.is_file(follow_symlinks=False))
    except OSError:
        return []


def _assemble(
    source: Path,
    root: Path,
    kind: TransferKind,
    container: ArchiveKind | None,
    files: FileTable,
) -> Transfer:
    name = transfer_name(source)
    findings: list[Finding] = []
    bag_root: Path | None = root if (root / "bagit.txt").is_file() else None
    payload_root = root
    if container is not None and bag_root is None:
        inner, junk = _single_folder(root)
        if inner is not None:
            if (inner / "bagit.txt").is_file():
                bag_root = inner
            else:
                payload_root = inner
            for j in junk:
                findings.append(
                    Finding(
                        pathcheck.JUNK.code,
                        "warn",
                        f"system junk {j!r} beside the transfer folder in the archive;"
                        " not part of the payload, excluded",
                        details={"excluded": True, "path": j},
                    )
                )
    if bag_root is not None:
        kind = "bag"
        payload_root = bag_root / "data"

    if payload_root.is_dir():  # a bag without data/ is reported by the bag validator
        findings.extend(discover(payload_root, files))
    files.seal()

    transfer = Transfer(
        kind=kind,
        name=name,
        source=source,
        payload_root=payload_root,
        files=files,
        container=container,
        bag_root=bag_root,
    )
    lines: list[ChecksumLine] = []
    if bag_root is None:
        inside = {p: alg for p in _top_files(payload_root) if (alg := _alg_of_inside_name(p.name))}
        if inside:
            files.remove(p.name for p in inside)
            for p, alg in inside.items():
                got, bad = parse_checksum_file(p, alg)
                lines.extend(got)
                findings.extend(bad)
                transfer.supplied_from.append(p.name)
                transfer.submission_tag_files[p.name] = p
    else:
        bag = _read_bag(bag_root, files)
        transfer.bag_info = bag.info
        transfer.supplied_from.extend(bag.sources)
        findings.extend(bag.findings)
        for p in _top_files(bag_root):
            transfer.submission_tag_files[p.name] = p

    archive_lines: list[ChecksumLine] = []
    for sidecar, alg in _sidecars(source, name):
        got, bad = parse_checksum_file(sidecar, alg)
        findings.extend(bad)
        transfer.supplied_from.append(sidecar.name)
        transfer.submission_tag_files[sidecar.name] = sidecar
        for ln in got:
            if source.is_file() and ln.path in (source.name, nfc(source.name)):
                archive_lines.append(ln)
            else:
                lines.append(ln)
    if archive_lines:
        findings.extend(_verify_archive(source, archive_lines))

    prefixes = {name, nfc(source.name), nfc(payload_root.name)}
    findings.extend(_resolve(lines, files, prefixes))
    transfer.findings = findings
    return transfer


def receive(source: Path, staging_dir: Path, settings: IngestSettings) -> Transfer:
    """Recognise ``source``, unpack it if it is an archive, and discover its files.

    Raises TransferUnreadable (RCV001) when ``source`` is missing or neither a folder nor
    a regular file, and ArchiveRefused (ARC002) when an archive is unsafe, unreadable or
    not an archive at all (its findings say why; nothing is left in ``staging_dir``).
    """
    if not source.exists():
        raise TransferUnreadable(path=source, reason="no such file or folder")
    if not source.is_dir() and not source.is_file():
        raise TransferUnreadable(path=source, reason="neither a folder nor a regular file")
    staging_dir.mkdir(parents=True, exist_ok=True)
    fd, table_path = tempfile.mkstemp(prefix="files-", suffix=".sqlite", dir=staging_dir)
    os.close(fd)
    files = FileTable(Path(table_path))
    if source.is_dir():
        try:
            return _assemble(source, source, "folder", None, files)
        except BaseException:
            files.close()
            raise
    work = Path(tempfile.mkdtemp(prefix="receive-", dir=staging_dir))
    try:
        result = extract(source, work / "extracted", settings)
        kind: TransferKind = "zip" if result.kind == "zip" else "tar"
        transfer = _assemble(source, result.root, kind, result.kind, files)
    except BaseException:
        files.close()
        shutil.rmtree(work, ignore_errors=True)
        raise
    transfer.work_dir = work
    # member names are relative to the archive; payload paths to the payload root
    prefix = transfer.payload_root.relative_to(result.root).as_posix()
    transfer.decoded_names = {_rebase(k, prefix): v for k, v in result.decoded_names.items()}
    for f in result.findings:
        if f.file is not None:
            f.file = _rebase(f.file, prefix)
    transfer.findings[:0] = result.findings
    return transfer


def _rebase(member: str, prefix: str) -> str:
    if prefix == ".":
        return nfc(member)
    return nfc(member[len(prefix) + 1 :]) if member.startswith(prefix + "/") else nfc(member)
