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
from collections.abc import Iterable, Mapping
from typing import Protocol

from preservation.config import IngestSettings
from preservation.ingest.archives import show
from preservation.ingest.findings import CheckDef, Finding, define
from preservation.paths import MAX_SEGMENT_BYTES, path_problem
from preservation.scratch import open_scratch

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


def check_paths(
    files: Iterable[PayloadFile], settings: IngestSettings
) -> tuple[list[Finding], list[str]]:
    """Check every name; returns ``(findings, excluded paths)``.

    One pass over ``files``, which nothing here keeps: a transfer may hold hundreds of
    thousands of them. A :class:`~preservation.ingest.filetable.FileTable` comes sorted
    by path; anything else is sorted first (stable: received order kept). Sorted, the
    names that become one path after NFC normalisation are neighbours; names that
    differ only in letter case are grouped in a private temporary SQLite database.
    """
    from preservation.ingest.filetable import FileTable

    ordered: Iterable[PayloadFile] = (
        files if isinstance(files, FileTable) else sorted(files, key=lambda f: f.path)
    )
    junk: list[Finding] = []
    findings: list[Finding] = []
    collisions: list[Finding] = []
    excluded: list[str] = []
    run: list[str] = []  # received names of the current path (neighbours when sorted)
    folders = _CaseGroups()
    try:
        for f in ordered:
            reason = junk_reason(f.path)
            if reason is not None:
                drop = settings.exclude_junk
                junk.append(
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
                    continue
            if not _check_storable(f, settings, findings):
                excluded.append(f.path)
                continue
            if run and f.path != folders.last:
                _nfc_collision(run, folders.last, collisions)
                run = []
            if not run:
                folders.add(f.path)
            run.append(_received(f))
        _nfc_collision(run, folders.last, collisions)
        case = folders.collisions()
    finally:
        folders.close()
    return junk + findings + collisions + case, excluded


def _check_storable(f: PayloadFile, settings: IngestSettings, out: list[Finding]) -> bool:
    """The per-name checks of a file that is not junk; False when its name cannot
    become a store key (it is not stored)."""
    received = _received(f)
    keyless = path_problem(f.path) is not None  # it could not become a store key
    note = "; not stored" if keyless else ""
    unsafe = _unsafe_reason(f.path)
    if unsafe:
        out.append(
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
        out.append(
            Finding(
                TOO_LONG.code, "fail", too_long + note, file=show(f.path),
                details={"excluded": keyless},
            )
        )  # fmt: skip
    if keyless:
        return False
    if received != f.path and unicodedata.normalize("NFC", received) == f.path:
        out.append(
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
        out.append(Finding(EMPTY_FILE.code, "warn", "empty file (0 bytes)", file=f.path))
    hidden = next((s for s in f.path.split("/") if s.startswith(".")), None)
    if hidden is not None:
        out.append(
            Finding(HIDDEN.code, "warn", f"hidden name {hidden!r} (starts with '.')",
                    file=f.path)
        )  # fmt: skip
    return True


def _nfc_collision(names: list[str], path: str | None, out: list[Finding]) -> None:
    if len(names) > 1 and path is not None:
        shown = ", ".join(repr(n) for n in names)
        out.append(
            Finding(
                NFC_COLLISION.code,
                "fail",
                f"{len(names)} received names become the same path after Unicode"
                f" normalisation (NFC): {shown}",
                file=path,
                details={"names": names},
            )
        )


class _CaseGroups:
    """File and folder paths by their case-folded form, in a private temporary SQLite
    database (on disk: SQLite removes it when closed), to find names that differ only
    in letter case without holding every name in memory."""

    _FILE, _FOLDER = 0, 1

    def __init__(self) -> None:
        self._db = open_scratch()
        self._db.execute(
            "CREATE TABLE names (kind INTEGER, folded TEXT, path TEXT,"
            " PRIMARY KEY (kind, path)) WITHOUT ROWID"
        )
        self._db.execute("BEGIN")
        self._pending = 0
        self._parents: list[str] = []  # the folders of the last path, outermost first
        self.last: str | None = None

    def add(self, path: str) -> None:
        """A stored path (each once, in sorted order) and the folders above it."""
        self.last = path
        rows = [(self._FILE, path.casefold(), path)]
        parts = path.split("/")
        parents = ["/".join(parts[:i]) for i in range(1, len(parts))]
        # sorted paths share their leading folders with the path before: new ones only
        common = 0
        while (
            common < min(len(parents), len(self._parents))
            and parents[common] == self._parents[common]
        ):
            common += 1
        rows += [(self._FOLDER, p.casefold(), p) for p in parents[common:]]
        self._parents = parents
        self._db.executemany("INSERT OR IGNORE INTO names VALUES (?, ?, ?)", rows)
        self._pending += len(rows)
        if self._pending >= 10_000:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN")
            self._pending = 0

    def collisions(self) -> list[Finding]:
        self._db.execute("COMMIT")
        found: list[Finding] = []
        cur = self._db.execute(
            "SELECT n.kind, n.folded, n.path FROM names n JOIN (SELECT kind, folded"
            " FROM names GROUP BY kind, folded HAVING count(*) > 1) g"
            " ON n.kind = g.kind AND n.folded = g.folded ORDER BY n.kind, n.folded, n.path"
        )
        group: list[str] = []
        key: tuple[int, str] | None = None
        for kind, folded, path in [*cur, (None, None, None)]:
            if (kind, folded) != key and group and key is not None:
                label = "files" if key[0] == self._FILE else "folders"
                shown = ", ".join(repr(n) for n in group)
                found.append(
                    Finding(
                        CASE_COLLISION.code,
                        "warn",
                        f"{label} differ only in letter case and collide on case-insensitive"
                        f" file systems: {shown}",
                        file=group[0],
                        details={"names": list(group)},
                    )
                )
                group = []
            key = (kind, folded)
            if path is not None:
                group.append(path)
        return found

    def close(self) -> None:
        self._db.close()


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
