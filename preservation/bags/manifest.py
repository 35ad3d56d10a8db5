"""File listings of a bag: ``manifest-<alg>.txt``, ``tagmanifest-<alg>.txt``, ``fetch.txt``.

Manifest lines are ``<digest> <path>`` with one or more spaces or tabs between (RFC
8493 2.1.3); ``fetch.txt`` lines are ``<url> <length|-> <path>`` (2.2.3). In paths,
CR, LF and '%' are percent-encoded as ``%0D``, ``%0A``, ``%25`` and nothing else is
decoded: ``%7E`` stays the three characters it is. Bags older than 1.0 are read with
``%0D`` and ``%0A`` decoded but ``%25`` literal (the 0.97 draft encodes nothing;
bagit-python, which wrote most of them, encodes CR and LF only). When decoding changed
a path, the entry keeps the literal form too, so the validator can still find a file
named as written by a tool that does not encode '%'. Readers stream line by line and
append every problem to a findings list with its line number; tolerated oddities seen
in the wild (a leading ``./``, md5sum's binary marker ``*``) are stripped with a
warning. Each path is then judged: escaping the bag is an error, a path that is legal
BagIt but not portable (control characters, length) is a warning.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from preservation.bags.findings import BagFinding, error, warning
from preservation.bags.tagfiles import TagText
from preservation.paths import path_problem

PAYLOAD_DIR = "data"
MANIFEST_RE = re.compile(r"manifest-([A-Za-z0-9]+)\.txt")
TAGMANIFEST_RE = re.compile(r"tagmanifest-([A-Za-z0-9]+)\.txt")
FETCH_TXT = "fetch.txt"

# Hex digest length per algorithm (a manifest of another algorithm is only hex-checked).
DIGEST_LENGTHS = {
    "md5": 32,
    "sha1": 40,
    "sha224": 56,
    "sha256": 64,
    "sha384": 96,
    "sha512": 128,
}

_LINE_RE = re.compile(r"(\S+)[ \t]+(.*)", re.DOTALL)
_FETCH_RE = re.compile(r"(\S+)[ \t]+(\S+)[ \t]+(.+)", re.DOTALL)
_HEX_RE = re.compile(r"[0-9A-Fa-f]+")
_LENGTH_RE = re.compile(r"[0-9]+")
_ENCODED_RE = re.compile(r"%(0[AaDd]|25)")
_ENCODED_LEGACY_RE = re.compile(r"%(0[AaDd])")
_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
_DECODED = {"0a": "\n", "0d": "\r", "25": "%"}

ManifestKind = Literal["payload", "tag"]


def decode_path(text: str, *, decode_percent: bool = True) -> str:
    """Undo the percent-encoding of CR, LF and '%' (and only those).

    ``decode_percent=False`` leaves ``%25`` alone (bags older than BagIt 1.0).
    """
    pattern = _ENCODED_RE if decode_percent else _ENCODED_LEGACY_RE
    return pattern.sub(lambda m: _DECODED[m.group(1).lower()], text)


def encode_path(path: str) -> str:
    """Percent-encode '%', CR and LF for a manifest or fetch line."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def format_manifest_line(digest: str, path: str) -> str:
    """One manifest line: the digest, two spaces (as sha256sum writes), the encoded path."""
    return f"{digest.lower()}  {encode_path(path)}\n"


def format_fetch_line(url: str, length: int | None, path: str) -> str:
    if not _URI_RE.fullmatch(url):
        raise ValueError(f"fetch URL must be absolute and without whitespace: {url!r}")
    return f"{url} {'-' if length is None else length} {encode_path(path)}\n"


def escape_problem(path: str) -> str | None:
    """Why ``path`` would reach outside the bag or name a file ambiguously, or None."""
    if not path:
        return "empty path"
    if "\x00" in path:
        return "contains a NUL byte"
    if "\\" in path:
        return "contains a backslash (a Windows separator)"
    if path.startswith("/"):
        return "is absolute"
    if path.startswith("~"):
        return "starts with '~' (a home directory)"
    if len(path) >= 2 and path[1] == ":" and path[0].isalpha():
        return "starts with a drive letter"
    for seg in path.split("/"):
        if seg == "..":
            return "has a '..' segment"
        if seg in ("", "."):
            return "has an empty or '.' segment"
    return None


def judge_path(path: str, file: str, line: int | None) -> BagFinding | None:
    """An error for a path that escapes the bag, a warning for an unportable one."""
    problem = path_problem(path)
    if problem is None:
        return None
    escape = escape_problem(path)
    if escape is not None:
        return error("BAG303", f"unsafe path {path!r}: {escape}", file, line)
    return warning("BAG304", f"path {path!r} is not portable: {problem}", file, line)


@dataclass(frozen=True)
class ManifestEntry:
    line: int
    digest: str  # lower-case hex
    path: str  # decoded, './' and '*' stripped; relative to the bag root
    literal: str | None = None  # the path without percent-decoding, when that differs


