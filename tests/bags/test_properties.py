"""Hypothesis round trips: manifests (any safe path) and bag-info (any label and value)."""

from __future__ import annotations

import hashlib
import tempfile
import unicodedata
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from preservation.bags.findings import BagFinding
from preservation.bags.manifest import decode_path, encode_path, format_manifest_line, read_manifest
from preservation.bags.tagfiles import (
    TagText,
    canonical_value,
    read_bag_info,
    write_bag_info,
)

# Names as archives receive them: spaces, '%' (also before 0A/0D/25), CR and LF, '~',
# '*', tabs and any letters; never '/', NUL or a backslash inside one segment.
_SEGMENT_CHARS = st.one_of(
    st.sampled_from([*" %~*\t\r\n.-_#", "%0A", "%0D", "%25", "%7E"]),
    st.characters(exclude_categories=["Cs"], exclude_characters="/\\\x00", max_codepoint=0x2FFFF),
)
segment = (
    st.lists(_SEGMENT_CHARS, min_size=1, max_size=8)
    .map(lambda parts: unicodedata.normalize("NFC", "".join(parts)))
    .filter(lambda s: s not in ("", ".", ".."))
)
payload_path = st.lists(segment, min_size=1, max_size=3).map(lambda s: "data/" + "/".join(s))
sha256 = st.binary(max_size=16).map(lambda b: hashlib.sha256(b).hexdigest())


@given(st.text())
def test_encode_decode_inverse(text: str) -> None:
    assert decode_path(encode_path(text)) == text
    assert "\n" not in encode_path(text) and "\r" not in encode_path(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(sha256, payload_path), max_size=6))
def test_manifest_round_trip(entries: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "manifest-sha256.txt"
        with p.open("w", encoding="utf-8", newline="") as f:
            f.writelines(format_manifest_line(d, path) for d, path in entries)
        findings: list[BagFinding] = []
        text = TagText(p, "utf-8")
        got = [
            (e.digest, e.path)
            for e in read_manifest(text, "sha256", findings, kind="payload", file=p.name)
        ]
    assert got == entries
    assert not [f for f in findings if f.is_error]


_LABEL_CHARS = st.characters(exclude_categories=["Cc", "Cs"], exclude_characters=":")
label = st.text(_LABEL_CHARS, min_size=1, max_size=20).filter(lambda s: s == s.strip() and s != "")
_VALUE_CHARS = st.one_of(
    st.sampled_from(list(" \t\n\r:")),
    st.characters(exclude_categories=["Cc", "Cs"]),
)
value = st.lists(_VALUE_CHARS, max_size=40).map("".join)


@given(value)
def test_canonical_value_is_idempotent(v: str) -> None:
    assert canonical_value(canonical_value(v)) == canonical_value(v)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(label, value), max_size=8))
def test_bag_info_round_trip(pairs: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "bag-info.txt"
        write_bag_info(p, pairs)
        info, problems = read_bag_info(p, "utf-8", strict=True)
    assert [f for f in problems if f.code != "BAG205"] == []
    assert info.pairs == [(k, canonical_value(v)) for k, v in pairs]
