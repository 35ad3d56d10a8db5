"""What one ingest received, for the statistics: kept in the ingest's ``jobs`` row.

Ingest calls :func:`received_summary` once, at its catalogue commit, and stores the
result under ``jobs.result["received"]``. It holds counts only, so its size does not
grow with the transfer. Since migration 0005 each file's properties are in the
catalogue too (``files.properties``, and in the METS, so a rebuilt catalogue has them):
the statistics report counts images, pages and scans from there with
:class:`FileFigures`, and takes only the sheet's counts (items, volumes) from here.

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

from collections.abc import Iterable, Mapping
from typing import Any

from preservation.model import FileEntry, Record

DIGITISED_KINDS = frozenset(["TIFF", "JPEG", "JPEG2000"])


def _count(d: dict[str, int], key: str) -> None:
    d[key] = d.get(key, 0) + 1


class FileFigures:
    """Counts over payload files' properties (``FileEntry.properties``, or the
    catalogue's ``files.properties``): images, pages, and the scans by resolution
    and colour mode. One :meth:`add` per file; memory does not grow with them."""

    def __init__(self) -> None:
        self.pages = self.images = self.scans = self.below = 0
        self.by_resolution: dict[str, int] = {}
        self.by_colour: dict[str, int] = {}

    def add(self, properties: Mapping[str, Any] | None) -> None:
        p = properties or {}
        fmt = p.get("image_format")
        if fmt:
            self.images += 1
            self.pages += int(p.get("frames") or 1)
            if fmt in DIGITISED_KINDS and not p.get("camera"):
                self.scans += 1
                dpi = p.get("dpi")
                _count(self.by_resolution, str(round(min(dpi))) if dpi else "unknown")
                _count(self.by_colour, str(p.get("colour_mode") or "unknown"))
                self.below += bool(p.get("dpi_below_minimum"))
        elif isinstance(p.get("pages"), int):
            self.pages += p["pages"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "pages": self.pages,
            "images": self.images,
            "scans": self.scans,
            "by_resolution": dict(sorted(self.by_resolution.items())),
            "by_colour_mode": dict(sorted(self.by_colour.items())),
            "below_minimum": self.below,
        }


def received_summary(entries: Iterable[FileEntry], records: Iterable[Record]) -> dict[str, Any]:
    """Counts over the payload files (one pass) and the sheet's records."""
    files = size = 0
    figures = FileFigures()
    for e in entries:
        files += 1
        size += e.size
        figures.add(e.properties)
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
        **figures.to_dict(),
    }
