"""Cheap checks on payload paths: names only, no content read.

:func:`check_paths` runs on the files :func:`preservation.ingest.receive.receive`
discovered and returns ``(findings, excluded)``: the findings, and the paths of system
junk files the pipeline drops when ``exclude_junk`` is set. :func:`check_duplicates`
needs digests and runs after hashing.

System junk (PATH-009, a warning; excluded when ``settings.exclude_junk``):
``Thumbs.db``, ``ehthumbs.db``, ``ehthumbs_vista.db``, ``desktop.ini``, ``.DS_Store``,
``.localized``, AppleDouble files ``._*``, Office lock files ``~$*``, and anything
inside ``__MACOSX/``, ``.Spotlight-V100/``, ``.Trashes/``, ``.fseventsd/``,
``.TemporaryItems/`` or ``$RECYCLE.BIN/`` (names compared case-insensitively).
Other names starting with ``.`` are hidden files (PATH-010, a warning, kept).

Unsafe names (PATH-001, :func:`preservation.paths.path_problem`: control characters,
backslashes, invalid UTF-8, a leading ``~``, over-long names) fail and are also
returned as excluded, since they cannot become store keys: the failure is the record
of them, and it blocks under the default policy (integrity).

Collisions: two received names that become the same path after NFC normalisation lose
a file (PATH-005, fail); names that differ only in letter case (files or folders)
cannot both exist on a case-insensitive file system such as an export to Windows or
macOS (PATH-006, warning). Both names are given in the evidence.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from preservation.config import IngestSettings
from preservation.ingest.archives import show
from preservation.ingest.findings import CheckDef, Finding, define
from preservation.paths import MAX_SEGMENT_BYTES, path_problem

UNSAFE = define("PATH-001", "integrity", "File names are safe", "文件名安全", 10)
SYMLINK = define("PATH-002", "security", "No symbolic links", "不含符号链接", 5)
SPECIAL = define("PATH-003", "security", "No device, FIFO or socket files", "不含设备等特殊文件", 5)
UNREADABLE = define("PATH-004", "integrity", "Every folder can be read", "文件夹均可读取", 5)
NFC_COLLISION = define(
    "PATH-005",
    "integrity",
    "No names collide after Unicode normalisation",
    "文件名规范化后不冲突",
    12,
)
CASE_COLLISION = define(
    "PATH-006", "usability", "No names differ only in letter case", "文件名不因大小写冲突", 12
)
TOO_LONG = define("PATH-007", "integrity", "Paths within the length limit", "路径长度不超限", 11)
EMPTY_FILE = define("PATH-008", "integrity", "No empty (0-byte) files", "无空文件", 15)
JUNK = define("PATH-009", "security", "No system junk files", "无系统冗余文件", 15)
HIDDEN = define("PATH-010", "security", "No hidden files", "无隐藏文件", 15)
NOT_NFC = define(
    "PATH-011", "authenticity", "Names received in Unicode NFC", "文件名为NFC规范形式", 16
)
DUPLICATE_CONTENT = define(
    "PATH-012", "integrity", "No two files with the same content", "无内容重复的文件", 60
)
EMPTY_FOLDER = define("PATH-013", "integrity", "No empty folders", "无空文件夹", 15)

CHECKS: tuple[CheckDef, ...] = (
    UNSAFE, SYMLINK, SPECIAL, UNREADABLE, NFC_COLLISION, CASE_COLLISION, TOO_LONG,
    EMPTY_FILE, JUNK, HIDDEN, NOT_NFC, DUPLICATE_CONTENT, EMPTY_FOLDER,
)  # fmt: skip

JUNK_NAMES = {
    "thumbs.db": "Windows thumbnail cache",
    "ehthumbs.db": "Windows thumbnail cache",
    "ehthumbs_vista.db": "Windows thumbnail cache",
    "desktop.ini": "Windows folder settings",
    ".ds_store": "macOS folder settings",
    ".localized": "macOS localisation marker",
}
JUNK_FOLDERS = {
    "__macosx": "macOS resource-fork folder",
    ".spotlight-v100": "macOS Spotlight index",
    ".trashes": "macOS trash",
    ".fseventsd": "macOS file-system event log",
    ".temporaryitems": "macOS temporary items",
    "$recycle.bin": "Windows recycle bin",
}


class PayloadFile(Protocol):
    """What the path checks need of a file (TransferFile and FileEntry both fit)."""

    @property
    def path(self) -> str: ...  # NFC, '/'-separated, relative to the payload root

    @property
    def size(self) -> int: ...


def junk_reason(path: str) -> str | None:
    """Why ``path`` is operating-system junk, or None."""
    segments = path.split("/")
    for seg in segments[:-1]:
        folder = JUNK_FOLDERS.get(seg.casefold())
        if folder:
            return f"inside {seg}/ ({folder})"
    name = segments[-1]
    if name.casefold() in JUNK_NAMES:
        return JUNK_NAMES[name.casefold()]
    if name.casefold() in JUNK_FOLDERS:
        return JUNK_FOLDERS[name.casefold()]
    if name.startswith("._"):
        return "macOS AppleDouble resource fork"
    if name.startswith("~$"):
        return "Microsoft Office lock file"
    return None


def _received(f: PayloadFile) -> str:
    original = getattr(f, "original_name", None)
    return original if isinstance(original, str) and original else f.path


def _unsafe_reason(path: str) -> str | None:
    """path_problem without its length rules (PATH-007 reports those)."""
    reason = path_problem(path)
    if reason is None or "longer than" not in reason:
        return reason
    bad = [s for s in path.split("/") if s in ("", ".", "..")]
    if bad:
        return f"has a {bad[0]!r} segment" if bad[0] else "has an empty segment"
    return None


def _length_problem(path: str, limit: int) -> str | None:
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return None  # reported as unsafe
    if len(encoded) > limit:
        return f"path is {len(encoded)} bytes long, more than the limit of {limit}"
    for seg in path.split("/"):
        n = len(seg.encode("utf-8"))
        if n > MAX_SEGMENT_BYTES:
            return f"name {seg[:40]!r}… is {n} bytes long, more than {MAX_SEGMENT_BYTES}"
    return None


def _folders(paths: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for p in paths:
        parts = p.split("/")
        out.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return out


def check_paths(
    files: Sequence[PayloadFile], settings: IngestSettings
) -> tuple[list[Finding], list[str]]:
    """Check every name; returns ``(findings, excluded junk paths)``."""
    findings: list[Finding] = []
    excluded: list[str] = []
    kept: list[PayloadFile] = []
    for f in files:
        reason = junk_reason(f.path)
        if reason is None:
            kept.append(f)
            continue
        drop = settings.exclude_junk
        findings.append(
            Finding(
                JUNK.code,
                "warn",
                f"system junk ({reason}); "
                + ("excluded from the AIP" if drop else "kept (exclude_junk is off)"),
                file=f.path,
                details={"excluded": drop, "reason": reason},
            )
        )
        if drop:
            excluded.append(f.path)
        else:
            kept.append(f)

    storable: list[PayloadFile] = []
    for f in kept:
        received = _received(f)
        keyless = path_problem(f.path) is not None  # it could not become a store key
        note = "; not stored" if keyless else ""
        unsafe = _unsafe_reason(f.path)
        if unsafe:
            findings.append(
                Finding(
                    UNSAFE.code,
                    "fail",
                    f"unsafe name {show(received)!r}: {unsafe}{note}",
                    file=show(f.path),
                    details={"excluded": keyless},
                )
            )
        too_long = _length_problem(f.path, settings.max_path_bytes)
        if too_long:
            findings.append(
                Finding(
                    TOO_LONG.code,
                    "fail",
                    too_long + note,
                    file=show(f.path),
                    details={"excluded": keyless},
                )
            )
        if keyless:
            excluded.append(f.path)
            continue
        storable.append(f)
        if received != f.path and unicodedata.normalize("NFC", received) == f.path:
            findings.append(
                Finding(
                    NOT_NFC.code,
                    "warn",
                    "name received in a decomposed Unicode form (NFD); stored as NFC,"
                    " the received name is kept as the original name",
                    file=f.path,
                    details={"received": received},
                )
            )
        if f.size == 0:
            findings.append(Finding(EMPTY_FILE.code, "warn", "empty file (0 bytes)", file=f.path))
        hidden = next((s for s in f.path.split("/") if s.startswith(".")), None)
        if hidden is not None:
            findings.append(
                Finding(HIDDEN.code, "warn", f"hidden name {hidden!r} (starts with '.')",
                        file=f.path)
            )  # fmt: skip

    # Memory: a transfer may hold hundreds of thousands of files, so nothing here keeps
    # a record per file. Sorted by path (discovery already is), the names that become
    # one path after NFC normalisation are neighbours; case collisions are found by
    # counting hashes of the case-folded paths first and then grouping only those that
    # share a hash.
    if any(storable[i - 1].path > storable[i].path for i in range(1, len(storable))):
        storable = sorted(storable, key=lambda f: f.path)  # stable: received order kept
    start = 0
    while start < len(storable):
        end = start + 1
        while end < len(storable) and storable[end].path == storable[start].path:
            end += 1
        if end - start > 1:
            names = [_received(f) for f in storable[start:end]]
            shown = ", ".join(repr(n) for n in names)
            findings.append(
                Finding(
                    NFC_COLLISION.code,
                    "fail",
                    f"{len(names)} received names become the same path after Unicode"
                    f" normalisation (NFC): {shown}",
                    file=storable[start].path,
                    details={"names": names},
                )
            )
        start = end

    def unique() -> Iterator[str]:
        previous = None
        for f in storable:
            if f.path != previous:
                previous = f.path
                yield f.path

    seen: dict[int, int] = {}
    for path in unique():
        h = hash(path.casefold())
        seen[h] = seen.get(h, 0) + 1
    shared = {h for h, n in seen.items() if n > 1}
    del seen
    by_case: dict[str, set[str]] = defaultdict(set)
    if shared:
        for path in unique():
            folded = path.casefold()
            if hash(folded) in shared:
                by_case[folded].add(path)
    folders: dict[str, set[str]] = defaultdict(set)
    for folder in _folders(unique()):
        folders[folder.casefold()].add(folder)
    for kind, groups in (("files", by_case), ("folders", folders)):
        for _, variants in sorted(groups.items()):
            if len(variants) > 1:
                ordered = sorted(variants)
                shown = ", ".join(repr(n) for n in ordered)
                findings.append(
                    Finding(
                        CASE_COLLISION.code,
                        "warn",
                        f"{kind} differ only in letter case and collide on case-insensitive"
                        f" file systems: {shown}",
                        file=ordered[0],
                        details={"names": ordered},
                    )
                )
    return findings, excluded


class Digested(Protocol):
    """What the duplicate check reads of a file (a FileEntry has it all)."""

    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def digests(self) -> Mapping[str, str]: ...


def check_duplicates(entries: Iterable[Digested], algorithm: str = "sha256") -> list[Finding]:
    """Files with the same content (same digest and size); empty files are skipped."""
    groups: dict[tuple[str, int], list[str]] = defaultdict(list)
    for e in entries:
        digest = e.digests.get(algorithm)
        if digest and e.size > 0:
            groups[(digest.lower(), e.size)].append(e.path)
    findings: list[Finding] = []
    for (digest, size), paths in sorted(groups.items(), key=lambda kv: sorted(kv[1])[0]):
        if len(paths) < 2:
            continue
        ordered = sorted(paths)
        findings.append(
            Finding(
                DUPLICATE_CONTENT.code,
                "warn",
                f"{len(ordered)} files have the same content ({algorithm} {digest[:16]}…,"
                f" {size} bytes): {', '.join(ordered)}",
                file=ordered[0],
                details={"paths": ordered, "algorithm": algorithm, "digest": digest},
            )
        )
    return findings
