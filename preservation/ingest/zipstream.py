"""Reading a zip archive in bounded memory.

:class:`ZipReader` finds the end of central directory record (and the ZIP64 locator
and record when there are any), then :meth:`ZipReader.entries` reads the central
directory in fixed-size blocks (:data:`CD_BLOCK`) and yields one :class:`Entry` at a
time. Nothing is kept of the entries already yielded, so memory does not grow with
the number of members (Python's :class:`zipfile.ZipFile` holds a ``ZipInfo`` per
member, about 0.7 KB each); iterate again to read the directory again.

:meth:`ZipReader.open` reads a member's local header and returns a :class:`Member`,
a reader that decompresses it (stored, deflate, bzip2, lzma) block by block. It
never reads past the compressed size the central directory declares, never produces
more than the declared uncompressed size, and checks the CRC-32 as soon as the last
declared byte is produced (and that nothing follows it). Sizes and CRC are always
taken from the central directory, so members written with a data descriptor (flag
bit 3, the local header then holds zeros) need nothing special.

The reader judges the structure only. Names are given as raw bytes with their flags,
encryption as flags, limits and safety are the caller's
(:mod:`preservation.ingest.archives`). Every structural problem raises
:class:`BadZip`, a format error of this parser (as :class:`zipfile.BadZipFile` is of
zipfile's) with a message saying what is wrong and where; the caller translates it
into a finding naming the archive and the member. Decompressor errors are translated
into :class:`BadZip` too; an :class:`OSError` reading the file is passed on.
"""

from __future__ import annotations

import bz2
import lzma
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

from preservation.hashing import BLOCK_SIZE

STORED, DEFLATED, BZIP2, LZMA = 0, 8, 12, 14
METHODS = {STORED: "stored", DEFLATED: "deflate", BZIP2: "bzip2", LZMA: "lzma"}
AES = 99  # WinZip AES encryption, given as a compression method
FLAG_ENCRYPTED = 0x1
FLAG_DESCRIPTOR = 0x8  # sizes and CRC follow the data (the central directory has them)
FLAG_PATCHED = 0x20
FLAG_STRONG_ENCRYPTION = 0x40
FLAG_UTF8 = 0x800
MAX_EXTRACT_VERSION = 63  # as zipfile: version 6.3 of the specification
CD_BLOCK = 64 * 1024  # bytes of central directory read at a time
UNIX = 3  # "version made by" host system whose external attributes hold st_mode

_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIG = b"PK\x05\x06"
_LOCATOR = struct.Struct("<4sLQL")
_LOCATOR_SIG = b"PK\x06\x07"
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_EOCD64_SIG = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_CENTRAL_SIG = b"PK\x01\x02"
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIG = b"PK\x03\x04"
_U32 = 0xFFFF_FFFF
_U16 = 0xFFFF
_DECOMPRESS_ERRORS = (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError)


class BadZip(Exception):
    """The archive is not a readable zip: truncated, corrupt or unsupported."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One central directory entry, with ZIP64 sizes and offset already applied."""

    index: int  # position in the central directory, from 0
    raw_name: bytes
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int  # position of the local header in the file
    create_system: int
    extract_version: int
    external_attr: int
    dos_time: int
    dos_date: int
    extra: bytes

    @property
    def utf8(self) -> bool:
        """The name is declared UTF-8 (flag bit 11)."""
        return bool(self.flags & FLAG_UTF8)

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION)) or self.method == AES

    @property
    def is_dir(self) -> bool:
        return self.raw_name.endswith(b"/")

    @property
    def unix_mode(self) -> int:
        """``st_mode`` from the external attributes when made on Unix, else 0."""
        return (self.external_attr >> 16) & _U16 if self.create_system == UNIX else 0

    @property
    def date_time(self) -> tuple[int, int, int, int, int, int]:
        """The MS-DOS date and time: year, month, day, hour, minute, second."""
        d, t = self.dos_date, self.dos_time
        return ((d >> 9) + 1980, (d >> 5) & 0xF, d & 0x1F, t >> 11, (t >> 5) & 0x3F, (t & 0x1F) * 2)


