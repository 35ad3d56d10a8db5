"""One-pass hashing and safe keys, including Hypothesis properties."""

from __future__ import annotations

import hashlib
import io
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preservation.errors import DigestMismatch, InvalidKey, UnsafePath, UsageError
from preservation.hashing import HashingReader, hash_file, hash_stream, verify_digests
from preservation.paths import join_key, safe_relpath, validate_key


@given(st.binary(max_size=5000), st.integers(min_value=1, max_value=97))
def test_hash_stream_matches_hashlib(data: bytes, block: int) -> None:
    digests, size = hash_stream(io.BytesIO(data), ["sha256", "sha512", "md5"], block)
    assert size == len(data)
    assert digests["sha256"] == hashlib.sha256(data).hexdigest()
    assert digests["sha512"] == hashlib.sha512(data).hexdigest()
    assert digests["md5"] == hashlib.md5(data).hexdigest()


def test_hashing_reader_and_file(tmp_path: Path) -> None:
    data = b"x" * 3_000_001
    p = tmp_path / "f"
    p.write_bytes(data)
    assert hash_file(p, ["sha256"])[0]["sha256"] == hashlib.sha256(data).hexdigest()
    r = HashingReader(io.BytesIO(data), ["sha512"])
    while r.read(65536):
        pass
    assert r.hexdigests()["sha512"] == hashlib.sha512(data).hexdigest() and r.size == len(data)


def test_unknown_algorithm() -> None:
    with pytest.raises(UsageError):
        hash_stream(io.BytesIO(b""), ["crc99"])


def test_verify_digests() -> None:
    verify_digests("f", {"sha256": "AB"}, {"sha256": "ab"})
    with pytest.raises(DigestMismatch, match="f: sha256 expected ab, found cd"):
        verify_digests("f", {"sha256": "ab"}, {"sha256": "cd"})


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "a/../b",
        "/abs",
        "a\\b",
        "a//b",
        "./a",
        "",
        "a/\x01",
        "~home",
        "C:/x",
        unicodedata.normalize("NFD", "café"),
    ],
)
def test_bad_keys(key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)


def test_good_keys() -> None:
    assert validate_key("aip/v1/data/档案 1.pdf") == "aip/v1/data/档案 1.pdf"
    assert join_key("/a/", "b", "", "c/d") == "a/b/c/d"


def test_safe_relpath_normalises_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "résumé.txt")
    assert safe_relpath(nfd) == unicodedata.normalize("NFC", nfd)
    with pytest.raises(UnsafePath):
        safe_relpath("../etc/passwd")


@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12),
        min_size=1,
        max_size=4,
    )
)
def test_validate_key_never_accepts_dot_segments(parts: list[str]) -> None:
    key = "/".join(parts)
    try:
        validate_key(key)
    except InvalidKey:
        return
    segs = key.split("/")
    assert ".." not in segs and "." not in segs and "" not in segs
    assert "\\" not in key and not key.startswith("/")
    assert unicodedata.is_normalized("NFC", key)
