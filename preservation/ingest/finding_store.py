"""A finding store whose memory does not grow with the number of findings.

An ingest of many files produces findings per file (an unidentified format, a file
that could not be opened): a million files, millions of findings. :class:`FindingStore`
keeps a bounded buffer in memory; when it is full the buffer is sorted and written to
disk as one *run* per check code (pickled findings). Reading merges the runs of each
code, and the codes in (cost, code) order, so that iterating gives the findings sorted
exactly as :func:`~preservation.ingest.findings.sort_findings` sorts them (cheapest
check first, then code, file and row; equal keys keep their order of arrival).

Counts per code and result are kept in memory, so summaries and the blocking decision
need no pass over the findings. A store that never fills its buffer never touches the
disk. Spilled runs live in a folder of their own, removed by :meth:`close` or, at the
latest, when the store is garbage collected or the interpreter exits.
"""

from __future__ import annotations

import heapq
import pickle
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from preservation.ingest.findings import CHECKS, Finding

BUFFER = 5000  # findings held in memory before a run is written to disk
MAX_RUNS = 32  # runs of one code merged into one beyond this (bounded open files)


def _key(f: Finding) -> tuple[str, int]:
    return (f.file or "", f.row or 0)


def _code_order(code: str) -> tuple[int, str]:
    return (CHECKS[code].cost, code)