class ZipReader:
    """A zip archive opened for reading; use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("rb", buffering=0)
        self._fd = self._file.fileno()
        self._last: tuple[int, int] | None = None  # extent of the member opened last
        try:
            self.file_size = os.fstat(self._fd).st_size
            self._find_end()
        except BaseException:
            self._file.close()
            raise

    def __enter__(self) -> ZipReader:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer only at the end of the file)."""
        parts: list[bytes] = []
        while size > 0:
            block = os.pread(self._fd, size, offset)
            if not block:
                break
            parts.append(block)
            offset += len(block)
            size -= len(block)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # ----------------------------------------------------------------- end records

    def _find_end(self) -> None:
        size = self.file_size
        if size < _EOCD.size:
            raise BadZip(f"too short for a zip archive ({size} bytes)")
        tail_start = max(0, size - _EOCD.size - _U16)
        tail = self.read_at(tail_start, size - tail_start)
        found = exact = None
        i = tail.rfind(_EOCD_SIG)
        while i >= 0:
            if i + _EOCD.size <= len(tail):
                found = i if found is None else found
                (comment,) = struct.unpack_from("<H", tail, i + 20)
                if i + _EOCD.size + comment == len(tail):
                    exact = i
                    break
            i = tail.rfind(_EOCD_SIG, 0, i)
        at = exact if exact is not None else found
        if at is None:
            raise BadZip("no end of central directory record (truncated, or not a zip archive)")
        eocd = tail_start + at
        _, disk, cd_disk, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
        cd_end = eocd  # where the central directory must end
        locator = self.read_at(eocd - _LOCATOR.size, _LOCATOR.size) if eocd >= 20 else b""
        if locator[:4] == _LOCATOR_SIG:
            _, disk64, record_offset, disks = _LOCATOR.unpack(locator)
            if disk64 != 0 or disks > 1:
                raise BadZip("spans several disks (split archives are not supported)")
            # the record sits just before its locator, unless the archive has data in
            # front (then record_offset is short by that much) or extensible data
            for pos in (eocd - _LOCATOR.size - _EOCD64.size, record_offset):
                record = self.read_at(pos, _EOCD64.size) if pos >= 0 else b""
                if record[:4] == _EOCD64_SIG and len(record) == _EOCD64.size:
                    break
            else:
                raise BadZip("the ZIP64 end of central directory record is missing")
            _, _, _, _, disk, cd_disk, _, count, cd_size, cd_offset = _EOCD64.unpack(record)
            cd_end = pos
        if disk != 0 or cd_disk != 0:
            raise BadZip("spans several disks (split archives are not supported)")
        # data in front of the archive (a self-extractor) shifts every offset by this
        self._shift = cd_end - cd_size - cd_offset
        if self._shift < 0:
            raise BadZip(
                f"the central directory ({cd_size} bytes at offset {cd_offset}) does not fit"
                f" before its end record at offset {cd_end} (truncated or corrupt)"
            )
        self.count = count  # as declared by the end record
        self.cd_start = cd_offset + self._shift
        self.cd_size = cd_size

    # ----------------------------------------------------------------- central directory

    def entries(self) -> Iterator[Entry]:
        """The central directory entries in order, read in blocks of :data:`CD_BLOCK`."""
        blocks = _Blocks(self, self.cd_start, self.cd_size)
        index = 0
        while blocks.left:
            at = blocks.position
            fixed = blocks.take(_CENTRAL.size, index)
            (sig, _, made_system, extract_version, _, flags, method, dos_time,
             dos_date, crc, csize, size, name_len, extra_len, comment_len, _, _, external,
             offset) = _CENTRAL.unpack(fixed)  # fmt: skip
            if sig != _CENTRAL_SIG:
                raise BadZip(f"central directory entry {index} at offset {at} is corrupt")
            name = blocks.take(name_len, index)
            extra = blocks.take(extra_len, index)
            blocks.take(comment_len, index)
            if _U32 in (size, csize, offset):
                size, csize, offset = _zip64_extra(extra, size, csize, offset, index)
            yield Entry(
                index=index,
                raw_name=name,
                flags=flags,
                method=method,
                crc=crc,
                compressed_size=csize,
                size=size,
                header_offset=offset + self._shift,
                create_system=made_system,
                extract_version=extract_version,
                external_attr=external,
                dos_time=dos_time,
                dos_date=dos_date,
                extra=extra,
            )
            index += 1

    # ----------------------------------------------------------------- members

    def open(self, entry: Entry) -> Member:
        """A reader of ``entry``'s data, decompressed and verified."""
        if entry.encrypted:
            raise BadZip("is encrypted")
        if entry.flags & FLAG_PATCHED:
            raise BadZip("uses compressed patched data (flag bit 5), which is not supported")
        if entry.method not in METHODS:
            raise BadZip(f"uses compression method {entry.method}, which is not supported")
        if entry.extract_version > MAX_EXTRACT_VERSION:
            raise BadZip(f"needs zip version {entry.extract_version / 10:.1f} to extract")
        at = entry.header_offset
        head = self.read_at(at, _LOCAL.size + len(entry.raw_name))
        if len(head) < _LOCAL.size or head[:4] != _LOCAL_SIG:
            raise BadZip(f"has no local header at offset {at} (truncated or corrupt)")
        _, _, _, flags, _, _, _, _, _, _, name_len, extra_len = _LOCAL.unpack_from(head)
        if head[_LOCAL.size : _LOCAL.size + name_len] != entry.raw_name:
            raise BadZip(f"the local header at offset {at} gives another name")
        if flags & FLAG_ENCRYPTED:
            raise BadZip(f"the local header at offset {at} says encrypted")
        start = at + _LOCAL.size + name_len + extra_len
        end = start + entry.compressed_size
        if end > self.cd_start:
            raise BadZip(
                f"its {entry.compressed_size} bytes of data at offset {start} run past the"
                f" start of the central directory at {self.cd_start}"
            )
        if self._last is not None and self._last[0] <= at < self._last[1]:
            raise BadZip(f"its local header at offset {at} lies inside the member before it")
        self._last = (at, end)
        return Member(self, entry, start)


