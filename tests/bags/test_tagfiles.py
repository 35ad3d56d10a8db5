"""bagit.txt and bag-info.txt: strictness by version, encodings, continuation lines."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from preservation.bags.tagfiles import (
    TagText,
    canonical_value,
    format_bag_info,
    parse_bag_info,
    parse_bagit_txt,
    read_bag_info,
    read_bagit_txt,
    write_bag_info,
)
from preservation.errors import UsageError


def codes(findings: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {f.code: f.severity for f in findings}


# --------------------------------------------------------------------------- bagit.txt


def test_bagit_txt_well_formed() -> None:
    decl, problems = parse_bagit_txt(b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    assert problems == []
    assert (decl.version, decl.version_tuple, decl.encoding, decl.codec) == (
        "1.0",
        (1, 0),
        "UTF-8",
        "utf-8",
    )
    assert decl.strict


def test_bagit_txt_crlf_without_final_newline() -> None:
    decl, problems = parse_bagit_txt(b"BagIt-Version: 0.97\r\nTag-File-Character-Encoding: UTF-8")
    assert problems == []
    assert decl.version_tuple == (0, 97)
    assert not decl.strict


def test_bagit_txt_bom_is_an_error() -> None:
    decl, problems = parse_bagit_txt(
        b"\xef\xbb\xbfBagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n"
    )
    assert codes(problems) == {"BAG103": "error"}
    assert decl.version == "0.97"


def test_bagit_txt_missing_lines() -> None:
    _, problems = parse_bagit_txt(b"BagIt-Version: 0.97\n")
    assert codes(problems) == {"BAG106": "error"}
    _, problems = parse_bagit_txt(b"Tag-File-Character-Encoding: UTF-8\n")
    assert "BAG105" in codes(problems)


@pytest.mark.parametrize(
    ("text", "severity"),
    [
        (b"BagIt-Version : 1.0\nTag-File-Character-Encoding : UTF-8\n", "error"),
        (b"BagIt-Version : 0.97\nTag-File-Character-Encoding : UTF-8\n", "warning"),
        (b"BagIt-Version: 1.0 \nTag-File-Character-Encoding: UTF-8\n", "error"),
        (b"BagIt-Version:  1.0\nTag-File-Character-Encoding: UTF-8\n", "error"),
        (b"BagIt-Version:   0.96\nTag-File-Character-Encoding: UTF-8\n", "warning"),
    ],
)
def test_bagit_txt_whitespace_is_strict_from_1_0(text: bytes, severity: str) -> None:
    _, problems = parse_bagit_txt(text)
    assert codes(problems) == {"BAG104": severity}
    assert problems[0].line == 1


def test_bagit_txt_bad_values_and_lines() -> None:
    _, problems = parse_bagit_txt(
        b"BagIt-Version: .97\nTag-File-Character-Encoding: NO-SUCH-CODEC\nExtra: 1\n"
    )
    assert codes(problems) == {"BAG105": "error", "BAG106": "error", "BAG104": "error"}
    assert next(f for f in problems if f.code == "BAG104").line == 3
    _, problems = parse_bagit_txt(b"BagIt-Version: 3.1\nTag-File-Character-Encoding: UTF-8\n")
    assert codes(problems) == {"BAG107": "warning"}
    _, problems = parse_bagit_txt(b"Tag-File-Character-Encoding: UTF-8\nBagIt-Version: 1.0\n")
    assert codes(problems) == {"BAG104": "error"}


def test_read_bagit_txt_digests_the_bytes(tmp_path: Path) -> None:
    data = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    (tmp_path / "bagit.txt").write_bytes(data)
    decl, problems = read_bagit_txt(tmp_path / "bagit.txt", ("md5", "sha256"))
    assert problems == []
    assert decl.digests == {
        "md5": hashlib.md5(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


# --------------------------------------------------------------------------- bag-info


def lines(text: str) -> list[tuple[int, str]]:
    return list(enumerate(text.splitlines(), 1))


def test_bag_info_continuation_and_repeats() -> None:
    text = (
        "Source-Organization: Spengler University\n"
        "External-Description: Uncompressed greyscale TIFF images from the\n"
        "         Yoshimuri papers collection.\n"
        "Contact-Name: Edna\n"
        "\n"
        "Contact-Name: Janssen\n"
        "contact-name: lower\n"
    )
    info, problems = parse_bag_info(lines(text), strict=True)
    assert problems == []
    assert info.as_dict() == {
        "Source-Organization": "Spengler University",
        "External-Description": (
            "Uncompressed greyscale TIFF images from the\nYoshimuri papers collection."
        ),
        "Contact-Name": ["Edna", "Janssen"],
        "contact-name": "lower",
    }
    assert info.values("CONTACT-NAME") == ["Edna", "Janssen", "lower"]
    assert [label for label, _ in info.pairs][:2] == ["Source-Organization", "External-Description"]


def test_bag_info_old_separators_accepted_before_1_0() -> None:
    text = "Test-Tag: 1\nTest-Tag:   2\nTest-Tag : 3\nTest-Tag    :   5\n"
    info, problems = parse_bag_info(lines(text), strict=False)
    assert problems == []
    assert info.as_dict() == {"Test-Tag": ["1", "2", "3", "5"]}


def test_bag_info_separators_in_1_0() -> None:
    info, problems = parse_bag_info(lines("Test-Tag : 3\nOther:   4\n"), strict=True)
    assert codes(problems) == {"BAG203": "error", "BAG204": "warning"}
    assert [f.line for f in problems] == [1, 2]
    assert info.as_dict() == {"Test-Tag": "3", "Other": "4"}


def test_bag_info_malformed_lines_are_all_reported() -> None:
    text = "  orphan continuation\nno colon here\nGood: yes\n: no label\n"
    info, problems = parse_bag_info(lines(text), strict=True)
    assert [(f.code, f.line) for f in problems] == [("BAG202", 1), ("BAG202", 2), ("BAG202", 4)]
    assert info.as_dict() == {"Good": "yes"}


@pytest.mark.parametrize(
    "text",
    ["Payload-Oxum: 12\n", "Payload-Oxum: 1.2\npayload-oxum: 1.2\n", "Payload-Oxum: a.b\n"],
)
def test_bag_info_bad_payload_oxum(text: str) -> None:
    info, problems = parse_bag_info(lines(text), strict=True)
    assert codes(problems) == {"BAG205": "error"}
    assert info.payload_oxum() is None


def test_bag_info_payload_oxum() -> None:
    info, _ = parse_bag_info(lines("Payload-Oxum: 1024.3\n"), strict=True)
    assert info.payload_oxum() == (1024, 3)


@pytest.mark.parametrize("encoding", ["utf-8", "iso-8859-1", "utf-16"])
def test_read_bag_info_in_declared_encoding(tmp_path: Path, encoding: str) -> None:
    text = "Source-Organization: Archives municipales de Besançon\r\nContact-Name: Zoë\r\n"
    data = text.encode(encoding)  # utf-16 writes a BOM
    p = tmp_path / "bag-info.txt"
    p.write_bytes(data)
    info, problems = read_bag_info(p, encoding, strict=True, algorithms=("sha256",))
    assert problems == []
    assert info.as_dict()["Contact-Name"] == "Zoë"
    assert info.digests == {"sha256": hashlib.sha256(data).hexdigest()}


def test_read_bag_info_utf8_bom_is_a_warning(tmp_path: Path) -> None:
    p = tmp_path / "bag-info.txt"
    p.write_bytes(b"\xef\xbb\xbfContact-Name: X\n")
    info, problems = read_bag_info(p, "utf-8", strict=True)
    assert codes(problems) == {"BAG206": "warning"}
    assert info.as_dict() == {"Contact-Name": "X"}


def test_read_bag_info_decoding_error_names_the_line_and_still_digests(tmp_path: Path) -> None:
    data = b"A: 1\nB: 2\nC: \xff\xfe bad\nD: 4\n"
    p = tmp_path / "bag-info.txt"
    p.write_bytes(data)
    info, problems = read_bag_info(p, "utf-8", strict=True, algorithms=("md5",))
    assert [(f.code, f.line) for f in problems] == [("BAG201", 3)]
    assert info.as_dict() == {"A": "1", "B": "2", "D": "4"}
    assert info.digests == {"md5": hashlib.md5(data).hexdigest()}


def test_truncated_utf16_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "bag-info.txt"
    p.write_bytes("A: 1\nB: 2\n".encode("utf-16") + b"\x00")
    info, problems = read_bag_info(p, "utf-16", strict=True)
    assert [f.code for f in problems] == ["BAG201"]
    assert info.as_dict() == {"A": "1", "B": "2"}


def test_tag_text_handles_cr_only_line_ends(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_bytes(b"one\rtwo\r\nthree\nfour")
    with TagText(p, "utf-8") as t:
        assert list(t.lines()) == [(1, "one"), (2, "two"), (3, "three"), (4, "four")]


# --------------------------------------------------------------------------- writing


def test_format_bag_info_keeps_order_and_continues_lines() -> None:
    out = "".join(
        format_bag_info(
            [
                ("Source-Organization", "Archive"),
                ("External-Description", "line one\r\n   line two  \n\nline three"),
                ("Source-Organization", "Second"),
                ("Empty", ""),
            ]
        )
    )
    assert out == (
        "Source-Organization: Archive\n"
        "External-Description: line one\n"
        "  line two\n"
        "  line three\n"
        "Source-Organization: Second\n"
        "Empty:\n"
    )


def test_format_bag_info_from_mapping_with_lists() -> None:
    out = "".join(format_bag_info({"B": "2", "A": ["x", "y"]}))
    assert out == "B: 2\nA: x\nA: y\n"


@pytest.mark.parametrize("label", ["", " Lead", "Trail ", "Co:lon", "New\nline"])
def test_bad_labels_refused(label: str) -> None:
    with pytest.raises(UsageError):
        list(format_bag_info([(label, "v")]))


def test_control_characters_in_values_refused() -> None:
    with pytest.raises(UsageError):
        canonical_value("bell\x07")
    assert canonical_value("tab\tinside") == "tab\tinside"


def test_write_then_read(tmp_path: Path) -> None:
    pairs = [("Title", "题名 and more"), ("Note", "first\nsecond")]
    p = tmp_path / "bag-info.txt"
    write_bag_info(p, pairs)
    info, problems = read_bag_info(p, "utf-8", strict=True)
    assert problems == []
    assert info.pairs == pairs
