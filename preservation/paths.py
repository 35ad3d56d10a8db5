"""Safe names: store keys and paths inside packages.

One place decides what a safe relative path is. Store keys and bag paths are
relative, '/'-separated, NFC-normalised UTF-8, with no empty, '.' or '..' segment,
no backslash, no control character, and no absolute or drive-letter start.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

from preservation.errors import InvalidKey, UnsafePath

MAX_KEY_BYTES = 1024  # S3's limit for a key
MAX_SEGMENT_BYTES = 255  # common file-system limit for one name


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _problem(path: str) -> str | None:
    if not path:
        return "empty path"
    if "\x00" in path:
        return "contains a NUL byte"
    if _CONTROL.search(path):
        return "contains a control character"
    if "\\" in path:
        return "contains a backslash"
    if path.startswith("/"):
        return "is absolute"
    if path.startswith("~"):
        return "starts with '~'"
    if len(path) >= 2 and path[1] == ":" and path[0].isalpha():
        return "starts with a drive letter"
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if len(encoded) > MAX_KEY_BYTES:
        return f"is longer than {MAX_KEY_BYTES} bytes"
    for seg in path.split("/"):
        if seg in ("", ".", ".."):
            return f"has a {seg!r} segment" if seg else "has an empty segment"
        if len(seg.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"has a name longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def is_nfc(text: str) -> bool:
    return unicodedata.is_normalized("NFC", text)


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe store key, else raise InvalidKey (STO005)."""
    problem = _problem(key)
    if problem is None and not is_nfc(key):
        problem = "is not NFC-normalised"
    if problem:
        raise InvalidKey(key=key, reason=problem)
    return key


def safe_relpath(path: str) -> str:
    """Normalise a path found in a transfer (NFC, '/' separators) or raise UnsafePath."""
    problem = _problem(path)
    normalised = nfc(path)
    if problem is None and normalised != path:
        # NFC can lengthen a name (U+0958 becomes two code points): judge the result too
        problem = _problem(normalised)
    if problem:
        raise UnsafePath(path=path, reason=problem)
    return normalised


def path_problem(path: str) -> str | None:
    """The reason a relative path is unsafe, or None."""
    return _problem(path)


def join_key(*parts: str) -> str:
    """Join key parts with '/', dropping empty parts; the result is validated."""
    joined = "/".join(p.strip("/") for p in parts if p and p.strip("/"))
    return validate_key(joined)


def key_parent(key: str) -> str:
    parent = str(PurePosixPath(key).parent)
    return "" if parent == "." else parent
