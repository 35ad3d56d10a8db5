"""Streams made on the fly for storage tests: no data on disk, any size."""

from __future__ import annotations

import hashlib
import io
import random
from typing import IO, Any, cast

BLOCK = 1024 * 1024


class PatternStream(io.RawIOBase):
    """``size`` bytes of a deterministic pattern (each 1 MiB block numbered), generated
    as they are read; optionally raises ``error`` once ``fail_at`` bytes were served."""

    def __init__(
        self,
        size: int,
        seed: int = 0,
        fail_at: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        super().__init__()
        self.size = size
        self.pos = 0
        self.fail_at = fail_at
        self.error = error or RuntimeError("source stream broke")
        self._base = random.Random(seed).randbytes(BLOCK)
        self._index = -1
        self._block = memoryview(b"")

    def readable(self) -> bool:
        return True

    def _block_at(self, index: int) -> memoryview:
        if index != self._index:
            self._index = index
            self._block = memoryview(index.to_bytes(8, "big") + self._base[8:])
        return self._block

    def readinto(self, b: Any) -> int:
        if self.fail_at is not None and self.pos >= self.fail_at:
            raise self.error
        view = memoryview(b).cast("B")
        want = min(len(view), self.size - self.pos)
        if self.fail_at is not None:
            want = min(want, self.fail_at - self.pos)
        done = 0
        while done < want:
            index, offset = divmod(self.pos, BLOCK)
            n = min(BLOCK - offset, want - done)
            view[done : done + n] = self._block_at(index)[offset : offset + n]
            done += n
            self.pos += n
        return done


def pattern(
    size: int, seed: int = 0, fail_at: int | None = None, error: BaseException | None = None
) -> IO[bytes]:
    """A :class:`PatternStream`, typed as the binary stream ``Store.put`` takes."""
    return cast(IO[bytes], PatternStream(size, seed, fail_at, error))


def pattern_sha256(size: int, seed: int = 0) -> str:
    h = hashlib.sha256()
    stream = PatternStream(size, seed)
    buf = bytearray(BLOCK)
    while n := stream.readinto(buf):
        h.update(memoryview(buf)[:n])
    return h.hexdigest()