class FindingStore:
    """Findings of one transfer, iterated sorted; memory bounded by ``buffer``.

    ``directory`` is where runs are spilled (created on the first spill); without it a
    temporary folder is made then. ``len(store)`` is the number of findings.
    """

    def __init__(
        self,
        findings: Iterable[Finding] = (),
        *,
        directory: Path | None = None,
        buffer: int = BUFFER,
    ) -> None:
        if buffer < 1:
            raise ValueError("buffer must hold at least one finding")
        self._directory = directory
        self._dir: Path | None = None
        self._cleanup: weakref.finalize[Any, Any] | None = None
        self._buffer_size = buffer
        self._buffer: list[Finding] = []
        # code -> [(file, offset, findings)] of its sorted runs, in order of writing
        self._runs: dict[str, list[tuple[Path, int, int]]] = {}
        self._files = 0
        self._counts: dict[str, dict[str, int]] = {}
        self._total = 0
        self.extend(findings)

    # ------------------------------------------------------------------ writing
    def append(self, f: Finding) -> None:
        CHECKS[f.code]  # an unknown code fails here, not when the report is written
        by_result = self._counts.setdefault(f.code, {})
        by_result[f.result] = by_result.get(f.result, 0) + 1
        self._total += 1
        self._buffer.append(f)
        if len(self._buffer) >= self._buffer_size:
            self._spill()

    def extend(self, findings: Iterable[Finding]) -> None:
        for f in findings:
            self.append(f)

    def _spill(self) -> None:
        folder = self._folder()
        by_code: dict[str, list[Finding]] = {}
        for f in self._buffer:
            by_code.setdefault(f.code, []).append(f)
        self._buffer = []
        for code, items in by_code.items():
            items.sort(key=_key)  # stable: equal keys keep their order of arrival
            runs = self._runs.setdefault(code, [])
            path = runs[-1][0] if runs else self._new_file(folder)
            runs.append(_write_run(path, items))
            if len(runs) > MAX_RUNS:
                merged = heapq.merge(*(_read_run(*run) for run in runs), key=_key)
                self._runs[code] = [_write_run(self._new_file(folder), merged)]
                for old in {run[0] for run in runs}:
                    old.unlink()

    def _new_file(self, folder: Path) -> Path:
        self._files += 1
        return folder / f"{self._files:06d}.runs"

    def _folder(self) -> Path:
        if self._dir is None:
            if self._directory is not None:
                self._directory.mkdir(parents=True, exist_ok=True)
                self._dir = self._directory
            else:
                self._dir = Path(tempfile.mkdtemp(prefix="findings-"))
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._dir, True)
        return self._dir

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return self._total

    def __bool__(self) -> bool:
        return self._total > 0

    def __iter__(self) -> Iterator[Finding]:
        """Every finding, cheapest check first, then code, file and row."""
        for code in self.codes():
            yield from self.of_code(code)

    def codes(self) -> list[str]:
        """The codes with findings, in report order (cost, code)."""
        return sorted(self._counts, key=_code_order)

    def of_code(self, code: str) -> Iterator[Finding]:
        """The findings of one check, sorted by file and row."""
        buffered = sorted((f for f in self._buffer if f.code == code), key=_key)
        runs = [_read_run(*run) for run in self._runs.get(code, [])]
        if not runs:
            yield from buffered
            return
        yield from heapq.merge(*runs, iter(buffered), key=_key)

    def count(self, code: str | None = None, result: str | None = None) -> int:
        """Findings of ``code`` (all codes when None) with ``result`` (any when None)."""
        total = 0
        for c, by_result in self._counts.items():
            if code is not None and c != code:
                continue
            total += sum(by_result.values()) if result is None else by_result.get(result, 0)
        return total

    def counts(self) -> dict[str, dict[str, int]]:
        """Findings per code and result (a copy)."""
        return {c: dict(r) for c, r in self._counts.items()}

    def blocking_codes(self, blocking_properties: Iterable[str]) -> list[str]:
        """Codes, in report order, with failures of a blocking property."""
        props = set(blocking_properties)
        return [
            c
            for c in self.codes()
            if CHECKS[c].property in props and self._counts[c].get("fail", 0)
        ]

    def count_blocking(self, blocking_properties: Iterable[str]) -> int:
        return sum(self._counts[c]["fail"] for c in self.blocking_codes(blocking_properties))

    def blocking(self, blocking_properties: Iterable[str]) -> Iterator[Finding]:
        """The failures that block ingest under the policy, sorted like the report."""
        for code in self.blocking_codes(blocking_properties):
            yield from (f for f in self.of_code(code) if f.result == "fail")

    # ------------------------------------------------------------------ life
    @property
    def spilled(self) -> bool:
        """Whether any finding was written to disk."""
        return bool(self._runs)

    def detach(self, parent: Path) -> None:
        """Move the spilled runs out of their folder (which its owner is about to
        remove) into a new temporary folder under ``parent``, removed with the store."""
        if self._dir is None:
            return
        new = Path(tempfile.mkdtemp(prefix="findings-", dir=parent))
        moved = {p.name: shutil.move(str(p), str(new / p.name)) for p in self._dir.iterdir()}
        self._runs = {
            code: [(Path(moved[path.name]), start, n) for path, start, n in runs]
            for code, runs in self._runs.items()
        }
        old = self._cleanup
        self._dir = new
        self._cleanup = weakref.finalize(self, shutil.rmtree, new, True)
        if old is not None:
            old.detach()

    def close(self) -> None:
        """Remove the spilled runs; the store is empty afterwards."""
        if self._cleanup is not None:
            self._cleanup()
        self._cleanup = None
        self._dir = None
        self._buffer = []
        self._runs = {}
        self._counts = {}
        self._total = 0


def _pack(f: Finding) -> tuple[Any, ...]:
    return (f.code, f.result, f.message, f.file, f.row, f.details or None)


def _write_run(path: Path, findings: Iterable[Finding]) -> tuple[Path, int, int]:
    """Append one sorted run to ``path``; returns where it is and its length."""
    n = 0
    with path.open("ab") as fh:
        start = fh.tell()
        pickler = pickle.Pickler(fh, protocol=pickle.HIGHEST_PROTOCOL)
        for f in findings:
            pickler.dump(_pack(f))
            pickler.clear_memo()
            n += 1
    return path, start, n


def _read_run(path: Path, start: int, count: int) -> Iterator[Finding]:
    with path.open("rb") as fh:
        fh.seek(start)
        for _ in range(count):
            # Each finding is a pickle of its own, read by an unpickler of its own: one
            # unpickler over many pickles keeps every object read in its memo (memory
            # grows) and resolves a back reference of a later pickle to an earlier one's.
            code, result, message, file, row, details = pickle.load(fh)
            yield Finding(code, result, message, file=file, row=row, details=details or {})
