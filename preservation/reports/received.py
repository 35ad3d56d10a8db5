"""What one ingest received, for the statistics: kept in the ingest's ``jobs`` row.

Ingest calls :func:`received_summary` once, at its catalogue commit, and stores the
result under ``jobs.result["received"]`` (an existing JSON column: no migration). It
holds counts only, so its size does not grow with the transfer:

- ``files``, ``bytes``: payload received;
- ``items``, ``volumes``: the catalogue sheet's rows by level (件 / 卷);
- ``sheet_pages``: the sum of the sheet's 页数 column where it is a number;
- ``pages``: pages found by opening the files (PDF pages, image frames);
- ``images``: image files; ``scans``: images that may be scanned pages (TIFF, JPEG
  2000, JPEG no camera wrote), with counts ``by_resolution`` (the lower of the two
  dpi values, rounded; ``unknown`` without one) and ``by_colour_mode``
  (``colour``, ``greyscale``, ``bilevel``, …), and ``below_minimum`` (under the
  DA/T 31 minimum).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from preservation.model import FileEntry, Record

DIGITISED_KINDS = frozenset(["TIFF", "JPEG", "JPEG2000"])


def _count(d: dict[str, int], key: str) -> None:
    d[key] = d.get(key, 0) + 1


def received_summary(entries: Iterable[FileEntry], records: Iterable[Record]) -> dict[str, Any]:
    """Counts over the payload files (one pass) and the sheet's records."""
    files = size = pages = images = scans = below = 0
    by_resolution: dict[str, int] = {}
    by_colour: dict[str, int] = {}
    for e in entries:
        files += 1
        size += e.size
        p = e.properties or {}
        fmt = p.get("image_format")
        if fmt:
            images += 1
            pages += int(p.get("frames") or 1)
            if fmt in DIGITISED_KINDS and not p.get("camera"):
                scans += 1
                dpi = p.get("dpi")
                _count(by_resolution, str(round(min(dpi))) if dpi else "unknown")
                _count(by_colour, str(p.get("colour_mode") or "unknown"))
                below += bool(p.get("dpi_below_minimum"))
        elif isinstance(p.get("pages"), int):
            pages += p["pages"]
    items = volumes = sheet_pages = 0
    for r in records:
        if r.level == "volume":
            volumes += 1
        else:
            items += 1
        declared = r.fields.get("pages", "").strip()
        if declared.isdigit():
            sheet_pages += int(declared)
    return {
        "files": files,
        "bytes": size,
        "items": items,
        "volumes": volumes,
        "sheet_pages": sheet_pages,
        "pages": pages,
        "images": images,
        "scans": scans,
        "by_resolution": dict(sorted(by_resolution.items())),
        "by_colour_mode": dict(sorted(by_colour.items())),
        "below_minimum": below,
    }
