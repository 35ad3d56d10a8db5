"""A store in a local folder: one file per object, ``<root>/<key>``.

Writes are crash-safe: the bytes go to a temporary name in the target folder
(``.<name>.tmp-<32 hex>``), are hashed on the way, fsynced, verified, made read-only
and only then linked into place; the folder is fsynced after. Without ``overwrite``
the final step is ``os.link`` (which fails if the name exists), so two racing puts
cannot both win. Temporary names never show in :meth:`LocalStore.list`, and keys whose
last segment looks like one are refused.

Where the file system supports it (Linux ``O_TMPFILE``), a new object is first an
anonymous file in its folder, read-only from its creation (the descriptor that creates
a file may write it whatever its mode), written and verified, and then given its
name with ``linkat`` (which also fails if the name exists): no temporary name is made
or removed, which halves the folder updates per object, and a crash leaves nothing
behind. Elsewhere the temporary-name path above is used.

No checksum is kept beside the files (no sidecars): :meth:`LocalStore.head` reports the
size only. Audits re-hash the content.
"""

from __future__ import annotations

import errno
import io
import os
import random
import re
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TypeVar

from preservation.errors import (
    AccessDenied,
    DigestMismatch,
    InvalidKey,
    ObjectExists,
    ObjectNotFound,
    PreservationError,
    StorageError,
    StorageFull,
)
from preservation.hashing import BLOCK_SIZE, MultiHasher, check_algorithms, verify_digests
from preservation.paths import is_nfc, path_problem, validate_key
from preservation.storage.base import (
    DEFAULT_ALGORITHMS,
    Capabilities,
    ObjectInfo,
    ProbeResult,
    Store,
)

TMP_NAME = re.compile(r"^\..+\.tmp-[0-9a-f]{32}$")
PROBE_PREFIX = ".probe/"
READ_ONLY = 0o444
WRITABLE = 0o644
# os.link cannot be used on this file system: fall back to check-then-rename.
_NO_LINK = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS, errno.EXDEV}
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}
_FOLDER_ATTEMPTS = 20
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_PROC_FD = Path("/proc/self/fd")
# O_TMPFILE is not supported by this file system (or kernel)
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EISDIR, errno.EINVAL}
T = TypeVar("T")


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, tz=UTC)


def _step_aside(attempt: int) -> None:
    """After a few attempts at a folder that concurrent deletes keep pruning, wait a
    random moment (up to ``attempt`` ms) so that the writers and pruners fall out of step."""
    if attempt > 2:
        time.sleep(random.uniform(0, 0.001 * attempt))


