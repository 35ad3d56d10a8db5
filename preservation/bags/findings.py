"""Bag findings and the one table of their codes.

Every problem a bag reader or validator finds is a :class:`BagFinding` with a stable
code from :data:`CODES`, a severity ('error' makes the bag invalid, 'warning' does
not), a message, and the file it concerns (a path relative to the bag root), plus the
line number for problems inside a tag file. Some codes are errors in BagIt 1.0 and
warnings in older versions; the finding carries the severity that applied.

Code ranges follow the validation order, cheapest first:

- BAG1xx  structure and ``bagit.txt``
- BAG2xx  ``bag-info.txt``
- BAG3xx  manifests and tag manifests, paths
- BAG4xx  Payload-Oxum (``fast`` validation ends here)
- BAG5xx  completeness
- BAG6xx  ``fetch.txt``
- BAG7xx  digests
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]

CODES: dict[str, str] = {
    # structure and bagit.txt
    "BAG101": "bagit.txt is missing",
    "BAG102": "bagit.txt cannot be read or is not UTF-8",
    "BAG103": "bagit.txt starts with a byte-order mark",
    "BAG104": "bagit.txt has a malformed, unknown, misplaced or extra line",
    "BAG105": "BagIt-Version is missing or not of the form M.N",
    "BAG106": "Tag-File-Character-Encoding is missing or names an unknown encoding",
    "BAG107": "BagIt-Version is not a version this validator knows (checked as 1.0)",
    "BAG108": "the payload directory data/ is missing",
    "BAG109": "the bag is not a directory",
    # bag-info.txt
    "BAG201": "bag-info.txt cannot be read or decoded with the declared encoding",
    "BAG202": "bag-info.txt has a malformed line",
    "BAG203": "a bag-info.txt label ends with whitespace (BagIt 1.0)",
    "BAG204": "a bag-info.txt label is not followed by exactly one space or tab (BagIt 1.0)",
    "BAG205": "Payload-Oxum is malformed or given more than once",
    "BAG206": "a UTF-8 tag file starts with a byte-order mark",
    # manifests and paths
    "BAG301": "no payload manifest with a supported algorithm",
    "BAG302": "a manifest line is malformed (separator, digest characters or length)",
    "BAG303": "a path escapes the bag or is ambiguous ('..', absolute, '~', drive, backslash)",
    "BAG304": "a path is legal BagIt but not portable (control characters, length)",
    "BAG305": "a payload manifest lists a path outside data/",
    "BAG306": "a manifest lists the same path twice with different digests",
    "BAG307": "a manifest lists the same path twice (error in BagIt 1.0, warning before)",
    "BAG308": "a manifest path starts with './' (tolerated, stripped)",
    "BAG309": "a manifest path has the md5sum binary marker '*' (tolerated, stripped)",
    "BAG310": "manifest paths differ only in letter case",
    "BAG311": "manifest paths differ only in Unicode normalisation",
    "BAG312": "payload manifests use only weak algorithms (md5, sha1)",
    "BAG313": "a manifest uses an algorithm this validator does not support (not verified)",
    "BAG314": "a tag manifest lists a payload file",
    "BAG315": "a tag manifest lists a tag manifest (error in BagIt 1.0, warning before)",
    "BAG316": "a manifest cannot be read or decoded with the declared encoding",
    # Payload-Oxum
    "BAG401": "Payload-Oxum file count differs from the payload",
    "BAG402": "Payload-Oxum byte count differs from the payload",
    "BAG403": "no Payload-Oxum: fast validation checked structure only",
    "BAG404": "Payload-Oxum bytes not checked: fetch.txt gives no length for absent files",
    # completeness
    "BAG501": "a file listed in a payload manifest is missing (and not in fetch.txt)",
    "BAG502": "a payload file is not listed in any payload manifest",
    "BAG503": "a payload file is not listed in every payload manifest (error in BagIt 1.0)",
    "BAG504": "a file listed in a tag manifest is missing",
    "BAG505": "a tag file is not listed in every tag manifest",
    "BAG506": "the bag holds a symbolic link or a special file",
    "BAG507": "a manifest path names an existing file only up to normalisation or case",
    "BAG508": "the payload holds an operating-system junk file (.DS_Store, Thumbs.db, ...)",
    # fetch.txt
    "BAG601": "fetch.txt has a malformed line (fields, absolute URL, length)",
    "BAG602": "fetch.txt cannot be read or decoded with the declared encoding",
    "BAG603": "fetch.txt lists a path outside data/ (fetch must not list tag files)",
    "BAG604": "fetch.txt lists a file that is not in every payload manifest",
    "BAG605": "a file listed in fetch.txt is not present locally (not verified)",
    "BAG606": "a local file's size differs from the length given in fetch.txt",
    "BAG607": "fetch.txt lists the same path twice",
    # digests
    "BAG701": "a payload file's digest differs from its manifest",
    "BAG702": "a tag file's digest differs from its tag manifest",
    "BAG703": "a file could not be read for digesting",
}


@dataclass(frozen=True)
class BagFinding:
    code: str
    severity: Severity
    message: str
    file: str | None = None  # path relative to the bag root
    line: int | None = None  # 1-based line inside ``file``, for tag-file problems

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown bag finding code {self.code}")

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"code": self.code, "severity": self.severity, "message": self.message}
        if self.file is not None:
            d["file"] = self.file
        if self.line is not None:
            d["line"] = self.line
        return d

    def __str__(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}"
        prefix = f"{self.code} {self.severity}"
        return f"{prefix} {where}: {self.message}" if where else f"{prefix}: {self.message}"


def error(code: str, message: str, file: str | None = None, line: int | None = None) -> BagFinding:
    return BagFinding(code, "error", message, file, line)


def warning(
    code: str, message: str, file: str | None = None, line: int | None = None
) -> BagFinding:
    return BagFinding(code, "warning", message, file, line)


def by_version(
    strict: bool, code: str, message: str, file: str | None = None, line: int | None = None
) -> BagFinding:
    """An error when BagIt 1.0 rules apply (``strict``), a warning for older bags."""
    return BagFinding(code, "error" if strict else "warning", message, file, line)