def _clean_path(
    raw: str, file: str, n: int, findings: list[BagFinding], decode_percent: bool
) -> tuple[str, str | None]:
    """(decoded path, literal path if different) with './' and '*' stripped."""
    if raw.startswith("*") and len(raw) > 1:
        findings.append(
            warning("BAG309", f"md5sum binary marker '*' before {raw[1:]!r} ignored", file, n)
        )
        raw = raw[1:]
    if raw.startswith("./"):
        findings.append(warning("BAG308", f"leading './' in {raw!r} ignored", file, n))
        raw = raw[2:]
    path = decode_path(raw, decode_percent=decode_percent)
    return path, (raw if raw != path else None)


def read_manifest(
    text: TagText,
    algorithm: str,
    findings: list[BagFinding],
    *,
    kind: ManifestKind,
    file: str,
    decode_percent: bool = True,
) -> Iterator[ManifestEntry]:
    """Yield the well-formed entries of one manifest; problems go to ``findings``.

    ``text`` is a not yet opened :class:`TagText` (give it algorithms to digest the
    manifest's own bytes in the same read; read them from ``text.digests()`` after).
    Paths are judged (escape: error, unportable: warning) and, by ``kind``, payload
    entries must be under ``data/`` and tag entries must not be. Entries with unsafe
    paths or malformed digests are reported and not yielded. ``decode_percent`` is
    False for bags older than 1.0 (see the module doc).
    """
    expected_len = DIGEST_LENGTHS.get(algorithm)
    try:
        with text:
            for n, line in text.lines():
                entry = _manifest_entry(
                    line, n, algorithm, expected_len, kind, file, findings, decode_percent
                )
                if entry is not None:
                    yield entry
    except OSError as e:
        findings.append(error("BAG316", f"cannot read: {e.strerror}", file))
    findings.extend(text.problems("BAG316", file))


def _manifest_entry(
    line: str,
    n: int,
    algorithm: str,
    expected_len: int | None,
    kind: ManifestKind,
    file: str,
    findings: list[BagFinding],
    decode_percent: bool,
) -> ManifestEntry | None:
    if not line.strip():
        return None
    m = _LINE_RE.fullmatch(line)
    if m is None or not m.group(2):
        findings.append(error("BAG302", f"not '<digest> <path>': {line[:120]!r}", file, n))
        return None
    digest, raw = m.group(1), m.group(2)
    if not _HEX_RE.fullmatch(digest) or (expected_len is not None and len(digest) != expected_len):
        findings.append(error("BAG302", f"{digest[:140]!r} is not a {algorithm} digest", file, n))
        return None
    entry_path, literal = _clean_path(raw, file, n, findings, decode_percent)
    judged = judge_path(entry_path, file, n)
    if judged is not None:
        findings.append(judged)
        if judged.is_error:
            return None
    in_payload = entry_path.startswith(PAYLOAD_DIR + "/")
    if kind == "payload" and not in_payload:
        findings.append(error("BAG305", f"{entry_path!r} is not under {PAYLOAD_DIR}/", file, n))
        return None
    if kind == "tag" and in_payload:
        findings.append(error("BAG314", f"tag manifest lists payload file {entry_path!r}", file, n))
        return None
    return ManifestEntry(n, digest.lower(), entry_path, literal)


@dataclass(frozen=True)
class FetchEntry:
    line: int
    url: str
    length: int | None  # None for '-'
    path: str


def read_fetch(
    text: TagText,
    findings: list[BagFinding],
    *,
    file: str = FETCH_TXT,
    decode_percent: bool = True,
) -> Iterator[FetchEntry]:
    """Yield the well-formed entries of ``fetch.txt`` (a not yet opened TagText)."""
    try:
        with text:
            for n, line in text.lines():
                entry = _fetch_entry(line, n, file, findings, decode_percent)
                if entry is not None:
                    yield entry
    except OSError as e:
        findings.append(error("BAG602", f"cannot read: {e.strerror}", file))
    findings.extend(text.problems("BAG602", file))


def _fetch_entry(
    line: str, n: int, file: str, findings: list[BagFinding], decode_percent: bool
) -> FetchEntry | None:
    if not line.strip():
        return None
    m = _FETCH_RE.fullmatch(line)
    if m is None:
        findings.append(error("BAG601", f"not '<url> <length> <path>': {line[:120]!r}", file, n))
        return None
    url, length_text, raw = m.groups()
    if not _URI_RE.fullmatch(url):
        findings.append(error("BAG601", f"{url!r} is not an absolute URL", file, n))
        return None
    if length_text != "-" and not _LENGTH_RE.fullmatch(length_text):
        findings.append(error("BAG601", f"length {length_text!r} is not a number or '-'", file, n))
        return None
    entry_path = decode_path(raw, decode_percent=decode_percent)
    judged = judge_path(entry_path, file, n)
    if judged is not None:
        findings.append(judged)
        if judged.is_error:
            return None
    if not entry_path.startswith(PAYLOAD_DIR + "/"):
        findings.append(error("BAG603", f"{entry_path!r} is not under {PAYLOAD_DIR}/", file, n))
        return None
    return FetchEntry(n, url, None if length_text == "-" else int(length_text), entry_path)
