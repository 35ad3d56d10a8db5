"""Manifest and fetch.txt lines: separators, percent-encoding, paths, line numbers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from preservation.bags.findings import BagFinding
from preservation.bags.manifest import (
    FetchEntry,
    ManifestEntry,
    ManifestKind,
    decode_path,
    encode_path,
    format_fetch_line,
    format_manifest_line,
    read_fetch,
    read_manifest,
)
from preservation.bags.tagfiles import TagText

MD5_A = hashlib.md5(b"a").hexdigest()


def read(
    tmp_path: Path,
    data: bytes,
    kind: ManifestKind = "payload",
    algorithm: str = "md5",
    decode_percent: bool = True,
) -> tuple[list[ManifestEntry], list[BagFinding]]:
    p = tmp_path / f"manifest-{algorithm}.txt"
    p.write_bytes(data)
    findings: list[BagFinding] = []
    text = TagText(p, "utf-8")
    entries = list(
        read_manifest(
            text, algorithm, findings, kind=kind, file=p.name, decode_percent=decode_percent
        )
    )
    return entries, findings


def test_decode_only_cr_lf_percent() -> None:
    assert decode_path("data/a%0Ab%0dc%25d%7Ee%20f") == "data/a\nb\rc%d%7Ee%20f"
    assert decode_path("data/%2525") == "data/%25"
    assert decode_path("data/a%25b%0A", decode_percent=False) == "data/a%25b\n"
    assert encode_path("data/100%\r\n") == "data/100%25%0D%0A"


def test_separators_and_line_ends(tmp_path: Path) -> None:
    data = (
        f"{MD5_A} data/one\r\n"
        f"{MD5_A.upper()}\t\tdata/two words.txt\n"
        f"{MD5_A}    data/three\r"
        f"\r\n"
        f"{MD5_A}  data/trailing space \n"
    ).encode()
    entries, findings = read(tmp_path, data)
    assert findings == []
    assert [(e.line, e.path) for e in entries] == [
        (1, "data/one"),
        (2, "data/two words.txt"),
        (3, "data/three"),
        (5, "data/trailing space "),
    ]
    assert {e.digest for e in entries} == {MD5_A}


def test_bad_lines_are_reported_with_line_numbers(tmp_path: Path) -> None:
    data = (
        f"{MD5_A}\n"  # no path
        f"{MD5_A[:-1]}  data/short\n"  # wrong length
        f"{'z' * 32}  data/nothex\n"
        f"{MD5_A}  data/good\n"
    ).encode()
    entries, findings = read(tmp_path, data)
    assert [(f.code, f.line) for f in findings] == [("BAG302", 1), ("BAG302", 2), ("BAG302", 3)]
    assert all(f.file == "manifest-md5.txt" for f in findings)
    assert [e.path for e in entries] == ["data/good"]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../../../README.md", "BAG303"),
        ("data/../../x", "BAG303"),
        ("/tmp/foo", "BAG303"),
        ("~/foo", "BAG303"),
        ("~root/foo", "BAG303"),
        ("C:/Windows/x", "BAG303"),
        ("data\\x", "BAG303"),
        ("data//x", "BAG303"),
        ("data/./x", "BAG303"),
    ],
)
def test_unsafe_paths_are_errors_and_dropped(tmp_path: Path, path: str, code: str) -> None:
    entries, findings = read(tmp_path, f"{MD5_A}  {path}\n".encode())
    assert entries == []
    assert [(f.code, f.severity) for f in findings] == [(code, "error")]


def test_encoded_newline_is_legal_but_not_portable(tmp_path: Path) -> None:
    entries, findings = read(tmp_path, f"{MD5_A}  data/Icon%0D\n".encode())
    assert [e.path for e in entries] == ["data/Icon\r"]
    assert [(f.code, f.severity) for f in findings] == [("BAG304", "warning")]


def test_tolerated_prefixes(tmp_path: Path) -> None:
    entries, findings = read(tmp_path, f"{MD5_A} *data/a\n{MD5_A}  ./data/b\n".encode())
    assert [e.path for e in entries] == ["data/a", "data/b"]
    assert [(f.code, f.line, f.severity) for f in findings] == [
        ("BAG309", 1, "warning"),
        ("BAG308", 2, "warning"),
    ]


def test_literal_form_kept_when_decoding_changes_the_path(tmp_path: Path) -> None:
    entries, _ = read(tmp_path, f"{MD5_A}  data/a%25b\n{MD5_A}  data/plain\n".encode())
    assert [(e.path, e.literal) for e in entries] == [
        ("data/a%b", "data/a%25b"),
        ("data/plain", None),
    ]
    entries, _ = read(tmp_path, f"{MD5_A}  data/a%25b\n".encode(), decode_percent=False)
    assert [(e.path, e.literal) for e in entries] == [("data/a%25b", None)]


def test_payload_and_tag_manifests_keep_to_their_side(tmp_path: Path) -> None:
    entries, findings = read(tmp_path, f"{MD5_A}  bag-info.txt\n".encode(), kind="payload")
    assert entries == [] and [f.code for f in findings] == ["BAG305"]
    entries, findings = read(tmp_path, f"{MD5_A}  data/x\n".encode(), kind="tag")
    assert entries == [] and [f.code for f in findings] == ["BAG314"]
    entries, findings = read(tmp_path, f"{MD5_A}  metadata/mets.xml\n".encode(), kind="tag")
    assert [e.path for e in entries] == ["metadata/mets.xml"] and findings == []


def test_undecodable_lines_are_reported_and_reading_goes_on(tmp_path: Path) -> None:
    data = f"{MD5_A}  data/a\n".encode() + b"\xff\xff  data/b\n" + f"{MD5_A}  data/c\n".encode()
    entries, findings = read(tmp_path, data)
    assert [e.path for e in entries] == ["data/a", "data/c"]
    assert [(f.code, f.line) for f in findings] == [("BAG316", 2)]


def test_unknown_algorithm_digest_only_hex_checked(tmp_path: Path) -> None:
    entries, findings = read(tmp_path, b"abcdef  data/a\n", algorithm="blake3")
    assert findings == [] and entries[0].digest == "abcdef"


def test_format_manifest_line() -> None:
    assert format_manifest_line(MD5_A.upper(), "data/a b%\n") == f"{MD5_A}  data/a b%25%0A\n"


# --------------------------------------------------------------------------- fetch.txt


def read_fetch_file(tmp_path: Path, data: bytes) -> tuple[list[FetchEntry], list[BagFinding]]:
    p = tmp_path / "fetch.txt"
    p.write_bytes(data)
    findings: list[BagFinding] = []
    return list(read_fetch(TagText(p, "utf-8"), findings)), findings


def test_fetch_lines(tmp_path: Path) -> None:
    data = (
        b"http://127.0.0.1:8989/a - data/test 1.txt\r\n"
        b"s3://bucket/aip/v1/data/b\t42\tdata/b%25c\n"
        b"not-a-url 1 data/c\n"
        b"http://127.0.0.1/d x1 data/d\n"
        b"http://127.0.0.1/e 1\n"
        b"http://127.0.0.1/f 1 ../../etc/passwd\n"
        b"http://127.0.0.1/g 1 bag-info.txt\n"
    )
    entries, findings = read_fetch_file(tmp_path, data)
    assert entries == [
        FetchEntry(1, "http://127.0.0.1:8989/a", None, "data/test 1.txt"),
        FetchEntry(2, "s3://bucket/aip/v1/data/b", 42, "data/b%c"),
    ]
    assert [(f.code, f.line) for f in findings] == [
        ("BAG601", 3),
        ("BAG601", 4),
        ("BAG601", 5),
        ("BAG303", 6),
        ("BAG603", 7),
    ]


def test_format_fetch_line() -> None:
    assert format_fetch_line("s3://b/k", 3, "data/a%") == "s3://b/k 3 data/a%25\n"
    assert format_fetch_line("s3://b/k", None, "data/a") == "s3://b/k - data/a\n"
    with pytest.raises(ValueError):
        format_fetch_line("relative/url", 1, "data/a")
