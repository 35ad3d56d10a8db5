"""Tag files: ``bagit.txt`` and ``bag-info.txt``, read and written.

Reading streams line by line in the encoding the bag declares (UTF-8, ISO-8859-1,
UTF-16 with its BOM, ...), accepts LF, CR LF and CR line ends, and can digest the
bytes on the way (:class:`TagText`), so a tag file is read once for both parsing and
its tag-manifest digests.

``bagit.txt`` is strict in BagIt 1.0 (RFC 8493 2.1.1: exactly
``BagIt-Version: M.N`` then ``Tag-File-Character-Encoding: ENC``, UTF-8 without BOM);
older bags may have extra whitespace around the colon (a warning).

``bag-info.txt`` (``package-info.txt`` before 0.96) keeps every label in order;
repeated labels become lists in :meth:`BagInfo.as_dict`. A line starting with a space
or tab continues the previous value: the indentation is dropped and the line break is
kept as ``\\n`` (RFC 8493 2.2.2: "except for linebreaks, such padding does not form
part of the value"). Writing is deterministic: labels in the order given, values
canonicalised by :func:`canonical_value`, LF line ends, UTF-8.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from preservation.bags.findings import BagFinding, by_version, error, warning
from preservation.errors import UsageError
from preservation.hashing import BLOCK_SIZE, MultiHasher

BAGIT_TXT = "bagit.txt"
BAG_INFO_TXT = "bag-info.txt"
LEGACY_BAG_INFO_TXT = "package-info.txt"  # BagIt 0.93 to 0.95
MAX_BAGIT_TXT = 64 * 1024
KNOWN_VERSIONS = ((0, 93), (0, 94), (0, 95), (0, 96), (0, 97), (1, 0))
UTF8_BOM = b"\xef\xbb\xbf"

_VERSION_RE = re.compile(r"([0-9]+)\.([0-9]+)")
_BAGIT_LABELS = ("BagIt-Version", "Tag-File-Character-Encoding")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters except TAB
_OXUM_RE = re.compile(r"([0-9]+)\.([0-9]+)")


def canonical_encoding(name: str) -> str | None:
    """Python's codec name for a declared tag-file encoding, or None if unknown."""
    try:
        return codecs.lookup(name.strip()).name
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        return None


def is_utf8(codec: str) -> bool:
    return codecs.lookup(codec).name == "utf-8"


# Undecodable bytes become a lone surrogate, which no valid input decodes to: the line
# holding it is reported with its number and reading goes on with the next line.
_BAD = "\ud800"
_ERRORS = "preservation.bags.undecodable"


