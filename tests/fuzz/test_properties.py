"""Hypothesis properties beyond the round trips that already exist.

Existing: manifest write/read and bag-info write/read round trips and percent
encode/decode (tests/bags/test_properties.py), validate_key never accepts dot segments
(tests/foundation/test_hashing_paths.py), the METS write/validate/read round trip
(tests/metadata/test_mets_reader.py test_round_trip_property), page names
(tests/ingest/test_sheet.py). Here: whatever bytes arrive, the parsers either return
safe results or raise one of our errors (never a crash, never a path out of the bag);
path normalisation's output is always a valid store key; reference codes parse back to
their parts, whatever look-alike separators are used.
"""

from __future__ import annotations

import hashlib
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from preservation.bags.findings import BagFinding
from preservation.bags.manifest import escape_problem, read_manifest
from preservation.bags.tagfiles import TagText, parse_bag_info, parse_bagit_txt
from preservation.config import IngestSettings
from preservation.errors import PreservationError, RegisterUnreadable, UnsafePath
from preservation.ingest import refcode
from preservation.ingest.register import read_register
from preservation.metadata.mets_reader import read_mets
from preservation.metadata.mets_writer import write_mets
from preservation.paths import safe_relpath, validate_key
from tests.metadata.builders import chinese_package

FAST = settings(max_examples=150, deadline=None)

# -------------------------------------------------------------------- paths

_PATH_CHARS = st.one_of(
    st.sampled_from([*"/.\\~:%\x00\n\r\t ", "..", "\u0958", "e\u0301", "\u212b", "ﬁ"]),
    st.characters(exclude_categories=["Cs"]),
)
any_path = st.lists(_PATH_CHARS, max_size=40).map("".join)


@FAST
@given(any_path)
@example("\u0958" * 85)  # 255 bytes; NFC makes it 510 (the bug this found)
@example("a/" + "e\u0301" * 120)
def test_safe_relpath_gives_a_valid_key_or_refuses(path: str) -> None:
    try:
        out = safe_relpath(path)
    except UnsafePath:
        return
    assert validate_key(out) == out
    assert safe_relpath(out) == out
    assert escape_problem(out) is None
    assert out == unicodedata.normalize("NFC", path)


# ------------------------------------------------------------------ manifests

_LINE_PIECES = st.sampled_from(
    [b"data/", b"../", b"/", b"%0A", b"%0D", b"%25", b"%2E", b"%2F", b"\r\n", b"\n", b"\r",
     b" ", b"  ", b"\t", b"*", b"./", b"~", b"C:", b"\\", b"\x00", b"\xff", b"\xc3\xa9",
     hashlib.sha256(b"").hexdigest().encode()]
)  # fmt: skip
manifest_bytes = st.lists(st.one_of(_LINE_PIECES, st.binary(max_size=8)), max_size=30).map(b"".join)


