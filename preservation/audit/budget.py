"""Budgets of audit runs and durations of schedules, parsed from short text.

A budget bounds one run by bytes read, objects checked or wall time; several limits
may be given together (``"50GB,2h"``: whichever is reached first stops the run):

    50GB  1.5TiB  800MB  1000000B       bytes (decimal kB/MB/GB/TB, binary KiB/MiB/GiB/TiB)
    2h  30m  90s  1h30m  1d             wall time
    1000objects  1000files  1000        objects (file copies)
    auto                                the store's steady daily share (see plan.py)

A run always checks at least one object, so a single object larger than a byte budget
still makes progress; a time budget is checked before each object is started.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from preservation.errors import UsageError

_BYTE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "pb": 1000**5,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "pib": 1024**5,
}
_TIME_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION = re.compile(
    r"(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?"
    r"(?:(\d+(?:\.\d+)?)s)?"
)
_BYTES = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]i?b|b)")
_OBJECTS = re.compile(r"(\d+)\s*(?:objects?|files?)?")


@dataclass(frozen=True)
class Budget:
    """Limits of one run; None means no limit of that kind. ``auto`` asks the planner
    for the store's steady share (bytes per day so the interval is covered)."""

    bytes: int | None = None
    objects: int | None = None
    seconds: float | None = None
    auto: bool = False

    @property
    def unlimited(self) -> bool:
        return (
            not self.auto and self.bytes is None and self.objects is None and (self.seconds is None)
        )

    def describe(self) -> str:
        parts: list[str] = []
        if self.auto:
            parts.append("auto")
        if self.bytes is not None:
            parts.append(f"{self.bytes}B")
        if self.objects is not None:
            parts.append(f"{self.objects}objects")
        if self.seconds is not None:
            parts.append(f"{self.seconds:g}s")
        return ",".join(parts) or "unlimited"


def parse_duration(text: str) -> float:
    """Seconds of ``"2h"``, ``"1h30m"``, ``"90s"``, ``"1d"``; UsageError otherwise."""
    t = text.strip().lower().replace(" ", "")
    m = _DURATION.fullmatch(t)
    if not t or m is None or not any(m.groups()):
        raise UsageError(f"not a duration: {text!r} (examples: 90s, 30m, 2h, 1h30m, 1d)")
    total = sum(float(v) * _TIME_UNITS[u] for v, u in zip(m.groups(), "dhms", strict=True) if v)
    if total <= 0:
        raise UsageError(f"a duration must be positive: {text!r}")
    return total


def parse_budget(text: str | None) -> Budget:
    """Parse a budget; ``None`` or ``""`` is no limit. UsageError names the bad part."""
    if text is None or not text.strip():
        return Budget()
    limits: dict[str, float | int | bool] = {}
    for raw in text.split(","):
        part = raw.strip().lower()
        if not part:
            continue
        if part == "auto":
            limits["auto"] = True
            continue
        b = _BYTES.fullmatch(part)
        if b is not None:
            value = int(float(b.group(1)) * _BYTE_UNITS[b.group(2)])
            _once(limits, "bytes", value, text)
            continue
        o = _OBJECTS.fullmatch(part)
        if o is not None:
            _once(limits, "objects", int(o.group(1)), text)
            continue
        try:
            seconds = parse_duration(part)
        except UsageError:
            raise UsageError(
                f"budget {text!r}: cannot read {raw.strip()!r}"
                " (examples: 50GB, 500GiB, 2h, 30m, 1000objects, auto)"
            ) from None
        _once(limits, "seconds", seconds, text)
    for key in ("bytes", "objects", "seconds"):
        limit = limits.get(key)
        if limit is not None and not limit > 0:
            raise UsageError(f"budget {text!r}: limits must be positive")
    return Budget(
        bytes=int(limits["bytes"]) if "bytes" in limits else None,
        objects=int(limits["objects"]) if "objects" in limits else None,
        seconds=float(limits["seconds"]) if "seconds" in limits else None,
        auto=bool(limits.get("auto", False)),
    )


def _once(limits: dict[str, float | int | bool], key: str, value: float, text: str) -> None:
    if key in limits:
        raise UsageError(f"budget {text!r}: {key} given twice")
    limits[key] = value
