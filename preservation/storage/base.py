"""The one small interface every store implements.

Contract (checked by ``tests/storage/test_contract.py`` against every backend):

- ``put(key, stream, digests=..., size=...)`` reads ``stream`` once, in blocks, and
  computes every algorithm of ``algorithms`` on the way. When ``digests`` gives an
  expected value for an algorithm, the backend verifies end to end and on mismatch
  raises DigestMismatch (FIX001) and leaves no object behind. Returns the stored
  object's ObjectInfo with the computed digests. An existing key is overwritten only
  with ``overwrite=True``; otherwise ObjectExists (STO002).
- ``open(key)`` is a context manager yielding a readable binary stream (streamed,
  never slurped). A missing key raises ObjectNotFound (STO001).
- ``head(key)`` gives size and any checksum the store keeps; ObjectNotFound if absent.
- ``list(prefix)`` yields ObjectInfo lazily, page by page (sorted by key where the
  backend lists that way; SeaweedFS lists folder by folder).
- ``delete(key)`` removes one object; deleting a missing key raises ObjectNotFound.
- ``move(src, dst)`` renames one object (atomic on local stores; copy + delete on S3).
- ``move_prefix(src, dst)`` moves every object under one prefix to another; on a
  local store, when ``dst`` is new, one atomic rename of a folder.
- ``put(..., sync=False)`` may defer durability: the object is complete and verified
  but may sit in the operating system's cache until ``sync()`` is called. Callers that
  write many objects (ingest staging) put without sync and call ``sync()`` once before
  anything depends on the objects. Stores whose writes are durable when acknowledged
  (S3) ignore the flag.
- ``capabilities()`` reports versioning, object lock, storage class, encryption.
- ``probe()`` writes, reads back and deletes a probe object: the ``stores check``.

Keys are validated by :func:`preservation.paths.validate_key` before anything is
touched: no ``..``, no absolute paths, no backslashes, NFC only.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import IO, Any

DEFAULT_ALGORITHMS: tuple[str, ...] = ("sha256",)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    digests: Mapping[str, str] = field(default_factory=dict)
    last_modified: datetime | None = None
    storage_class: str | None = None
    version_id: str | None = None

    @property
    def sha256(self) -> str | None:
        return self.digests.get("sha256")


@dataclass(frozen=True)
class Capabilities:
    kind: str
    versioning: bool | None = None
    object_lock: bool | None = None
    object_lock_mode: str | None = None
    object_lock_days: int | None = None
    storage_class: str | None = None
    encryption: str | None = None
    server_side_checksum: bool = False
    free_bytes: int | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProbeResult:
    store: str
    reachable: bool
    writable: bool
    capabilities: Capabilities | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reachable and self.writable and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "ok": self.ok,
            "reachable": self.reachable,
            "writable": self.writable,
            "capabilities": self.capabilities.to_dict() if self.capabilities else None,
            "problems": list(self.problems),
        }


class Store(abc.ABC):
    """A place that keeps objects under keys."""

    name: str
    site: str

    @abc.abstractmethod
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
    ) -> ObjectInfo: ...

    @abc.abstractmethod
    def open(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo: ...

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    @abc.abstractmethod
    def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def move(self, src: str, dst: str) -> ObjectInfo: ...

    @abc.abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abc.abstractmethod
    def probe(self) -> ProbeResult: ...

    def sync(self) -> None:
        """Make every object written with ``sync=False`` durable (default: nothing to do)."""
        return None

    def move_prefix(self, src: str, dst: str) -> int:
        """Move every object under prefix ``src`` to prefix ``dst``; returns how many.

        Both prefixes end with '/'. The default moves object by object.
        """
        n = 0
        for info in list(self.list(src)):
            self.move(info.key, dst + info.key.removeprefix(src))
            n += 1
        return n

    def exists(self, key: str) -> bool:
        from preservation.errors import ObjectNotFound

        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""
        n = 0
        for info in list(self.list(prefix)):
            self.delete(info.key)
            n += 1
        return n
