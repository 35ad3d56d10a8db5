"""The bag's own manifests of a copy, read from the store being audited.

A full audit compares each file's digest with the catalogue *and* with the bag's
``manifest-<alg>.txt`` (payload) or ``tagmanifest-<alg>.txt`` (tag files) of the same
copy. Each manifest object is read once: its lines are parsed and the object itself
is digested in the same pass and judged like any file (so reading a manifest is a
fixity check of that manifest, with a result of its own). A manifest that fails its
own check is not used: the files it lists are then compared with the catalogue only,
and the failure is reported on the manifest.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from preservation.audit.fixity import (
    CheckResult,
    FileTask,
    Mode,
    check_content,
    hash_object,
    judge,
    worker_label,
)
from preservation.bags.manifest import decode_path
from preservation.errors import ObjectNotFound, PreservationError
from preservation.model import utcnow
from preservation.storage.base import Store

MANIFEST_RE = re.compile(r"(tag)?manifest-([a-z0-9]+)\.txt")
_LINE = re.compile(r"(\S+)[ \t]+(.+)")


def manifest_kind(path: str) -> tuple[str, str] | None:
    """``("payload"|"tag", algorithm)`` for a manifest's bag path, else None."""
    m = MANIFEST_RE.fullmatch(path)
    if m is None:
        return None
    return ("tag" if m.group(1) else "payload", m.group(2))


def manifest_algorithms(paths: Iterable[str]) -> tuple[str, ...]:
    """The algorithms of the payload manifests among ``paths``, sorted."""
    found = {k[1] for p in paths if (k := manifest_kind(p)) is not None and k[0] == "payload"}
    return tuple(sorted(found))


@dataclass
class BagManifests:
    """Manifest digests of one copy: ``digests[algorithm][bag path]``."""

    digests: dict[str, dict[str, str]] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)  # the manifests' own checks
    unusable: list[str] = field(default_factory=list)
    complete: bool = True  # every entry kept (not filtered to some paths)

    def for_path(self, path: str, algorithms: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for alg in algorithms:
            d = self.digests.get(alg, {}).get(path)
            if d is not None:
                out[alg] = d
        return out


class _Lines:
    """Splits a byte stream into manifest entries, keeping those ``keep`` accepts."""

    def __init__(self, keep: Callable[[str], bool]) -> None:
        self._rest = b""
        self._keep = keep
        self.entries: dict[str, str] = {}
        self.bad_lines = 0

    def feed(self, block: memoryview) -> None:
        data = self._rest + bytes(block)
        *lines, self._rest = data.split(b"\n")
        for line in lines:
            self._line(line)

    def close(self) -> None:
        if self._rest:
            self._line(self._rest)
            self._rest = b""

    def _line(self, raw: bytes) -> None:
        try:
            text = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            self.bad_lines += 1
            return
        if not text.strip():
            return
        m = _LINE.fullmatch(text.lstrip("\ufeff"))
        if m is None:
            self.bad_lines += 1
            return
        path = decode_path(m.group(2))
        if self._keep(path):
            self.entries[path] = m.group(1).lower()


def read_manifests(
    store: Store,
    manifests: Sequence[FileTask],
    algorithms: Sequence[str],
    mode: Mode,
    wanted: set[str] | None = None,
) -> BagManifests:
    """Read the manifest objects of one copy for ``algorithms``.

    ``manifests`` are the tasks of the copy's manifest files (their ``expected``
    holds the catalogue's digests). ``wanted`` keeps only the entries of those paths
    (bounded memory for huge bags); None keeps all.
    """
    out = BagManifests(complete=wanted is None)
    for task in manifests:
        kind = manifest_kind(task.path)
        if kind is None or kind[1] not in algorithms:
            continue
        alg = kind[1]
        lines = _Lines((lambda p: True) if wanted is None else wanted.__contains__)
        started = utcnow()
        t0 = time.perf_counter()
        try:
            digests, size = hash_object(
                store, task.key, tuple(task.expected), task.size, sink=lines.feed
            )
        except (ObjectNotFound, PreservationError, OSError):
            # The same read again, as an ordinary check, gives the finding its code.
            result = check_content(store, task, tuple(task.expected), mode)
            out.checks.append(result)
            out.unusable.append(f"{task.path}: {result.outcome} ({result.detail})")
            continue
        lines.close()
        outcome, detail, checks = judge(task, digests, size)
        if outcome == "pass" and lines.bad_lines:
            outcome, detail = "mismatch", f"{lines.bad_lines} unreadable line(s)"
        out.checks.append(
            CheckResult(
                task,
                mode,
                outcome,
                detail,
                size,
                checks,
                started,
                time.perf_counter() - t0,
                worker_label(),
            )
        )
        if outcome != "pass":
            out.unusable.append(f"{task.path}: {outcome} ({detail})")
            continue
        out.digests.setdefault(alg, {}).update(lines.entries)
    return out


class ManifestCache:
    """Manifests of the copies a run touches: small ones kept whole (a few copies,
    least recently used dropped first); big ones read again, filtered, per batch."""

    def __init__(self, max_copies: int = 4, max_entries: int = 200_000) -> None:
        self.max_copies = max_copies
        self.max_entries = max_entries
        self._kept: OrderedDict[int, BagManifests] = OrderedDict()

    def get(
        self,
        copy_id: int,
        file_count: int,
        load: Callable[[set[str] | None], BagManifests],
        wanted: set[str],
    ) -> tuple[BagManifests, bool]:
        """The manifests of a copy and whether they were read just now."""
        if copy_id in self._kept:
            self._kept.move_to_end(copy_id)
            return self._kept[copy_id], False
        if file_count > self.max_entries:
            return load(wanted), True
        found = load(None)
        self._kept[copy_id] = found
        while len(self._kept) > self.max_copies:
            self._kept.popitem(last=False)
        return found, True
