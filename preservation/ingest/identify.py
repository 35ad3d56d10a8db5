"""Format identification with Siegfried (PRONOM), and the accepted-format check.

Siegfried runs in-process through pygfried, with its embedded PRONOM signature file.
Files are identified in chunks (:data:`CHUNK`) through one shared ``pygfried.Scanner``
and ``identify_many`` with several Go workers, so memory holds one chunk's results
at a time and small files go at several thousand a second.

PRONOM has no entry for OFD (GB/T 33190) yet: Siegfried calls an OFD file a ZIP
(x-fmt/263). A ZIP whose root holds ``OFD.xml`` in the OFD namespace is therefore
described as OFD here (PUID kept as x-fmt/263, MIME :data:`OFD_MIME`), and the
accepted-format list matches it through its ``local_formats`` section.
"""

from __future__ import annotations

import json
import re
import threading
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pygfried

import preservation
from preservation.errors import ConfigError
from preservation.ingest.findings import Finding, define
from preservation.model import FileEntry, FormatInfo

CHUNK = 2000  # paths per identify_many call: bounds the memory of one result (~2 MB)
ZIP_PUID = "x-fmt/263"
OFD_MIME = "application/ofd"
OFD_NAME = "Open Fixed-layout Document (OFD, GB/T 33190)"
OFD_NAMESPACE = b"http://www.ofdspec.org"

# Siegfried's warning texts that mean the name and the content disagree.
MISMATCH_WARNINGS = ("extension mismatch", "filename mismatch")

FMT_IDENTIFIED = define(
    "FMT-001", "usability", "Format identified (PRONOM)", "格式识别(PRONOM)", cost=30
)
FMT_ACCEPTED = define(
    "FMT-002", "usability", "Format on the accepted list", "格式符合归档格式要求", cost=31
)
FMT_EXTENSION = define(
    "FMT-003",
    "authenticity",
    "File name extension agrees with the identified format",
    "文件扩展名与识别格式一致",
    cost=32,
)
FMT_READ = define(
    "FMT-004", "usability", "File readable for identification", "文件可读取以识别格式", cost=29
)

Accept = Literal["yes", "warn", "no"]
ACCEPTED_FORMATS_NAME = "accepted-formats.json"
ACCEPTED_FORMATS_SCHEMA_NAME = "accepted-formats.schema.json"


def schema_dirs() -> list[Path]:
    """Where the project's JSON files live: the source tree's ``schemas/`` folder, then the
    copy an installed package carries in ``preservation/_schemas/``."""
    pkg = Path(preservation.__file__).resolve().parent
    return [pkg.parent / "schemas", pkg / "_schemas"]


def find_schema_file(name: str) -> Path:
    for d in schema_dirs():
        if (d / name).is_file():
            return d / name
    tried = ", ".join(str(d) for d in schema_dirs())
    raise ConfigError(f"{name} not found (looked in {tried})")


_PUID = re.compile(r"^(x-)?fmt/[0-9]+$")


@dataclass(frozen=True)
class AcceptedFormat:
    key: str  # the PUID, or the local name for formats PRONOM does not know
    name: str
    accept: Accept
    group: str = "other"
    note: str = ""
    container: str | None = None  # local formats: the PUID Siegfried reports
    mime: str | None = None  # local formats: the MIME identification sets


@dataclass(frozen=True)
class AcceptedFormats:
    """The accepted-format list: look a :class:`FormatInfo` up with :meth:`status`."""

    title: str
    version: str
    unlisted: Accept
    formats: dict[str, AcceptedFormat]
    local_formats: dict[str, AcceptedFormat] = field(default_factory=dict)
    source: str = ""

    def lookup(self, info: FormatInfo) -> AcceptedFormat | None:
        for local in self.local_formats.values():
            if info.puid == local.container and info.mime == local.mime:
                return local
        return self.formats.get(info.puid) if info.puid else None

    def status(self, info: FormatInfo) -> tuple[Accept, AcceptedFormat | None]:
        entry = self.lookup(info)
        return (entry.accept if entry is not None else self.unlisted), entry