def _mark_undecodable(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return _BAD, exc.end


codecs.register_error(_ERRORS, _mark_undecodable)


# --------------------------------------------------------------------------- reading


class _HashingRaw(io.RawIOBase):
    """A raw binary reader that feeds every byte it reads to a MultiHasher."""

    def __init__(self, f: IO[bytes], hasher: MultiHasher | None) -> None:
        super().__init__()
        self._f = f
        self.hasher = hasher

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        block = self._f.read(len(view))
        n = len(block)
        view[:n] = block
        if n and self.hasher is not None:
            self.hasher.update(block)
        return n

    def drain(self) -> None:
        """Read (and digest) whatever is left, so the digest covers the whole file."""
        while block := self._f.read(BLOCK_SIZE):
            if self.hasher is not None:
                self.hasher.update(block)

    def close(self) -> None:
        try:
            self._f.close()
        finally:
            super().close()


class TagText:
    """One tag file opened for streaming text reading (and optional digesting).

    Use as a context manager; iterate :meth:`lines` for ``(line_number, text)`` with
    line ends removed. Lines that do not decode are skipped and their numbers kept in
    ``bad_lines``; ``bom`` tells whether a UTF-8 file began with a BOM (stripped);
    :meth:`problems` turns both into findings. After the ``with`` block,
    :meth:`digests` covers every byte of the file, even if iteration stopped early.
    """

    def __init__(self, path: Path, codec: str, algorithms: Sequence[str] = ()) -> None:
        self.path = path
        self.codec = codec
        self.bom = False
        self.lines_read = 0
        self.bad_lines: list[int] = []
        self._algorithms = tuple(algorithms)
        self._raw: _HashingRaw | None = None
        self._text: io.TextIOWrapper | None = None

    def __enter__(self) -> TagText:
        hasher = MultiHasher(self._algorithms) if self._algorithms else None
        self._raw = _HashingRaw(self.path.open("rb"), hasher)
        buffered = io.BufferedReader(self._raw, BLOCK_SIZE)
        self._text = io.TextIOWrapper(buffered, encoding=self.codec, errors=_ERRORS, newline="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._raw is not None and self._text is not None
        try:
            if exc_type is None:
                self._raw.drain()
        finally:
            self._text.close()

    def lines(self) -> Iterator[tuple[int, str]]:
        assert self._text is not None, "use TagText as a context manager"
        utf8 = is_utf8(self.codec)
        for raw_line in self._text:
            self.lines_read += 1
            line = raw_line.rstrip("\r\n")
            if self.lines_read == 1 and utf8 and line.startswith("\ufeff"):
                self.bom = True
                line = line[1:]
            if _BAD in line:
                self.bad_lines.append(self.lines_read)
                continue
            yield self.lines_read, line

    def problems(self, code: str, file: str) -> list[BagFinding]:
        """The BOM warning (BAG206) and one ``code`` error per undecodable line."""
        found = [
            error(code, f"line {n} is not valid {self.codec}", file, n) for n in self.bad_lines
        ]
        if self.bom:
            found.append(warning("BAG206", "starts with a UTF-8 byte-order mark", file))
        return found

    def digests(self) -> dict[str, str]:
        if self._raw is None or self._raw.hasher is None:
            return {}
        return self._raw.hasher.hexdigests()


# --------------------------------------------------------------------------- bagit.txt


@dataclass
class Declaration:
    """What ``bagit.txt`` declares."""

    version: str | None = None
    version_tuple: tuple[int, int] | None = None
    encoding: str | None = None  # as declared, e.g. 'UTF-8'
    codec: str | None = None  # Python codec name, None if unknown
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def strict(self) -> bool:
        """BagIt 1.0 rules apply (also when the version is unknown or newer)."""
        return self.version_tuple is None or self.version_tuple >= (1, 0)


def read_bagit_txt(
    path: Path, algorithms: Sequence[str] = (), file: str = BAGIT_TXT
) -> tuple[Declaration, list[BagFinding]]:
    """Read and check ``bagit.txt``; digests its bytes with ``algorithms`` on the way."""
    hasher = MultiHasher(algorithms) if algorithms else None
    head = bytearray()
    total = 0
    try:
        with path.open("rb") as f:
            while block := f.read(BLOCK_SIZE):
                total += len(block)
                if hasher is not None:
                    hasher.update(block)
                if len(head) < MAX_BAGIT_TXT:
                    head += block[: MAX_BAGIT_TXT - len(head)]
    except OSError as e:
        return Declaration(), [error("BAG102", f"cannot read: {e.strerror}", file)]
    decl, findings = parse_bagit_txt(bytes(head), file)
    if total > MAX_BAGIT_TXT:
        findings.append(error("BAG104", f"larger than {MAX_BAGIT_TXT} bytes", file))
    if hasher is not None:
        decl.digests = hasher.hexdigests()
    return decl, findings


def parse_bagit_txt(data: bytes, file: str = BAGIT_TXT) -> tuple[Declaration, list[BagFinding]]:
    decl = Declaration()
    problems: list[BagFinding] = []
    if data.startswith(UTF8_BOM):
        problems.append(error("BAG103", "bagit.txt must not start with a byte-order mark", file))
        data = data[len(UTF8_BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        problems.append(error("BAG102", f"not valid UTF-8: {e.reason}", file))
        text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    # Whitespace problems are judged once the version is known (strict for 1.0).
    layout: list[tuple[int, str]] = []
    seen: list[str] = []
    for n, line in enumerate(lines, 1):
        label, sep, value = line.partition(":")
        name = label.strip()
        if not sep or name not in _BAGIT_LABELS:
            problems.append(error("BAG104", f"unexpected line {line!r}", file, n))
            continue
        if name in seen:
            problems.append(error("BAG104", f"{name} given twice", file, n))
            continue
        seen.append(name)
        if label != name:
            layout.append((n, f"whitespace around the label {name!r}"))
        if not re.match(r"^[ \t]\S", value) and value.strip():
            layout.append((n, f"{name}: not exactly one space after the colon"))
        if value != value.rstrip():
            layout.append((n, f"{name}: trailing whitespace"))
        if name == "BagIt-Version":
            decl.version = value.strip()
        else:
            decl.encoding = value.strip()
    if seen and seen[0] != "BagIt-Version":
        problems.append(error("BAG104", "BagIt-Version must be the first line", file, 1))

    if decl.version is None:
        problems.append(error("BAG105", "no BagIt-Version line", file))
    else:
        m = _VERSION_RE.fullmatch(decl.version)
        if m is None:
            problems.append(error("BAG105", f"BagIt-Version {decl.version!r} is not M.N", file))
        else:
            decl.version_tuple = (int(m.group(1)), int(m.group(2)))
            if decl.version_tuple not in KNOWN_VERSIONS:
                problems.append(
                    warning("BAG107", f"unknown BagIt-Version {decl.version}; checked as 1.0", file)
                )
    if decl.encoding is None:
        problems.append(error("BAG106", "no Tag-File-Character-Encoding line", file))
    else:
        decl.codec = canonical_encoding(decl.encoding)
        if decl.codec is None:
            problems.append(error("BAG106", f"unknown encoding {decl.encoding!r}", file))
    for n, what in layout:
        problems.append(by_version(decl.strict, "BAG104", what, file, n))
    return decl, problems


def format_bagit_txt(version: str = "1.0", encoding: str = "UTF-8") -> str:
    return f"BagIt-Version: {version}\nTag-File-Character-Encoding: {encoding}\n"


# --------------------------------------------------------------------------- bag-info.txt


@dataclass
class BagInfo:
    """The labels of ``bag-info.txt`` in file order (a label may repeat)."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, str | list[str]]:
        """Label -> value; a repeated label gives a list (first-seen label order)."""
        out: dict[str, str | list[str]] = {}
        for label, value in self.pairs:
            old = out.get(label)
            if old is None:
                out[label] = value
            elif isinstance(old, list):
                old.append(value)
            else:
                out[label] = [old, value]
        return out

    def values(self, label: str) -> list[str]:
        """Every value of ``label``, matched without regard to case."""
        want = label.casefold()
        return [v for k, v in self.pairs if k.casefold() == want]

    def payload_oxum(self) -> tuple[int, int] | None:
        """(octets, file count) from a well-formed single Payload-Oxum, else None."""
        vals = self.values("Payload-Oxum")
        if len(vals) != 1:
            return None
        m = _OXUM_RE.fullmatch(vals[0])
        return (int(m.group(1)), int(m.group(2))) if m else None


def parse_bag_info(
    lines: Iterable[tuple[int, str]], *, strict: bool, file: str = BAG_INFO_TXT
) -> tuple[BagInfo, list[BagFinding]]:
    """Parse ``(line number, text)`` lines; collect every malformed line."""
    info = BagInfo()
    problems: list[BagFinding] = []
    label: str | None = None
    parts: list[str] = []

    def flush() -> None:
        if label is not None:
            info.pairs.append((label, "\n".join(p for p in parts if p)))

    for n, line in lines:
        if not line.strip():
            continue
        if line[0] in " \t":
            if label is None:
                problems.append(error("BAG202", "continuation line without a label", file, n))
            else:
                parts.append(line.strip())
            continue
        flush()
        label, parts = None, []
        raw_label, sep, rest = line.partition(":")
        name = raw_label.strip()
        if not sep or not name or _CONTROL_RE.search(name):
            problems.append(error("BAG202", f"not a 'Label: value' line: {line[:80]!r}", file, n))
            continue
        if strict and raw_label != raw_label.rstrip():
            problems.append(error("BAG203", f"label {name!r} ends with whitespace", file, n))
        if strict and rest.strip() and not re.match(r"^[ \t]\S", rest):
            problems.append(
                warning("BAG204", f"label {name!r}: not one space after the colon", file, n)
            )
        label, parts = name, [rest.strip()]
    flush()

    oxums = info.values("Payload-Oxum")
    if len(oxums) > 1:
        problems.append(error("BAG205", f"Payload-Oxum given {len(oxums)} times", file))
    elif oxums and not _OXUM_RE.fullmatch(oxums[0]):
        problems.append(error("BAG205", f"Payload-Oxum {oxums[0]!r} is not <octets>.<count>", file))
    return info, problems


def read_bag_info(
    path: Path,
    codec: str,
    *,
    strict: bool,
    algorithms: Sequence[str] = (),
    file: str = BAG_INFO_TXT,
) -> tuple[BagInfo, list[BagFinding]]:
    """Stream-read and parse a bag-info file in ``codec``; digests its bytes on the way."""
    problems: list[BagFinding] = []
    tag = TagText(path, codec, algorithms)
    collected: list[tuple[int, str]] = []
    try:
        with tag:
            collected.extend(tag.lines())
    except OSError as e:
        return BagInfo(), [error("BAG201", f"cannot read: {e.strerror}", file)]
    problems.extend(tag.problems("BAG201", file))
    info, parse_problems = parse_bag_info(collected, strict=strict, file=file)
    info.digests = tag.digests()
    return info, problems + parse_problems


# --------------------------------------------------------------------------- writing

BagInfoInput = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]


def canonical_value(value: str) -> str:
    """The form a value takes after a write/read round trip.

    Line ends become LF; each line loses surrounding whitespace; empty lines go.
    Control characters other than TAB and LF are refused (UsageError).
    """
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    bad = _CONTROL_RE.search(text.replace("\n", ""))
    if bad:
        raise UsageError(f"bag-info value {value[:40]!r} contains control character {bad[0]!r}")
    return "\n".join(s for s in (part.strip() for part in text.split("\n")) if s)


def check_label(label: str) -> str:
    if not label or label != label.strip() or ":" in label or _CONTROL_RE.search(label):
        raise UsageError(
            f"bad bag-info label {label!r}: it must be non-empty, without a colon,"
            " control characters or surrounding whitespace"
        )
    return label


def info_pairs(info: BagInfoInput) -> list[tuple[str, str]]:
    """Normalise a mapping (str or list values) or a pair list to ``[(label, value)]``."""
    pairs: list[tuple[str, str]] = []
    if isinstance(info, Mapping):
        for label, val in info.items():
            vals = [val] if isinstance(val, str) else list(val)
            pairs.extend((label, v) for v in vals)
    else:
        pairs.extend(info)
    return [(check_label(k), canonical_value(v)) for k, v in pairs]


def format_bag_info(info: BagInfoInput) -> Iterator[str]:
    """Lines of ``bag-info.txt`` (with LF), labels in the order given.

    A value with line breaks continues on lines indented by two spaces.
    """
    for label, value in info_pairs(info):
        first, *rest = value.split("\n") if value else [""]
        yield f"{label}: {first}\n" if first else f"{label}:\n"
        for part in rest:
            yield f"  {part}\n"


def write_bag_info(path: Path, info: BagInfoInput) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.writelines(format_bag_info(info))