class _Blocks:
    """Sequential reads of a region of the file, a block at a time."""

    def __init__(self, reader: ZipReader, start: int, size: int) -> None:
        self._reader = reader
        self._next = start  # file position of the first byte not yet buffered
        self._end = start + size
        self._buf = b""
        self._at = 0

    @property
    def left(self) -> int:
        return self._end - self._next + len(self._buf) - self._at

    @property
    def position(self) -> int:
        return self._next - len(self._buf) + self._at

    def take(self, n: int, index: int) -> bytes:
        have = len(self._buf) - self._at
        if have < n:
            need = n - have
            if need > self._end - self._next:
                raise BadZip(f"central directory entry {index} runs past the directory's end")
            want = max(need, min(CD_BLOCK, self._end - self._next))
            block = self._reader.read_at(self._next, want)
            if len(block) < need:
                raise BadZip(f"the central directory is truncated at entry {index}")
            self._next += len(block)
            self._buf = self._buf[self._at :] + block
            self._at = 0
        out = self._buf[self._at : self._at + n]
        self._at += n
        return out


def _zip64_extra(extra: bytes, size: int, csize: int, offset: int, index: int) -> tuple[int, ...]:
    """Sizes and offset from the ZIP64 extra field (0x0001), for those given as 0xFFFFFFFF."""
    i = 0
    while i + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, i)
        if i + 4 + length > len(extra):
            raise BadZip(f"central directory entry {index}: corrupt extra field {kind:04x}")
        if kind == 0x0001:
            j = i + 4
            values = []
            for value in (size, csize, offset):
                if value == _U32:
                    if j + 8 > i + 4 + length:
                        raise BadZip(f"central directory entry {index}: short ZIP64 extra field")
                    (value,) = struct.unpack_from("<Q", extra, j)
                    j += 8
                values.append(value)
            return tuple(values)
        i += 4 + length
    return size, csize, offset


# --------------------------------------------------------------------------- decompression


class _Inflater(Protocol):
    @property
    def needs_input(self) -> bool: ...

    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int) -> bytes: ...


class _Stored:
    eof = False

    def __init__(self) -> None:
        self._tail = b""

    @property
    def needs_input(self) -> bool:
        return not self._tail

    def decompress(self, data: bytes, max_length: int) -> bytes:
        buf = self._tail + data if self._tail else data
        self._tail = buf[max_length:]
        return buf[:max_length]


