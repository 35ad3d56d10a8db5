"""Write a bag's tag files incrementally, for a local folder or for a store.

The caller gives payload entries one at a time (path, size, digests: computed while
the payload was copied, never re-read here); each becomes one line appended to every
open ``manifest-<alg>.txt`` in a local scratch folder, so memory does not grow with
the number of files (only a 16-byte fingerprint per path is kept, to refuse
duplicates). Manifests are therefore in the order entries were added, not sorted;
:func:`make_bag_in_place` adds files depth first, names sorted.

:meth:`BagWriter.finish` then writes ``bag-info.txt`` (caller labels in the order
given, then Bagging-Date, Bag-Software-Agent and Payload-Oxum), ``bagit.txt``
(BagIt 1.0, UTF-8) and ``tagmanifest-<alg>.txt`` over every tag file, and returns the
tag files as :class:`TagFile` (bag-relative path, local file, size, digests). Every
tag file the writer produces is digested while it is written; nothing is read back.

- Local bag: make the bag root the scratch folder, with the payload already in
  ``data/``; the tag files land in place.
- Store: use a temporary scratch folder, upload the payload as usual, then upload the
  returned tag files in the order given (``bagit.txt`` last, so a reader never sees a
  declared bag whose tag files are still missing).

Payload that lives in an earlier AIP version is added with ``fetch_url``: it is
listed in the manifests and in ``fetch.txt`` and counted in Payload-Oxum.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType

from preservation import AGENT_NAME, __version__
from preservation.bags.manifest import (
    DIGEST_LENGTHS,
    FETCH_TXT,
    MANIFEST_RE,
    PAYLOAD_DIR,
    TAGMANIFEST_RE,
    format_fetch_line,
    format_manifest_line,
)
from preservation.bags.tagfiles import (
    BAG_INFO_TXT,
    BAGIT_TXT,
    BagInfoInput,
    format_bag_info,
    format_bagit_txt,
    info_pairs,
)
from preservation.errors import UnsafePath, UsageError
from preservation.hashing import (
    PREFERRED,
    MultiHasher,
    check_algorithms,
    hash_file,
)
from preservation.paths import path_problem

__all__ = ["BagWriter", "TagFile", "make_bag_in_place"]

COMPUTED_LABELS = ("Payload-Oxum",)
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class TagFile:
    """A tag file of a finished bag: where it goes and where its bytes are now."""

    path: str  # relative to the bag root, e.g. 'manifest-sha256.txt', 'metadata/mets.xml'
    local: Path
    size: int
    digests: dict[str, str]


class _LineFile:
    """A new UTF-8 file written line by line, digested as it is written."""

    def __init__(self, local: Path, algorithms: Sequence[str]) -> None:
        self.local = local
        self._f = local.open("xb")  # never overwrite
        self._hasher = MultiHasher(algorithms)

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self._f.write(data)
        self._hasher.update(data)

    def close(self) -> tuple[int, dict[str, str]]:
        self._f.close()
        return self._hasher.size, self._hasher.hexdigests()

    def discard(self) -> None:
        if not self._f.closed:
            self._f.close()
        self.local.unlink(missing_ok=True)


def _check_digests(path: str, digests: Mapping[str, str], algorithms: Sequence[str]) -> None:
    for alg in algorithms:
        value = digests.get(alg)
        if value is None:
            raise UsageError(f"{path}: no {alg} digest given")
        if len(value) != DIGEST_LENGTHS[alg] or not _HEX.fullmatch(value.lower()):
            raise UsageError(f"{path}: {value!r} is not a {alg} hex digest")


def _is_reserved(path: str) -> bool:
    return (
        path in (BAGIT_TXT, BAG_INFO_TXT, FETCH_TXT)
        or bool(MANIFEST_RE.fullmatch(path))
        or bool(TAGMANIFEST_RE.fullmatch(path))
    )


class BagWriter:
    """Write the tag files of one BagIt 1.0 bag into ``scratch`` (see the module doc).

    Use as a context manager: leaving the block with an exception, or without having
    called :meth:`finish`, removes the files the writer created.
    """

    def __init__(
        self,
        scratch: Path,
        *,
        algorithms: Sequence[str] = PREFERRED,
        tag_algorithms: Sequence[str] | None = None,
        info: BagInfoInput = (),
    ) -> None:
        self.scratch = Path(scratch)
        self.algorithms = check_algorithms(algorithms)
        self.tag_algorithms = check_algorithms(
            self.algorithms if tag_algorithms is None else tag_algorithms
        )
        self._info = info_pairs(info)
        for label, _ in self._info:
            if label.casefold() in (c.casefold() for c in COMPUTED_LABELS):
                raise UsageError(f"bag-info label {label} is computed by the writer")
        self.scratch.mkdir(parents=True, exist_ok=True)
        existing = [p.name for p in self.scratch.iterdir() if _is_reserved(p.name)]
        if existing:
            raise UsageError(f"{self.scratch} already holds {', '.join(sorted(existing))}")
        self.files = 0
        self.octets = 0
        self._seen: set[bytes] = set()
        self._tag_files: dict[str, TagFile] = {}
        self._written: list[_LineFile] = []
        self._fetch: _LineFile | None = None
        self._finished = False
        self._manifests = {a: self._open(f"manifest-{a}.txt") for a in self.algorithms}

    # ----------------------------------------------------------------- adding

    def _open(self, name: str) -> _LineFile:
        f = _LineFile(self.scratch / name, self.tag_algorithms)
        self._written.append(f)
        return f

    def _check_open(self) -> None:
        if self._finished:
            raise UsageError("the bag writer is finished")

    def add_payload(
        self,
        payload_path: str,
        size: int,
        digests: Mapping[str, str],
        *,
        fetch_url: str | None = None,
    ) -> None:
        """List one payload file; ``payload_path`` is relative to ``data/``.

        With ``fetch_url`` the file is also listed in ``fetch.txt`` (it is not in this
        bag's payload folder but fetched from there).
        """
        self._check_open()
        problem = path_problem(payload_path)
        if problem:
            raise UnsafePath(path=payload_path, reason=problem)
        if size < 0:
            raise UsageError(f"{payload_path}: negative size {size}")
        _check_digests(payload_path, digests, self.algorithms)
        bag_path = f"{PAYLOAD_DIR}/{payload_path}"
        fetch_line = None
        if fetch_url is not None:
            try:
                fetch_line = format_fetch_line(fetch_url, size, bag_path)
            except ValueError as e:
                raise UsageError(f"{payload_path}: {e}") from e
        mark = hashlib.blake2b(payload_path.encode("utf-8", "surrogateescape"), digest_size=16)
        if mark.digest() in self._seen:
            raise UsageError(f"{payload_path} is already in the bag")
        self._seen.add(mark.digest())
        for alg, manifest in self._manifests.items():
            manifest.write(format_manifest_line(digests[alg], bag_path))
        if fetch_line is not None:
            if self._fetch is None:
                self._fetch = self._open(FETCH_TXT)
            self._fetch.write(fetch_line)
        self.files += 1
        self.octets += size

    def add_tag_file(self, path: str, local: Path) -> TagFile:
        """List a tag file of the caller's (e.g. ``metadata/mets.xml``) read from ``local``.

        The file is digested now; it must not change afterwards.
        """
        self._check_open()
        problem = path_problem(path)
        if problem:
            raise UnsafePath(path=path, reason=problem)
        if path.split("/", 1)[0] == PAYLOAD_DIR or _is_reserved(path):
            raise UsageError(f"{path} cannot be a caller tag file (payload or written here)")
        if path in self._tag_files:
            raise UsageError(f"tag file {path} is already in the bag")
        digests, size = hash_file(Path(local), self.tag_algorithms)
        tag = TagFile(path, Path(local), size, digests)
        self._tag_files[path] = tag
        return tag

    @property
    def payload_oxum(self) -> str:
        return f"{self.octets}.{self.files}"

    # ----------------------------------------------------------------- finishing

    def _write_file(self, name: str, lines: Iterator[str] | Sequence[str]) -> TagFile:
        f = self._open(name)
        for line in lines:
            f.write(line)
        size, digests = f.close()
        return TagFile(name, f.local, size, digests)

    def finish(self, *, bagging_date: date | None = None) -> list[TagFile]:
        """Write the remaining tag files; returns every tag file in upload order."""
        self._check_open()
        self._finished = True
        done: list[TagFile] = []
        for alg in self.algorithms:
            f = self._manifests[alg]
            size, digests = f.close()
            done.append(TagFile(f"manifest-{alg}.txt", f.local, size, digests))
        if self._fetch is not None:
            size, digests = self._fetch.close()
            done.append(TagFile(FETCH_TXT, self._fetch.local, size, digests))
        done.extend(self._tag_files.values())
        labels = {label.casefold() for label, _ in self._info}
        info = list(self._info)
        if "bagging-date" not in labels:
            day = bagging_date or datetime.now(UTC).date()
            info.append(("Bagging-Date", day.isoformat()))
        if "bag-software-agent" not in labels:
            info.append(("Bag-Software-Agent", f"{AGENT_NAME} {__version__}"))
        info.append(("Payload-Oxum", self.payload_oxum))
        done.append(self._write_file(BAG_INFO_TXT, format_bag_info(info)))
        bagit = self._write_file(BAGIT_TXT, [format_bagit_txt()])
        listed = sorted([*done, bagit], key=lambda t: t.path)
        for alg in self.tag_algorithms:
            lines = [format_manifest_line(t.digests[alg], t.path) for t in listed]
            done.append(self._write_file(f"tagmanifest-{alg}.txt", lines))
        done.append(bagit)
        return done

    def abort(self) -> None:
        """Remove every file the writer created (caller tag files are left alone)."""
        self._finished = True
        for f in self._written:
            f.discard()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None or not self._finished:
            self.abort()


def _payload_files(data: Path) -> Iterator[tuple[str, Path]]:
    """(path relative to ``data``, file) for every regular file, depth first by name."""

    def children(folder: Path) -> Iterator[Path]:
        return iter(sorted(folder.iterdir(), key=lambda p: p.name))

    stack = [("", children(data))]
    while stack:
        rel, pending = stack[-1]
        child = next(pending, None)
        if child is None:
            stack.pop()
        elif child.is_symlink():
            raise UsageError(f"{child}: symbolic links cannot be bagged")
        elif child.is_dir():
            stack.append((f"{rel}{child.name}/", children(child)))
        elif child.is_file():
            yield f"{rel}{child.name}", child
        else:
            raise UsageError(f"{child}: not a regular file")


def make_bag_in_place(
    folder: Path,
    algorithms: Sequence[str] = PREFERRED,
    info: BagInfoInput = (),
) -> list[TagFile]:
    """Turn ``folder`` into a BagIt 1.0 bag: its content moves into ``data/``.

    Files are digested once each (all algorithms in one read) and listed depth first,
    names sorted. Meant for tests, benchmarks and small tools; ingest uses BagWriter directly.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a directory")
    if (folder / BAGIT_TXT).exists():
        raise UsageError(f"{folder} is already a bag")
    for _ in _payload_files(folder):  # refuse links and special files before moving
        pass
    algs = check_algorithms(algorithms)
    staging = folder / f".bag-payload-{uuid.uuid4().hex}"
    staging.mkdir()
    for child in sorted(folder.iterdir()):
        if child != staging:
            child.rename(staging / child.name)
    data = folder / PAYLOAD_DIR
    staging.rename(data)
    with BagWriter(folder, algorithms=algs, info=info) as writer:
        for rel, file in _payload_files(data):
            digests, size = hash_file(file, algs)
            writer.add_payload(rel, size, digests)
        return writer.finish()
