"""Which file copies a run checks, in which order, and when it stops.

The plan is a keyset scan of the catalogue (:func:`~preservation.catalog.audit_queries.
audit_candidates`): never-verified file copies first, then the least recently
verified, page by page. Because every check a run commits moves its file copy to the
back of that order, a run that stops (budget spent, SIGTERM, SIGKILL) is continued by
the next run exactly where it stopped; nothing is tracked besides the catalogue.

- *Due* copies are those last verified before ``now - fixity_interval_days`` of their
  store. By default a run checks only due copies.
- *Ahead* (``--ahead``, ``--aip``, sample mode and the ``auto`` budget) also takes
  copies not yet due, still least recently verified first: this is what spreads the
  work evenly over the interval instead of a burst when a whole cohort falls due.
- ``auto`` budget: the store's bytes (objects for inventory) divided by its interval
  in days, plus 10 %: a daily run of that size covers the store within its interval.
- ``sample``: a seeded random fraction; a file copy is in the sample when a hash of
  (seed, file copy id) falls below the fraction, so the same seed picks the same
  copies and any seed picks each copy with that probability.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from preservation.audit.budget import Budget
from preservation.catalog.audit_queries import Candidate, Cursor, audit_candidates

AUTO_SLACK = 1.10
UNIT_FILES = 32  # files per unit of work sent to a worker
UNIT_BYTES = 64 * 1024 * 1024


def auto_budget(total_files: int, total_bytes: int, interval_days: int, inventory: bool) -> Budget:
    """The steady daily share of a store (see the module doc)."""
    if inventory:
        return Budget(objects=max(1, math.ceil(total_files / interval_days * AUTO_SLACK)))
    return Budget(bytes=max(1, math.ceil(total_bytes / interval_days * AUTO_SLACK)))


def in_sample(seed: int, file_copy_id: int, fraction: float) -> bool:
    h = hashlib.blake2b(f"{seed}:{file_copy_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") < fraction * 2**64


@dataclass
class Planner:
    """Hands out pages of candidates until the catalogue or the budget runs out."""

    store: str
    verified_before: dt.datetime
    budget: Budget
    page_size: int
    aip_id: str | None = None
    sample_seed: int | None = None
    sample_fraction: float | None = None
    count_bytes: bool = True  # inventory reads no content: only objects count
    used_bytes: int = 0
    used_objects: int = 0
    stopped_by: str | None = None
    _cursor: Cursor | None = None
    _done: bool = False
    _deadline: float | None = field(default=None)

    def __post_init__(self) -> None:
        if self.budget.seconds is not None:
            self._deadline = time.monotonic() + self.budget.seconds

    @property
    def finished(self) -> bool:
        return self._done

    def time_left(self) -> bool:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self.stopped_by = "budget:time"
            self._done = True
            return False
        return True

    def _fits(self, c: Candidate) -> bool:
        first = self.used_objects == 0
        if self.budget.objects is not None and self.used_objects >= self.budget.objects:
            self.stopped_by = "budget:objects"
            return False
        if (
            self.count_bytes
            and self.budget.bytes is not None
            and not first
            and self.used_bytes + c.size > self.budget.bytes
        ):
            self.stopped_by = "budget:bytes"
            return False
        return True

    def next_page(self, session: Session) -> list[Candidate]:
        """The next candidates within the budget; [] when the run is over."""
        if self._done or not self.time_left():
            return []
        out: list[Candidate] = []
        while len(out) < self.page_size:
            rows = audit_candidates(
                session,
                self.store,
                verified_before=self.verified_before,
                limit=self.page_size,
                after=self._cursor,
                aip_id=self.aip_id,
            )
            if not rows:
                self._done = True
                break
            for c in rows:
                self._cursor = Cursor.after(c)
                if self.sample_fraction is not None and not in_sample(
                    self.sample_seed or 0, c.file_copy_id, self.sample_fraction
                ):
                    continue
                if not self._fits(c):
                    self._done = True
                    return out
                out.append(c)
                self.used_objects += 1
                self.used_bytes += c.size
                if len(out) >= self.page_size:
                    return out
        return out


def group_units(sizes: list[int]) -> Iterator[list[int]]:
    """Indexes of ``sizes`` grouped into units: at most UNIT_FILES files or UNIT_BYTES
    bytes each (a bigger file is a unit of its own); order kept."""
    group: list[int] = []
    group_bytes = 0
    for i, size in enumerate(sizes):
        if group and (len(group) >= UNIT_FILES or group_bytes + size > UNIT_BYTES):
            yield group
            group, group_bytes = [], 0
        group.append(i)
        group_bytes += size
    if group:
        yield group
