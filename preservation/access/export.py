"""Export one AIP version as a complete, valid BagIt bag, verified while it streams.

:func:`stream_bag` yields the bytes of a zip or tar archive of the bag;
:func:`export_bag` writes the bag to a folder, a zip file or a tar file. Both read
the catalogue's list of the version's files (payload and tag files, page by page)
and fetch each file's bytes from the object that holds them: ``<aip>/v<origin>/<path>``,
so that a version whose ``fetch.txt`` points at earlier versions' payload comes out
complete (the fetched files copied in, ``fetch.txt`` kept, as
:func:`preservation.versions.materialise` does).

Verification while streaming. Every file is hashed (SHA-256) as it is read and
compared with the catalogue's size and digest. The last block of each file is held
back until the file has been verified, so the bytes of a bad file never complete in
the output: on a mismatch an incident is opened for the copy that held the bad
object (:mod:`preservation.audit.incidents`, the same kinds and codes as audits:
``mismatch`` AUD004, ``size`` AUD003) and DigestMismatch (FIX001, exit 4) is raised
mid-stream. A consumer therefore gets a truncated stream and an error, never a
silently wrong archive; file outputs are written under a temporary name and renamed
only when complete, so a failed export leaves nothing behind.

Stores. ``store=None`` reads from the configured, warm stores that hold a good
(stored or verified) copy of every version the export needs, primary first; an
object missing on one of them is fetched from the next (and an incident records the
missing object). A named store is the only one read.

Memory does not grow with file size (1 MiB blocks) or with the catalogue's file
count (pages of 1,000 rows). Tar keeps nothing per file (headers are written with
:meth:`tarfile.TarInfo.tobuf`, PAX format for long UTF-8 names and sizes over 8 GiB);
zip (:mod:`zipfile` writing to a non-seekable sink, so every entry has a data
descriptor, and zip64 where an entry or the archive passes 4 GiB) must keep one
small entry record (a few hundred bytes) per file for the central directory it
writes at the end.

Rights. ``principal=None`` is the local operator (full rights). A principal that may
not see restricted records gets a full bag only of a public AIP (see
:mod:`preservation.catalog.visibility`) none of whose files is restricted; the
access package (:mod:`preservation.access.dip`) is what such a user exports
otherwise. (That check reads the version's METS, so for such a principal memory
holds its summary.)
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from preservation.errors import (
    DigestMismatch,
    NotInCatalog,
    ObjectNotFound,
    PermissionDenied,
    PreservationError,
    StorageError,
    UsageError,
)
from preservation.hashing import BLOCK_SIZE, MultiHasher
from preservation.model import utcnow
from preservation.paths import join_key, path_problem

if TYPE_CHECKING:
    from preservation.access.principal import Principal
    from preservation.catalog.export_queries import ExportFile, VersionInfo
    from preservation.repository import Repository
    from preservation.storage.base import Store

log = logging.getLogger(__name__)

ArchiveFormat = Literal["zip", "tar"]
FORMATS: tuple[str, ...] = ("zip", "tar")
# Output is handed on once at least this much has accumulated (and after each file).
FLUSH_BYTES = 256 * 1024


# --------------------------------------------------------------------- entries


@dataclass
class Entry:
    """One file of the output: its path, size and a callable giving its bytes."""

    path: str
    size: int
    blocks: Callable[[], Iterator[bytes]]


@dataclass
class Source:
    """Where an export reads from: the version, and the stores to try, in order."""

    repo: Repository
    info: VersionInfo
    stores: list[Store]
    named: bool  # the caller named the store: no other is tried
    checked: list[int] = field(default_factory=lambda: [0, 0])  # files, bytes verified

    def files(self) -> Iterator[ExportFile]:
        """Every file of the version (payload and tag), in path order, page by page."""
        from preservation.catalog.export_queries import export_files_page

        after: str | None = None
        while True:
            with self.repo.catalog.session() as s:
                page = export_files_page(s, self.info.version_id, after=after)
            if not page:
                return
            yield from page
            after = page[-1].path

    def blocks(self, f: ExportFile) -> Iterator[bytes]:
        """The verified bytes of one file; see the module docstring."""
        key = join_key(self.info.aip_id, f"v{f.origin_version}", f.path)
        missing: list[str] = []
        for store in self.stores:
            try:
                stream_cm = store.open(key)
                src = stream_cm.__enter__()
            except ObjectNotFound:
                missing.append(store.name)
                self._incident(store, f, key, "missing", f"{key} is not on {store.name}")
                continue
            try:
                yield from self._verified(store, f, key, src)
            except BaseException:
                stream_cm.__exit__(None, None, None)
                raise
            stream_cm.__exit__(None, None, None)
            self.checked[0] += 1
            self.checked[1] += f.size
            return
        raise ObjectNotFound(key=key, store=", ".join(missing) or "(no store)")

    def _verified(self, store: Store, f: ExportFile, key: str, src: IO[bytes]) -> Iterator[bytes]:
        hasher = MultiHasher(("sha256",))
        held: bytes | None = None
        while True:
            try:
                block = src.read(BLOCK_SIZE)
            except StorageError:
                raise
            except OSError as e:
                self._incident(store, f, key, "unreadable", f"{key} on {store.name}: {e}")
                raise StorageError(f"{store.name}:{key} cannot be read: {e}") from e
            if not block:
                break
            hasher.update(block)
            if hasher.size > f.size:
                break
            if held is not None:
                yield held
            held = block
        found = hasher.hexdigests()["sha256"]
        label = f"{store.name}:{key}"
        if hasher.size != f.size:
            found_size = "more" if hasher.size > f.size else str(hasher.size)
            detail = f"{label}: expected {f.size} bytes, found {found_size}"
            self._incident(store, f, key, "size", detail)
            raise DigestMismatch(
                path=label, algorithm="size", expected=str(f.size), found=found_size
            )
        if found != f.sha256:
            self._incident(
                store, f, key, "mismatch", f"{label}: sha256 expected {f.sha256}, found {found}"
            )
            raise DigestMismatch(path=label, algorithm="sha256", expected=f.sha256, found=found)
        if held is not None:
            yield held

    def _incident(self, store: Store, f: ExportFile, key: str, kind: str, detail: str) -> None:
        """Open (or note again) the incident of a bad object found by an export."""
        from preservation.audit.incidents import Finding, record_findings

        finding = Finding(
            kind=kind,
            aip_id=self.info.aip_id,
            version_id=f.origin_version_id,
            version=f.origin_version,
            store=store.name,
            path=f.path,
            key=key,
            detail=f"found by an export of v{self.info.version}: {detail}",
            file_id=f.origin_file_id,
            evidence={"found_by": "export", "exported_version": self.info.version},
        )
        try:
            with self.repo.catalog.session() as s:
                notes = record_findings(s, [finding], run_id=None, when=utcnow())
            for note in notes:
                log.error("incident %d (%s): %s", note.incident, note.kind, note.detail)
        except PreservationError as e:  # the fixity error matters more; say it, go on
            log.error("could not record the incident for %s: %s", key, e)


def open_source(
    repo: Repository,
    aip_id: str,
    *,
    version: int | None = None,
    store: str | None = None,
    principal: Principal | None = None,
    whole: bool = True,
) -> Source:
    """The version to export and where to read it; raises before any byte is produced:
    NotInCatalog (unknown AIP or version, or, for a whole-AIP export, ``whole``, an
    AIP that is not public when the principal may not see restricted records),
    UsageError (a deleted AIP, an unknown store, a cold store), NoSourceCopy-like
    StorageError when no store holds a good copy."""
    from preservation.catalog.export_queries import good_copy_stores, origin_versions, version_info

    if principal is not None:
        from preservation.access.principal import EXPORT

        if not principal.can(EXPORT):
            raise PermissionDenied(user=principal.name, role=str(principal.role), action=EXPORT)
    with repo.catalog.session() as s:
        if whole and principal is not None and not principal.sees_restricted:
            from preservation.catalog.access_queries import aip_is_public

            # before the version is looked up: "no such version" of a restricted AIP
            # must not tell a reader that the AIP exists
            if not aip_is_public(s, aip_id):
                raise NotInCatalog(kind="AIP", ident=aip_id)
        info = version_info(s, aip_id, version)
        if whole and principal is not None and not principal.sees_restricted and not info.public:
            raise NotInCatalog(kind="AIP", ident=aip_id)
        needed = origin_versions(s, info.version_id)
        holders = good_copy_stores(s, aip_id, needed)
    if info.state != "active":
        raise UsageError(f"AIP {aip_id} is {info.state}; nothing to export")
    settings = repo.config.settings.stores
    if store is not None:
        repo.config.store_settings(store)  # ConfigError for an unknown name
        if settings[store].cold:
            raise UsageError(f"store {store} is cold: restore its objects before exporting")
        if store not in holders:
            raise UsageError(
                f"store {store} holds no good copy of AIP {aip_id} v{info.version} in the"
                f" catalogue (stores with one: {', '.join(holders) or 'none'})"
            )
        return Source(repo, info, [repo.store(store)], named=True)
    names = [n for n in holders if n in settings and not settings[n].cold]
    if not names:
        raise StorageError(
            f"no warm store holds a good copy of AIP {aip_id} v{info.version}"
            f" (versions {', '.join(str(v) for v in sorted(needed))})"
        )
    return Source(repo, info, [repo.store(n) for n in names], named=False)


def bag_entries(source: Source, principal: Principal | None = None) -> Iterator[Entry]:
    """The entries of the version's complete bag, in path order."""
    restricted_ok = principal is None or principal.sees_restricted
    guard = None if restricted_ok else _restriction_guard(source)
    for f in source.files():
        problem = path_problem(f.path)
        if problem:
            raise UsageError(f"catalogue path {f.path!r} of AIP {source.info.aip_id}: {problem}")
        if guard is not None and f.kind == "payload" and guard(f):
            assert principal is not None
            raise PermissionDenied(
                user=principal.name,
                role=str(principal.role),
                action=f"export the whole AIP {source.info.aip_id} (it holds restricted"
                " files; export its access package instead)",
            )
        yield file_entry(source, f)