class _Deflate:
    def __init__(self) -> None:
        self._d = zlib.decompressobj(-zlib.MAX_WBITS)

    @property
    def needs_input(self) -> bool:
        return not self._d.unconsumed_tail

    @property
    def eof(self) -> bool:
        return self._d.eof

    def decompress(self, data: bytes, max_length: int) -> bytes:
        tail = self._d.unconsumed_tail
        return self._d.decompress(tail + data if tail else data, max_length)


class _Lzma:
    """Zip's LZMA: a 4-byte header (version, properties size), the LZMA1 properties,
    then raw LZMA1 data."""

    def __init__(self) -> None:
        self._head = b""
        self._d: lzma.LZMADecompressor | None = None

    @property
    def needs_input(self) -> bool:
        return self._d is None or self._d.needs_input

    @property
    def eof(self) -> bool:
        return self._d is not None and self._d.eof

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._d is None:
            self._head += data
            if len(self._head) < 4:
                return b""
            (size,) = struct.unpack_from("<H", self._head, 2)
            if len(self._head) < 4 + size:
                return b""
            props, data = self._head[4 : 4 + size], self._head[4 + size :]
            if size != 5 or props[0] >= 9 * 5 * 5:
                raise BadZip("has invalid LZMA properties")
            lc, rest = props[0] % 9, props[0] // 9
            (dict_size,) = struct.unpack_from("<I", props, 1)
            lzma1 = {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc,
                     "lp": rest % 5, "pb": rest // 5}  # fmt: skip
            self._d = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[lzma1])
            self._head = b""
        return self._d.decompress(data, max_length)


def _inflater(method: int) -> _Inflater:
    if method == STORED:
        return _Stored()
    if method == DEFLATED:
        return _Deflate()
    if method == BZIP2:
        return bz2.BZ2Decompressor()
    return _Lzma()


class Member:
    """The data of one member, decompressed block by block.

    :meth:`read` never returns more than the declared size in total; the read that
    produces the last declared byte first checks the CRC-32 and that the member holds
    nothing more, and raises :class:`BadZip` if not. Data that ends before the
    declared size raises :class:`BadZip` too.
    """

    def __init__(self, reader: ZipReader, entry: Entry, start: int) -> None:
        self.entry = entry
        self._reader = reader
        self._pos = start
        self._left_in = entry.compressed_size
        self._left_out = entry.size
        self._crc = 0
        self._inflater = _inflater(entry.method)
        self._checked = False

    def __enter__(self) -> Member:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._left_out = 0
        self._checked = True

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all that is left when negative); b"" at the end."""
        if size < 0:
            return b"".join(iter(lambda: self.read(BLOCK_SIZE), b""))
        if self._left_out == 0:
            self._check_end()
            return b""
        want = min(size, self._left_out)
        if want == 0:
            return b""
        block = self._produce(want)
        if not block:
            done = self.entry.size - self._left_out
            raise BadZip(
                f"its data ends after {done} of its declared {self.entry.size} bytes"
                " (truncated or corrupt)"
            )
        self._crc = zlib.crc32(block, self._crc)
        self._left_out -= len(block)
        if self._left_out == 0:
            self._check_end()
        return block

    def _check_end(self) -> None:
        if self._checked:
            return
        self._checked = True
        if self._crc != self.entry.crc:
            raise BadZip(
                f"bad CRC-32: {self._crc:08x} computed, {self.entry.crc:08x} declared"
                " (corrupt data)"
            )
        if self._produce(1):
            raise BadZip(f"holds more data than its declared size of {self.entry.size} bytes")

    def _produce(self, want: int) -> bytes:
        """Up to ``want`` decompressed bytes; b"" once the data is exhausted."""
        inflater = self._inflater
        idle = 0
        while not inflater.eof:
            data = b""
            if inflater.needs_input:
                if self._left_in == 0:
                    return b""
                n = min(BLOCK_SIZE, self._left_in)
                data = self._reader.read_at(self._pos, n)
                if len(data) < n:
                    raise BadZip(f"its data at offset {self._pos} is cut short (truncated)")
                self._pos += n
                self._left_in -= n
            try:
                block = inflater.decompress(data, want)
            except _DECOMPRESS_ERRORS as e:
                raise BadZip(f"its {METHODS[self.entry.method]} data is corrupt ({e})") from e
            if block:
                return block
            idle = 0 if data else idle + 1
            if idle > 3:
                raise BadZip("its compressed data makes no progress (corrupt)")
        return b""
