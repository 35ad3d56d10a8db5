"""The period a statistics report covers: a year, a quarter or a month (UTC).

``2022`` is the calendar year, ``2022-Q3`` July to September, ``2022-07`` one month.
The period is the half-open interval ``[start, end)``; ``months`` lists its months
(``YYYY-MM``), the rows of the monthly tables.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

from preservation.errors import UsageError

_PATTERN = re.compile(r"(?P<year>\d{4})(?:-(?:Q(?P<quarter>[1-4])|(?P<month>0[1-9]|1[0-2])))?")


@dataclass(frozen=True)
class Period:
    label: str  # as given: 2022, 2022-Q3, 2022-07
    kind: Literal["year", "quarter", "month"]
    start: dt.datetime  # inclusive, UTC
    end: dt.datetime  # exclusive, UTC
    months: tuple[str, ...]

    def contains(self, when: dt.datetime) -> bool:
        return self.start <= when < self.end

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "kind": self.kind,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "months": list(self.months),
        }


def _month_start(year: int, month: int) -> dt.datetime:
    return dt.datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=dt.UTC)


def parse_period(text: str) -> Period:
    """``2022`` | ``2022-Q3`` | ``2022-07``; UsageError naming the value otherwise."""
    m = _PATTERN.fullmatch(text.strip())
    if m is None or not 1900 <= int(m["year"]) <= 9999:
        raise UsageError(
            f"period {text!r}: give a year (2022), a quarter (2022-Q3) or a month (2022-07)"
        )
    year = int(m["year"])
    kind: Literal["year", "quarter", "month"]
    if m["quarter"]:
        kind, first, count = "quarter", (int(m["quarter"]) - 1) * 3 + 1, 3
    elif m["month"]:
        kind, first, count = "month", int(m["month"]), 1
    else:
        kind, first, count = "year", 1, 12
    months = tuple(f"{year:04d}-{first + i:02d}" for i in range(count))
    return Period(
        text.strip(), kind, _month_start(year, first), _month_start(year, first + count), months
    )


def month_of(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m")


def previous_month(now: dt.datetime) -> Period:
    """The calendar month before ``now`` (what the monthly job reports)."""
    first = now.astimezone(dt.UTC).replace(day=1)
    last = first - dt.timedelta(days=1)
    return parse_period(f"{last.year:04d}-{last.month:02d}")