def file_entry(source: Source, f: ExportFile) -> Entry:
    """The output entry of one catalogued file, read and verified from the source."""
    return Entry(f.path, f.size, lambda: source.blocks(f))


def _restriction_guard(source: Source) -> Callable[[ExportFile], bool]:
    from preservation.access.dip import restricted_paths

    restricted = restricted_paths(source)
    return lambda f: f.path in restricted


# --------------------------------------------------------------------- archives


class _Sink(io.RawIOBase):
    """A non-seekable, write-only buffer the archive writers write into."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.pending = 0
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        if data:
            self.parts.append(data)
            self.pending += len(data)
            self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def drain(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        self.pending = 0
        return data


def _stream_zip(entries: Iterable[Entry]) -> Iterator[bytes]:
    sink = _Sink()
    now = time.gmtime()[:6]
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for e in entries:
            zinfo = zipfile.ZipInfo(e.path, date_time=now)
            zinfo.compress_type = zipfile.ZIP_STORED
            zinfo.file_size = e.size  # decides zip64 for this entry
            zinfo.external_attr = 0o644 << 16
            with zf.open(zinfo, "w") as w:
                for block in e.blocks():
                    w.write(block)
                    if sink.pending >= FLUSH_BYTES:
                        yield sink.drain()
            if sink.pending:
                yield sink.drain()
    tail = sink.drain()
    if tail:
        yield tail


def _stream_tar(entries: Iterable[Entry]) -> Iterator[bytes]:
    now = int(time.time())
    for e in entries:
        ti = tarfile.TarInfo(e.path)
        ti.size = e.size
        ti.mtime = now
        ti.mode = 0o644
        yield ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        parts: list[bytes] = []
        pending = 0
        for block in e.blocks():
            parts.append(block)
            pending += len(block)
            if pending >= FLUSH_BYTES:
                yield b"".join(parts)
                parts.clear()
                pending = 0
        pad = (-e.size) % tarfile.BLOCKSIZE
        parts.append(b"\0" * pad)
        yield b"".join(parts)
    # End of archive: two zero blocks, padded to a whole record.
    yield b"\0" * tarfile.RECORDSIZE


def stream_entries(entries: Iterable[Entry], fmt: ArchiveFormat) -> Iterator[bytes]:
    """The archive (``zip`` or ``tar``) of ``entries`` as a stream of byte chunks."""
    if fmt == "zip":
        return _stream_zip(entries)
    if fmt == "tar":
        return _stream_tar(entries)
    raise UsageError(f"archive format {fmt!r} is not one of {', '.join(FORMATS)}")


def stream_bag(
    repo: Repository,
    aip_id: str,
    *,
    version: int | None = None,
    fmt: ArchiveFormat = "zip",
    store: str | None = None,
    principal: Principal | None = None,
) -> Iterator[bytes]:
    """The archive bytes of a complete, valid bag of ``aip_id`` (``version``, default
    the current one), verified while streaming; see the module docstring.

    Everything that can be refused is refused before the iterator is returned
    (NotInCatalog, PermissionDenied, UsageError, StorageError); a bad object raises
    DigestMismatch (FIX001) from the iterator, after opening an incident.
    """
    if fmt not in FORMATS:
        raise UsageError(f"archive format {fmt!r} is not one of {', '.join(FORMATS)}")
    source = open_source(repo, aip_id, version=version, store=store, principal=principal)
    if principal is not None and not principal.sees_restricted:
        _restriction_guard(source)  # refuses an AIP with restricted files up front
    return stream_entries(bag_entries(source, principal), fmt)


# --------------------------------------------------------------------- file outputs


@dataclass
class ExportResult:
    aip: str
    version: int
    kind: Literal["bag", "dip"]
    output: str
    format: Literal["dir", "zip", "tar"]
    files: int
    bytes: int
    stores: list[str]
    skipped: list[str] = field(default_factory=list)  # DIP: restricted files left out

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _temporary_sibling(target: Path, suffix: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    return Path(name)


def write_entries(
    entries: Iterable[Entry], target: Path, fmt: Literal["dir", "zip", "tar"]
) -> Path:
    """Write ``entries`` to a new folder or archive file at ``target``, under a
    temporary name renamed into place only when complete. Refuses an existing target
    (a folder only when it is empty is replaced)."""
    target = Path(target)
    if fmt == "dir":
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise UsageError(f"{target} already exists and is not an empty folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        )
        try:
            for e in entries:
                out = work / e.path
                out.parent.mkdir(parents=True, exist_ok=True)
                with out.open("wb") as fh:
                    for block in e.blocks():
                        fh.write(block)
                    fh.flush()
                    os.fsync(fh.fileno())
            if target.exists():
                target.rmdir()
            work.rename(target)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return target
    if target.exists():
        raise UsageError(f"{target} already exists")
    tmp = _temporary_sibling(target, ".partial")
    try:
        with tmp.open("wb") as fh:
            for chunk in stream_entries(entries, fmt):
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, target)  # refuses to replace a file that appeared meanwhile
        tmp.unlink()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return target


def export_bag(
    repo: Repository,
    aip_id: str,
    target: Path,
    *,
    fmt: Literal["dir", "zip", "tar"] = "dir",
    version: int | None = None,
    store: str | None = None,
    principal: Principal | None = None,
) -> ExportResult:
    """Write a complete, valid bag of the version to a folder or archive file."""
    source = open_source(repo, aip_id, version=version, store=store, principal=principal)
    if principal is not None and not principal.sees_restricted:
        _restriction_guard(source)
    out = write_entries(bag_entries(source, principal), target, fmt)
    return ExportResult(
        aip=aip_id,
        version=source.info.version,
        kind="bag",
        output=str(out),
        format=fmt,
        files=source.checked[0],
        bytes=source.checked[1],
        stores=[s.name for s in source.stores],
    )


__all__ = [
    "ArchiveFormat",
    "Entry",
    "ExportResult",
    "Source",
    "bag_entries",
    "export_bag",
    "file_entry",
    "open_source",
    "stream_bag",
    "stream_entries",
    "write_entries",
]