def _jsonschema_problems(data: Any, schema_path: Path) -> list[str] | None:
    """Problems found by jsonschema, or None when jsonschema is not installed."""
    try:
        import jsonschema
    except ImportError:
        return None
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '(top)'}: {err.message}"
        for err in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    ]


def load_accepted_formats(path: Path | None = None) -> AcceptedFormats:
    """Load and validate an accepted-format list (default: the project's own).

    The default is ``schemas/accepted-formats.json`` of the source tree, or the copy
    in ``preservation/_schemas/`` of an installed package. Validated against
    ``accepted-formats.schema.json`` with jsonschema when it is installed, and always
    parsed strictly with pydantic. Raises ConfigError naming the file and every problem.
    """
    path = path if path is not None else find_schema_file(ACCEPTED_FORMATS_NAME)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON: {e}") from e
    try:
        schema_path: Path | None = find_schema_file(ACCEPTED_FORMATS_SCHEMA_NAME)
    except ConfigError:
        schema_path = None
    problems = _jsonschema_problems(data, schema_path) if schema_path is not None else None
    if problems:
        raise ConfigError(problems=[f"{path}: {p}" for p in problems])
    from pydantic import ValidationError  # not at import: the identification worker

    from preservation.ingest.accepted_models import AcceptedModel

    try:
        model = AcceptedModel.model_validate(data)
    except ValidationError as e:
        raise ConfigError(
            problems=[
                f"{path}: {'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
                for err in e.errors()
            ]
        ) from e
    bad = [k for k in model.formats if not _PUID.match(k)]
    if bad:
        raise ConfigError(problems=[f"{path}: formats: {k!r} is not a PRONOM PUID" for k in bad])
    return AcceptedFormats(
        title=model.title,
        version=model.version,
        unlisted=model.unlisted,
        formats={
            k: AcceptedFormat(k, v.name, v.accept, v.group, v.note)
            for k, v in model.formats.items()
        },
        local_formats={
            k: AcceptedFormat(k, v.name, v.accept, v.group, v.note, v.container, v.mime)
            for k, v in model.local_formats.items()
        },
        source=str(path),
    )


_scanner: pygfried.Scanner | None = None
_scanner_lock = threading.Lock()


def _get_scanner() -> pygfried.Scanner:
    global _scanner
    with _scanner_lock:
        if _scanner is None:
            _scanner = pygfried.Scanner()
        return _scanner


def siegfried_version() -> str:
    return pygfried.version()


def _signature_label(result: dict[str, Any]) -> str:
    details = "; ".join(i.get("details", "") for i in result.get("identifiers", []))
    sig = str(result.get("signature", ""))
    return f"{sig} ({details})" if details else sig


def _format_info(
    match: dict[str, Any] | None, errors: str, tool_version: str, sig: str
) -> FormatInfo:
    if match is None:
        return FormatInfo(
            puid=None,
            mime=None,
            name=None,
            version=None,
            basis=None,
            warning=errors or "no match",
            tool_version=tool_version,
            signature=sig,
        )
    puid = match.get("id") or None
    if puid == "UNKNOWN":
        puid = None
    warnings = [w for w in (match.get("warning") or "", errors) if w]
    return FormatInfo(
        puid=puid,
        mime=match.get("mime") or None,
        name=match.get("format") or None,
        version=match.get("version") or None,
        basis=match.get("basis") or None,
        warning="; ".join(warnings) or None,
        tool_version=tool_version,
        signature=sig,
    )


def _pronom_match(file_result: dict[str, Any]) -> dict[str, Any] | None:
    matches = file_result.get("matches") or []
    for m in matches:
        if m.get("ns") == "pronom":
            return dict(m)
    return dict(matches[0]) if matches else None