@FAST
@given(manifest_bytes, st.sampled_from(["payload", "tag"]))
def test_any_manifest_bytes_give_only_safe_entries(data: bytes, kind: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "manifest-sha256.txt"
        p.write_bytes(data)
        findings: list[BagFinding] = []
        entries = list(
            read_manifest(TagText(p, "utf-8"), "sha256", findings, kind=kind,  # type: ignore[arg-type]
                          file=p.name)
        )  # fmt: skip
    for e in entries:
        assert escape_problem(e.path) is None, e.path
        assert e.path.startswith("data/") == (kind == "payload")
        assert len(e.digest) == 64 and e.digest == e.digest.lower()
    assert all(f.file == p.name for f in findings)


@FAST
@given(st.binary(max_size=300))
def test_any_bagit_txt_bytes_are_judged(data: bytes) -> None:
    decl, problems = parse_bagit_txt(data)
    if not problems or all(not f.is_error for f in problems):
        assert decl.version is not None and decl.encoding is not None


_INFO_CHARS = st.one_of(st.sampled_from(list(":\t \r\n")), st.characters(exclude_categories=["Cs"]))


@FAST
@given(st.lists(st.lists(_INFO_CHARS, max_size=30).map("".join), max_size=15), st.booleans())
def test_any_bag_info_lines_are_parsed_or_reported(lines: list[str], strict: bool) -> None:
    info, problems = parse_bag_info(enumerate(lines, 1), strict=strict)
    for label, _value in info.pairs:
        assert label and label == label.strip() and ":" not in label
    reported = {f.line for f in problems}
    assert all(isinstance(n, int) for n in reported if n is not None)


# ------------------------------------------------------------- reference codes

SETTINGS = IngestSettings()
_LOOKALIKE_DOT = st.sampled_from([refcode.DOT, *refcode.DOT_VARIANTS])
_LOOKALIKE_HYPHEN = st.sampled_from(["-", *refcode.HYPHEN_VARIANTS])


@st.composite
def codes(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    parts = {
        "fonds": draw(st.from_regex(r"[A-Z][0-9]{3}", fullmatch=True)),
        "category": draw(st.sampled_from(["WS", "KJ", "SX", "ZP"])),
        "year": str(draw(st.integers(1949, 2099))),
        "retention": draw(st.sampled_from(["Y", "D30", "D10"])),
        "unit": draw(st.from_regex(r"[A-Z]{2,4}", fullmatch=True)),
        "item": f"{draw(st.integers(1, 9999)):04d}",
    }
    h = [draw(_LOOKALIKE_HYPHEN) for _ in range(4)]
    text = (f"{parts['fonds']}{h[0]}{parts['category']}{draw(_LOOKALIKE_DOT)}{parts['year']}"
            f"{h[1]}{parts['retention']}{h[2]}{parts['unit']}{h[3]}{parts['item']}")  # fmt: skip
    if draw(st.booleans()):  # full-width letters and digits
        text = "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)
    return text, parts


@FAST
@given(codes())
def test_reference_codes_parse_back_to_their_parts(case: tuple[str, dict[str, str]]) -> None:
    text, parts = case
    code = refcode.parse(text, SETTINGS)
    assert code is not None, text
    for key, value in parts.items():
        assert getattr(code, key) == value
    canonical = refcode.parse(code.canonical, SETTINGS)
    assert canonical is not None and canonical.canonical == code.canonical
    assert canonical.notes == ()
    assert code.group == code.canonical[: -len(parts["item"]) - 1]
    assert code.item_number == int(parts["item"])


@FAST
@given(st.text())
def test_normalise_is_idempotent_and_parse_never_raises(text: str) -> None:
    once, _ = refcode.normalise(text)
    assert refcode.normalise(once)[0] == once
    refcode.parse(text, SETTINGS)
    refcode.split_page_name(text, SETTINGS)


# ------------------------------------------------------------------ registers

_REGISTER_PIECES = st.sampled_from(
    [b"{", b"}", b"[", b"]", b'"items"', b'"files"', b":", b",", b"=", b"\n", b"3", b"-1",
     b"1e999", b"true", b"null", b"\xef\xbb\xbf", b"\xff", "件数".encode(), b"[register]"]
)  # fmt: skip


@FAST
@given(st.lists(st.one_of(_REGISTER_PIECES, st.binary(max_size=6)), max_size=40).map(b"".join),
       st.sampled_from([".json", ".toml", ".csv", ".txt"]))  # fmt: skip
@example(b"items,3\rfiles,2\r", ".csv")  # found: csv.Error escaped on a lone CR (fixed)
@example(b"x\r,y", ".txt")
def test_any_register_is_read_or_refused_with_reg001(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"register{suffix}"
        path.write_bytes(data)
        try:
            register = read_register(path)
        except RegisterUnreadable as e:
            assert path.name in str(e)
            return
    counts = [register.items, register.volumes, register.files, register.bytes, register.pages]
    assert any(c is not None for c in counts)
    assert all(c is None or (isinstance(c, int) and c >= 0) for c in counts)


# --------------------------------------------------------------- METS reading


INSERTS = [b"<", b"&", b"]]>", b"<!DOCTYPE x [<!ENTITY e 'x'>]>", b"\x00", b"\xff\xfe"]


@pytest.fixture(scope="module")
def mets_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mets.xml"
        write_mets(path, chinese_package())
        return path.read_bytes()


_FIXTURE_OK = [HealthCheck.function_scoped_fixture]  # the fixture is read-only


@settings(max_examples=150, deadline=None, suppress_health_check=_FIXTURE_OK)
@given(st.data())
def test_damaged_mets_is_read_or_refused_with_our_error(
    mets_bytes: bytes, data: st.DataObject
) -> None:
    """Byte flips, cuts and insertions anywhere in a valid METS: read_mets returns a
    summary or raises a PreservationError naming the document, nothing else."""
    doc = bytearray(mets_bytes)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(doc) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            doc[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del doc[at : at + data.draw(st.integers(1, 200))]
        else:
            doc[at:at] = data.draw(st.sampled_from(INSERTS))
        if not doc:
            doc = bytearray(b"<")
    try:
        read_mets(bytes(doc), label="fuzzed-mets.xml")
    except PreservationError as e:
        assert "fuzzed-mets.xml" in str(e) or e.code.startswith("MET"), str(e)