def _is_object(path: Path) -> bool:
    """Whether something other than a folder stands at ``path`` (one lstat, so a folder
    pruned between two checks is never taken for an object)."""
    try:
        return not stat.S_ISDIR(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):  # nothing there, or a parent is a file
        return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(path: Path) -> None:
    """syncfs(2) on the file system holding ``path`` (os.sync where it is missing)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True) if name else None
    if libc is None or not hasattr(libc, "syncfs"):
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


def _read_block(stream: IO[bytes], buf: bytearray, view: memoryview) -> memoryview:
    """Read the next block of ``stream`` into ``buf``; an empty view means end of stream."""
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        n = readinto(view)
        return view[: n or 0]
    block = stream.read(len(buf))
    n = len(block)
    buf[:n] = block
    return view[:n]


class LocalStore(Store):
    """Objects as read-only files under ``root``."""

    def __init__(self, name: str, site: str, root: Path) -> None:
        self.name = name
        self.site = site
        self.root = Path(root)
        # anonymous temporary files (O_TMPFILE + linkat): None until first tried
        self._anonymous: bool | None = None if _O_TMPFILE and _PROC_FD.is_dir() else False

    def __repr__(self) -> str:
        return f"LocalStore({self.name!r}, site={self.site!r}, root={str(self.root)!r})"

    # -- helpers -------------------------------------------------------------

    def _path(self, key: str) -> Path:
        validate_key(key)
        if TMP_NAME.match(key.rsplit("/", 1)[-1]):
            raise InvalidKey(key=key, reason="its last segment is reserved for temporary files")
        return self.root.joinpath(*key.split("/"))

    def _os_error(self, e: OSError, op: str, key: str) -> PreservationError:
        reason = f"{op} {key}: {e.strerror or e}"
        if e.errno in _FULL:
            return StorageFull(store=self.name, reason=reason)
        if e.errno in _DENIED:
            return AccessDenied(store=self.name, reason=reason)
        return StorageError(f"{self.name}: {reason} (errno {e.errno})")

    def _make_parents(self, folder: Path, key: str) -> None:
        """Create ``folder`` and any missing parents, fsyncing each new entry.

        A concurrent delete may prune a folder just made (it was empty): the raw
        FileNotFoundError is left to the caller, which retries the whole step.
        """
        missing: list[Path] = []
        p = folder
        while not p.is_dir():
            # Re-check is_dir: another thread may have made the folder just now.
            if _is_object(p):
                rel = p.relative_to(self.root).as_posix() if p != self.root else str(p)
                raise InvalidKey(key=key, reason=f"{rel!r} is an object, so it cannot be a folder")
            missing.append(p)
            if p.parent == p:
                break
            p = p.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                # One lstat: a folder that a concurrent delete pruned just now is not
                # an object (the caller retries), only a file or link in the way is.
                if _is_object(d):
                    raise InvalidKey(
                        key=key, reason=f"{d.name!r} is an object, not a folder"
                    ) from None
            except FileNotFoundError:
                raise
            except OSError as e:
                raise self._os_error(e, "create folder for", key) from e
            try:
                _fsync_dir(d.parent)
            except FileNotFoundError:
                raise
            except OSError as e:
                raise self._os_error(e, "sync folder for", key) from e

    def _in_folder(self, folder: Path, key: str, step: Callable[[], T]) -> T:
        """Make ``folder`` and run ``step`` in it, again if a concurrent delete pruned
        the folder in between (FileNotFoundError)."""
        attempt = 1
        while True:
            try:
                self._make_parents(folder, key)
                return step()
            except FileNotFoundError as e:
                if attempt >= _FOLDER_ATTEMPTS:
                    raise self._os_error(e, "create in folder for", key) from e
                _step_aside(attempt)
                attempt += 1

    def _regular(self, path: Path, key: str) -> os.stat_result:
        try:
            st = path.lstat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(store=self.name, key=key) from None
        except OSError as e:
            raise self._os_error(e, "stat", key) from e
        if not stat.S_ISREG(st.st_mode):
            raise ObjectNotFound(store=self.name, key=key)
        return st

    def _link_into_place(self, tmp: Path, final: Path, key: str) -> None:
        """Give ``tmp`` the name ``final`` unless that name exists (ObjectExists)."""
        try:
            os.link(tmp, final, follow_symlinks=False)
        except FileExistsError:
            raise ObjectExists(store=self.name, key=key) from None
        except OSError as e:
            if e.errno not in _NO_LINK:
                raise self._os_error(e, "link", key) from e
            # No hard links here: the check and the rename are two steps.
            if os.path.lexists(final):
                raise ObjectExists(store=self.name, key=key) from None
            try:
                tmp.rename(final)
            except OSError as e2:
                raise self._os_error(e2, "rename", key) from e2
            return
        try:
            tmp.unlink()
        except OSError as e:
            raise self._os_error(e, "remove temporary file of", key) from e

    def _prune(self, folder: Path) -> None:
        """Remove empty folders from ``folder`` up to (not including) the root."""
        root = self.root
        p = folder
        while p != root and root in p.parents:
            try:
                p.rmdir()
            except OSError:
                break
            p = p.parent
        if p.is_dir():
            try:
                _fsync_dir(p)
            except OSError:
                pass

    # -- the interface -------------------------------------------------------

    def put(
        self,
        key: str,
        stream: IO[bytes],
        *,
        digests: Mapping[str, str] | None = None,
        algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS,
        size: int | None = None,
        overwrite: bool = False,
        sync: bool = True,
    ) -> ObjectInfo:
        final = self._path(key)
        expected = {a.lower(): v for a, v in (digests or {}).items()}
        algs = check_algorithms((*algorithms, *expected))
        try:
            there = os.lstat(final)  # one call for the usual case: nothing there yet
        except OSError:
            there = None
        if there is not None:
            if stat.S_ISDIR(there.st_mode) or (stat.S_ISLNK(there.st_mode) and final.is_dir()):
                raise InvalidKey(key=key, reason="is a folder of other objects in this local store")
            if not overwrite:
                raise ObjectExists(store=self.name, key=key)
        folder = final.parent
        if not overwrite and self._anonymous is not False:
            anon = self._create_anonymous(folder, key)
            if anon is not None:
                return self._put_anonymous(anon, final, key, stream, algs, expected, size, sync)
        tmp = folder / f".{final.name}.tmp-{uuid.uuid4().hex}"
        fd = self._create_temp(tmp, key)
        try:
            hasher = self._write_temp(fd, stream, algs, key, sync, size=size)
            found = self._verified(hasher, key, expected, size)
            try:
                tmp.chmod(READ_ONLY)
                st = tmp.stat()
            except OSError as e:
                raise self._os_error(e, "protect", key) from e
            if overwrite:
                try:
                    tmp.replace(final)
                except OSError as e:
                    raise self._os_error(e, "rename", key) from e
            else:
                self._link_into_place(tmp, final, key)
            if sync:
                try:
                    _fsync_dir(folder)
                except OSError as e:
                    raise self._os_error(e, "sync folder of", key) from e
        except BaseException:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise
        return ObjectInfo(key=key, size=hasher.size, digests=found, last_modified=_mtime(st))

    def _verified(
        self, hasher: MultiHasher, key: str, expected: Mapping[str, str], size: int | None
    ) -> dict[str, str]:
        """The digests of what was written, once its size and the expected digests
        agree (DigestMismatch otherwise)."""
        label = f"{self.name}:{key}"
        if size is not None and hasher.size != size:
            raise DigestMismatch(
                path=label, algorithm="size", expected=str(size), found=str(hasher.size)
            )
        found = hasher.hexdigests()
        verify_digests(label, expected, found)
        return found

    def _create_anonymous(self, folder: Path, key: str) -> int | None:
        """Make the folders and open an anonymous file in ``folder``; None when this
        file system cannot (then it is not tried again)."""

        def create() -> int | None:
            try:
                # read-only from the start: the descriptor of a file it creates may
                # write whatever the mode (no chmod, one inode update less per object)
                return os.open(folder, os.O_RDWR | _O_TMPFILE | os.O_CLOEXEC, READ_ONLY)
            except FileNotFoundError:
                raise
            except OSError as e:
                if e.errno in _NO_TMPFILE:
                    self._anonymous = False
                    return None
                if e.errno == errno.EPERM:
                    # Linux answers EPERM (not ENOENT) for a folder that a concurrent
                    # delete is removing: make it again, as for a pruned folder.
                    if not folder.is_dir():
                        raise FileNotFoundError(errno.ENOENT, e.strerror, str(folder)) from e
                    return None  # this put takes the temporary-name path, which reports
                raise self._os_error(e, "create", key) from e

        return self._in_folder(folder, key, create)

    def _put_anonymous(
        self,
        fd: int,
        final: Path,
        key: str,
        stream: IO[bytes],
        algs: tuple[str, ...],
        expected: Mapping[str, str],
        size: int | None,
        sync: bool,
    ) -> ObjectInfo:
        """Write, verify and protect the anonymous file ``fd``, then link it to
        ``final`` (ObjectExists if that name exists). Until the link nothing is visible;
        on any error the file vanishes with its descriptor."""
        try:
            hasher = self._write_temp(fd, stream, algs, key, sync, close=False, size=size)
            found = self._verified(hasher, key, expected, size)
            try:
                st = os.fstat(fd)
            except OSError as e:
                raise self._os_error(e, "stat", key) from e
            if not self._link_anonymous(fd, final, key):
                # No link from /proc here after all: name it the other way.
                return self._name_anonymous(fd, key, algs, st, sync)
            if sync:
                try:
                    _fsync_dir(final.parent)
                except OSError as e:
                    raise self._os_error(e, "sync folder of", key) from e
        finally:
            os.close(fd)
        return ObjectInfo(key=key, size=hasher.size, digests=found, last_modified=_mtime(st))

    def _link_anonymous(self, fd: int, final: Path, key: str) -> bool:
        """Give the anonymous file its name; False when linking it is not possible
        here. A folder pruned meanwhile by a concurrent delete is made again."""
        source = f"{_PROC_FD}/{fd}"
        for attempt in range(1, _FOLDER_ATTEMPTS + 1):
            try:
                # src_dir_fd makes Python call linkat(2), which follows the /proc link
                # (the kernel ignores it for an absolute path)
                os.link(source, final, src_dir_fd=fd, follow_symlinks=True)
            except FileExistsError:
                raise ObjectExists(store=self.name, key=key) from None
            except FileNotFoundError as e:
                if attempt >= _FOLDER_ATTEMPTS:
                    raise self._os_error(e, "link", key) from e
                _step_aside(attempt)
                try:
                    self._make_parents(final.parent, key)
                except FileNotFoundError:
                    pass  # pruned again at once: the next attempt makes it again
                continue
            except OSError as e:
                if e.errno in _NO_LINK or e.errno == errno.EXDEV:
                    self._anonymous = False
                    return False
                raise self._os_error(e, "link", key) from e
            self._anonymous = True
            return True
        return False  # not reached

    def _name_anonymous(
        self, fd: int, key: str, algs: tuple[str, ...], st: os.stat_result, sync: bool
    ) -> ObjectInfo:
        """Copy a verified anonymous file to a temporary name and put that in place
        (only where an anonymous file can be made but not linked)."""
        os.lseek(fd, 0, os.SEEK_SET)
        with os.fdopen(os.dup(fd), "rb") as src:
            return self.put(key, src, algorithms=algs, size=st.st_size, sync=sync)

    def _create_temp(self, tmp: Path, key: str) -> int:
        """Make the folders and open ``tmp`` exclusively."""

        def create() -> int:
            try:
                return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                raise
            except OSError as e:
                raise self._os_error(e, "create", key) from e

        return self._in_folder(tmp.parent, key, create)

    def _write_temp(
        self,
        fd: int,
        stream: IO[bytes],
        algs: tuple[str, ...],
        key: str,
        sync: bool = True,
        close: bool = True,
        size: int | None = None,
    ) -> MultiHasher:
        hasher = MultiHasher(algs)
        with os.fdopen(fd, "wb", buffering=0, closefd=close) as out:
            # a small object needs no 1 MiB buffer (allocating one per object dominates
            # the cost of many small ones); one byte more than the size sees the end
            bufsize = BLOCK_SIZE if size is None else max(4096, min(BLOCK_SIZE, size + 1))
            buf = bytearray(bufsize)
            view = memoryview(buf)
            while True:
                block = _read_block(stream, buf, view)  # the source's errors are its own
                if not block:
                    break
                hasher.update(block)
                try:
                    written = 0
                    while written < len(block):
                        written += out.write(block[written:]) or 0
                except OSError as e:
                    raise self._os_error(e, "write", key) from e
            if sync:
                try:
                    os.fsync(out.fileno())
                except OSError as e:
                    raise self._os_error(e, "sync", key) from e
        return hasher

    def open(self, key: str) -> io.BufferedReader:
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(store=self.name, key=key) from None
        except OSError as e:
            raise self._os_error(e, "open", key) from e

    def head(self, key: str) -> ObjectInfo:
        st = self._regular(self._path(key), key)
        return ObjectInfo(key=key, size=st.st_size, last_modified=_mtime(st))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if prefix:
            validate_key(prefix.rstrip("/"))
        base = prefix.rpartition("/")[0]
        start = self.root.joinpath(*base.split("/")) if base else self.root
        return self._walk(start, base, prefix)

    def _entries(self, folder: Path, base: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """The usable entries of one folder, in S3 key order."""
        try:
            with os.scandir(folder) as it:
                found = [
                    e
                    for e in it
                    if not TMP_NAME.match(e.name)
                    and path_problem(e.name) is None
                    and is_nfc(e.name)
                ]
        except (FileNotFoundError, NotADirectoryError):
            return iter(())
        except OSError as e:
            raise self._os_error(e, "list", base or "/") from e

        def sort_key(e: os.DirEntry[str]) -> str:
            # A folder's keys all start with "name/", so it sorts as "name/".
            return e.name + "/" if e.is_dir(follow_symlinks=False) else e.name

        found.sort(key=sort_key)
        return ((f"{base}/{e.name}" if base else e.name, e) for e in found)

    def _walk(self, start: Path, base: str, prefix: str) -> Iterator[ObjectInfo]:
        stack = [self._entries(start, base)]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
                continue
            key, entry = item
            if entry.is_dir(follow_symlinks=False):
                folder_key = key + "/"
                if folder_key.startswith(prefix) or prefix.startswith(folder_key):
                    stack.append(self._entries(Path(entry.path), key))
            elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted while listing
                except OSError as e:
                    raise self._os_error(e, "stat", key) from e
                yield ObjectInfo(key=key, size=st.st_size, last_modified=_mtime(st))

    def delete(self, key: str) -> None:
        path = self._path(key)
        self._regular(path, key)
        try:
            path.chmod(WRITABLE)
            path.unlink()
        except FileNotFoundError:
            raise ObjectNotFound(store=self.name, key=key) from None
        except OSError as e:
            raise self._os_error(e, "delete", key) from e
        self._prune(path.parent)

    def move(self, src: str, dst: str) -> ObjectInfo:
        src_path = self._path(src)
        dst_path = self._path(dst)
        self._regular(src_path, src)
        if dst_path.is_dir():
            raise InvalidKey(key=dst, reason="is a folder of other objects in this local store")
        if os.path.lexists(dst_path):
            raise ObjectExists(store=self.name, key=dst)
        self._in_folder(
            dst_path.parent,
            dst,
            lambda: self._link_into_place_or_move(src_path, src, dst_path, dst),
        )
        try:
            _fsync_dir(dst_path.parent)
        except OSError as e:
            raise self._os_error(e, "sync folder of", dst) from e
        self._prune(src_path.parent)
        return self.head(dst)

    def sync(self) -> None:
        """Flush the store's file system (syncfs) so that every object is durable."""
        try:
            _syncfs(self.root)
        except OSError as e:
            raise self._os_error(e, "sync", "/") from e

    def move_prefix(self, src: str, dst: str) -> int:
        """One atomic folder rename when ``dst`` does not exist yet; else object by object."""
        src_dir = self._path(src.rstrip("/"))
        dst_dir = self._path(dst.rstrip("/"))
        if not src_dir.is_dir():
            return 0
        if os.path.lexists(dst_dir):
            return super().move_prefix(src, dst)
        count = self._count(src_dir)
        self._make_parents(dst_dir.parent, dst)
        try:
            src_dir.rename(dst_dir)
        except OSError as e:
            if os.path.lexists(dst_dir):  # someone else made it meanwhile
                return super().move_prefix(src, dst)
            raise self._os_error(e, "rename", src) from e
        try:
            _fsync_dir(dst_dir.parent)
            _fsync_dir(src_dir.parent)
        except OSError as e:
            raise self._os_error(e, "sync folder of", dst) from e
        self._prune(src_dir.parent)
        return count

    def _count(self, folder: Path) -> int:
        """How many objects :meth:`list` would yield under ``folder`` (names checked as
        it checks them, without its stat of every object)."""
        count = 0
        pending = [folder]
        while pending:
            try:
                with os.scandir(pending.pop()) as it:
                    for e in it:
                        if TMP_NAME.match(e.name) or path_problem(e.name) or not is_nfc(e.name):
                            continue
                        if e.is_dir(follow_symlinks=False):
                            pending.append(Path(e.path))
                        elif e.is_file(follow_symlinks=False):
                            count += 1
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as e:
                raise self._os_error(e, "list", str(folder)) from e
        return count

    def _link_into_place_or_move(self, src: Path, src_key: str, dst: Path, key: str) -> None:
        """Like ``_link_into_place`` but for an object that already has a name.

        FileNotFoundError is left raw when the target folder vanished (and retried);
        a vanished source is ObjectNotFound."""
        try:
            os.link(src, dst, follow_symlinks=False)
        except FileExistsError:
            raise ObjectExists(store=self.name, key=key) from None
        except FileNotFoundError:
            self._regular(src, src_key)
            raise
        except OSError as e:
            if e.errno not in _NO_LINK:
                raise self._os_error(e, "link", key) from e
            if os.path.lexists(dst):
                raise ObjectExists(store=self.name, key=key) from None
            try:
                src.replace(dst)
            except OSError as e2:
                raise self._os_error(e2, "rename", key) from e2
            return
        try:
            src.unlink()
        except OSError as e:
            raise self._os_error(e, "remove old name of", key) from e

    def _free_bytes(self) -> int:
        p = self.root
        while not p.exists() and p.parent != p:
            p = p.parent
        try:
            return shutil.disk_usage(p).free
        except OSError as e:
            raise self._os_error(e, "measure free space of", str(p)) from e

    def capabilities(self) -> Capabilities:
        return Capabilities(
            kind="local",
            versioning=False,
            object_lock=False,
            server_side_checksum=False,
            free_bytes=self._free_bytes(),
            notes=(f"root {self.root}",),
        )

    def probe(self) -> ProbeResult:
        try:
            caps = self.capabilities()
        except PreservationError as e:
            return ProbeResult(self.name, False, False, None, [f"{e.code}: {e.message}"])
        problems: list[str] = []
        writable = False
        data = os.urandom(4096)
        key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
        try:
            hasher = MultiHasher(("sha256",))
            hasher.update(data)
            self.put(key, io.BytesIO(data), digests=hasher.hexdigests(), size=len(data))
            try:
                with self.open(key) as f:
                    back = f.read(len(data) + 1)
                if back != data:
                    problems.append("probe object read back differs from what was written")
            finally:
                self.delete(key)
            writable = True
        except PreservationError as e:
            problems.append(f"{e.code}: {e.message}")
        return ProbeResult(self.name, True, writable, caps, problems)