def _refine_ofd(path: Path, info: FormatInfo) -> FormatInfo:
    """Describe a ZIP holding ``OFD.xml`` (OFD namespace) at its root as OFD."""
    if info.puid != ZIP_PUID:
        return info
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                member = zf.getinfo("OFD.xml")
            except KeyError:
                return info
            with zf.open(member) as f:
                head = f.read(4096)
    except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError, ValueError):
        return info
    if OFD_NAMESPACE not in head:
        return info
    warning = info.warning
    if warning and path.suffix.lower() == ".ofd":
        # Siegfried says "extension mismatch" because it knows no .ofd; the name is right.
        rest = [w.strip() for w in warning.split(";") if w.strip() not in MISMATCH_WARNINGS]
        warning = "; ".join(rest) or None
    basis = (
        f"{info.basis}; container entry OFD.xml in the OFD namespace"
        if info.basis
        else ("container entry OFD.xml in the OFD namespace")
    )
    return FormatInfo(
        puid=info.puid,
        mime=OFD_MIME,
        name=OFD_NAME,
        version=None,
        basis=basis,
        warning=warning,
        tool=info.tool,
        tool_version=info.tool_version,
        signature=info.signature,
    )


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a file name that is not valid UTF-8 (surrogate escapes)
        return False
    return True


def _identify_chunk(chunk: Sequence[Path], workers: int) -> dict[Path, FormatInfo]:
    scanner = _get_scanner()
    if not all(_utf8(str(p)) for p in chunk):
        # Siegfried takes UTF-8 names only; one such name would fail the whole call.
        out: dict[Path, FormatInfo] = {p: _failed(p) for p in chunk if not _utf8(str(p))}
        rest = [p for p in chunk if _utf8(str(p))]
        if rest:
            out.update(_identify_chunk(rest, workers))
        return out
    names = [str(p) for p in chunk]
    try:
        result: dict[str, Any] = dict(scanner.identify_many(names, workers=workers))
    except (pygfried.GoError, UnicodeError, ValueError):
        if len(chunk) > 1:
            # Whatever failed the whole call, find the file by going one by one.
            out = {}
            for p in chunk:
                out.update(_identify_chunk([p], workers=1))
            return out
        return {chunk[0]: _failed(chunk[0])}
    tool_version = str(result.get("siegfried", "")) or siegfried_version()
    sig = _signature_label(result)
    files = list(result.get("files") or [])
    by_name: dict[str, dict[str, Any]] = {}
    if len(files) == len(names) and all(
        f.get("filename") == n for f, n in zip(files, names, strict=True)
    ):
        by_name = dict(zip(names, files, strict=True))
    else:
        by_name = {str(f.get("filename")): dict(f) for f in files}
    out = {}
    for path, name in zip(chunk, names, strict=True):
        fr = by_name.get(name)
        if fr is None:
            out[path] = _failed(path, tool_version, sig)
            continue
        info = _format_info(_pronom_match(fr), str(fr.get("errors") or ""), tool_version, sig)
        out[path] = _refine_ofd(path, info)
    return out


def _failed(path: Path, tool_version: str | None = None, sig: str | None = None) -> FormatInfo:
    return FormatInfo(
        puid=None,
        mime=None,
        name=None,
        version=None,
        basis=None,
        warning=f"identification failed: Siegfried could not read the name {path.name!r}",
        tool_version=tool_version or siegfried_version(),
        signature=sig,
    )


def identify_files(paths: Sequence[Path], workers: int = 2) -> dict[Path, FormatInfo]:
    """Identify every path with Siegfried; unidentified files get ``puid=None``."""
    workers = max(1, int(workers))
    out: dict[Path, FormatInfo] = {}
    for start in range(0, len(paths), CHUNK):
        out.update(_identify_chunk(list(paths[start : start + CHUNK]), workers))
    return out


