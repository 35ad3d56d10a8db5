"""One read pass, many digests.

Everything that reads content for fixity goes through here: files of any size are read
in fixed-size blocks and every requested algorithm is fed from the same block, so memory
does not grow with file size and no byte is read twice.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from preservation.errors import DigestMismatch, UsageError

BLOCK_SIZE = 1024 * 1024
SUPPORTED = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
# Algorithms we write into new AIPs; md5/sha1 are accepted only for reading old bags.
PREFERRED = ("sha256", "sha512")


def check_algorithms(algorithms: Iterable[str]) -> tuple[str, ...]:
    algs = tuple(dict.fromkeys(a.lower() for a in algorithms))
    bad = [a for a in algs if a not in SUPPORTED]
    if bad:
        raise UsageError(f"unsupported digest algorithm(s): {', '.join(bad)}")
    if not algs:
        raise UsageError("at least one digest algorithm is required")
    return algs


class MultiHasher:
    """Feeds every block to every hasher; counts bytes too."""

    def __init__(self, algorithms: Iterable[str]) -> None:
        self.algorithms = check_algorithms(algorithms)
        self._hashers = {a: hashlib.new(a) for a in self.algorithms}
        self.size = 0

    def update(self, block: bytes | bytearray | memoryview) -> None:
        self.size += len(block)
        for h in self._hashers.values():
            h.update(block)

    def hexdigests(self) -> dict[str, str]:
        return {a: h.hexdigest() for a, h in self._hashers.items()}


def hash_stream(
    stream: IO[bytes], algorithms: Iterable[str], block_size: int = BLOCK_SIZE
) -> tuple[dict[str, str], int]:
    """Digest a binary stream in blocks; returns ``(digests, size)``."""
    mh = MultiHasher(algorithms)
    buf = bytearray(block_size)
    view = memoryview(buf)
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        while True:
            n = readinto(view)
            if not n:
                break
            mh.update(view[:n])
    else:
        while True:
            block = stream.read(block_size)
            if not block:
                break
            mh.update(block)
    return mh.hexdigests(), mh.size


def hash_file(
    path: Path, algorithms: Iterable[str], block_size: int = BLOCK_SIZE
) -> tuple[dict[str, str], int]:
    with path.open("rb", buffering=0) as f:
        # A small file needs no 1 MiB buffer: allocating one per file dominates the
        # cost of hashing many small files.
        size = os.fstat(f.fileno()).st_size
        return hash_stream(f, algorithms, max(4096, min(block_size, size + 1)))


class HashingReader:
    """A read-only file object that hashes what passes through it.

    Wrap a source stream with it and hand it to a store's ``put``: the copy and the
    digests come from the same single read.
    """

    def __init__(self, raw: IO[bytes], algorithms: Iterable[str]) -> None:
        self._raw = raw
        self.hasher = MultiHasher(algorithms)

    def read(self, n: int = -1) -> bytes:
        block = self._raw.read(n)
        if block:
            self.hasher.update(block)
        return block

    def readinto(self, b: Any) -> int:
        block = self._raw.read(len(b))
        n = len(block)
        b[:n] = block
        if n:
            self.hasher.update(block)
        return n

    def readable(self) -> bool:
        return True

    def hexdigests(self) -> dict[str, str]:
        return self.hasher.hexdigests()

    @property
    def size(self) -> int:
        return self.hasher.size


def verify_digests(label: str, expected: Mapping[str, str], actual: Mapping[str, str]) -> None:
    """Raise DigestMismatch for the first algorithm (in ``expected`` order) that differs."""
    for alg, exp in expected.items():
        got = actual.get(alg)
        if got is not None and got.lower() != exp.lower():
            raise DigestMismatch(path=label, algorithm=alg, expected=exp.lower(), found=got)