def identify_entries(entries: Sequence[FileEntry], workers: int = 2) -> None:
    """Set ``entry.format`` for every entry that has a ``source`` to read."""
    readable = [e for e in entries if e.source is not None]
    for start in range(0, len(readable), CHUNK):
        chunk = readable[start : start + CHUNK]
        infos = _identify_chunk([e.source for e in chunk if e.source is not None], workers)
        for e in chunk:
            assert e.source is not None
            e.format = infos.get(e.source)


def _is_read_error(info: FormatInfo) -> bool:
    w = info.warning or ""
    return w.startswith("identification failed") or "no such file" in w or "permission denied" in w


def check_formats(entries: Iterable[FileEntry], accepted: AcceptedFormats) -> list[Finding]:
    """Identification, accepted-list and extension findings.

    A finding naming the file for every problem, and one *pass* finding per check
    counting the files that passed it (a pass is evidence too).
    """
    return list(iter_format_findings(entries, accepted))


def iter_format_findings(
    entries: Iterable[FileEntry], accepted: AcceptedFormats
) -> Iterator[Finding]:
    """:func:`check_formats` one finding at a time (memory does not grow with files)."""
    total = identified = on_list = mismatched = 0
    for e in entries:
        total += 1
        info = e.format
        if info is None or info.puid is None:
            if info is not None and _is_read_error(info):
                yield (
                    Finding(
                        FMT_READ.code,
                        "fail",
                        f"{e.path}: could not be read for identification ({info.warning})",
                        file=e.path,
                    )
                )
                continue
            reason = info.warning if info is not None and info.warning else "not identified"
            yield (
                Finding(
                    FMT_IDENTIFIED.code,
                    "warn",
                    f"{e.path}: format not identified by Siegfried/PRONOM ({reason})",
                    file=e.path,
                )
            )
            continue
        identified += 1
        label = _label(info)
        if info.warning and "empty source" in info.warning:
            yield (
                Finding(
                    FMT_IDENTIFIED.code,
                    "warn",
                    f"{e.path}: file is empty; identified by its name only as {label}",
                    file=e.path,
                    details={"puid": info.puid},
                )
            )
        status, entry = accepted.status(info)
        if status == "yes":
            on_list += 1
        else:
            where = (
                f"listed as {'not accepted' if status == 'no' else 'accepted with reservations'}"
                if entry is not None
                else "not on the accepted-format list"
            )
            note = f"; {entry.note}" if entry is not None and entry.note else ""
            yield (
                Finding(
                    FMT_ACCEPTED.code,
                    "fail" if status == "no" else "warn",
                    f"{e.path}: {label} is {where}{note}",
                    file=e.path,
                    details={"puid": info.puid, "accept": status},
                )
            )
        if info.warning and any(w in info.warning for w in MISMATCH_WARNINGS):
            mismatched += 1
            yield (
                Finding(
                    FMT_EXTENSION.code,
                    "warn",
                    f"{e.path}: the name's extension does not match the content, identified as"
                    f" {label} ({info.warning})",
                    file=e.path,
                    details={"puid": info.puid, "basis": info.basis or ""},
                )
            )
    # The pass evidence: one finding per check for the files that passed it (problems
    # are the per-file findings above, so nothing is counted twice).
    if identified:
        yield (
            Finding(
                FMT_IDENTIFIED.code,
                "pass",
                f"{identified} of {total} files identified",
                details={"identified": identified, "total": total},
            )
        )
    if on_list:
        yield (
            Finding(
                FMT_ACCEPTED.code,
                "pass",
                f"{on_list} of {total} files are in accepted formats",
                details={"accepted": on_list, "total": total, "list": accepted.title},
            )
        )
    if identified > mismatched:
        yield (
            Finding(
                FMT_EXTENSION.code,
                "pass",
                f"{identified - mismatched} of {identified} identified files have an extension"
                " that agrees with their format",
                details={"agree": identified - mismatched, "identified": identified},
            )
        )


def _label(info: FormatInfo) -> str:
    name = info.name or "unknown format"
    if info.version:
        name = f"{name} {info.version}"
    return f"{name} ({info.puid})"
