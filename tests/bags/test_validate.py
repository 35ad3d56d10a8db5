"""validate_bag on bags built here: every finding named, cheapest checks first.

Where bagit-python has an opinion, it is asked too (``bagit.Bag(path).validate()``)
and must agree on valid/invalid.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bagit
import pytest

from preservation.bags import CODES, BagWriter, validate_bag
from preservation.bags.validate import BagReport
from preservation.errors import BagInvalid
from tests.bags.conftest import BagFactory, flip_byte, write_files


def bagit_python_valid(path: Path) -> bool:
    try:
        bagit.Bag(str(path)).validate()
    except (bagit.BagError, ValueError):  # it lets UnicodeDecodeError through
        return False
    return True


def where(report: BagReport, code: str) -> set[str | None]:
    return {f.file for f in report.findings if f.code == code}


def show(report: BagReport) -> str:
    return "\n".join(map(str, report.findings))


def validate_listing(bag: Path, **kw: Any) -> tuple[BagReport, dict[str, dict[str, str]]]:
    """The report and the payload entries handed to ``on_entries``."""
    entries: dict[str, dict[str, str]] = {}
    report = validate_bag(bag, on_entries=entries.update, **kw)
    return report, entries


def test_valid_bag(make_bag: BagFactory) -> None:
    bag = make_bag({"a.txt": b"hello\n", "sub/b c.bin": b"\x00" * 10, "题名.txt": b"x"})
    report, entries = validate_listing(bag)
    assert report.valid, show(report)
    assert report.findings == []
    assert report.checked == "full"
    assert report.version == "1.0" and report.encoding == "UTF-8"
    assert report.algorithms == ["sha256", "sha512"] == report.tag_algorithms
    assert report.payload_oxum == "17.3"
    assert (report.payload_files, report.payload_bytes) == (3, 17)
    assert set(entries) == {"data/a.txt", "data/sub/b c.bin", "data/题名.txt"}
    assert entries["data/a.txt"] == {
        "sha256": hashlib.sha256(b"hello\n").hexdigest(),
        "sha512": hashlib.sha512(b"hello\n").hexdigest(),
    }
    assert report.info["Source-Organization"] == "Municipal Archive"
    assert bagit_python_valid(bag)
    report.raise_for_errors()  # nothing to raise


def test_bag_made_by_bagit_python_is_valid(tmp_path: Path) -> None:
    write_files(tmp_path, {"x/y.txt": b"data", "Icon\r": b""})
    bagit.make_bag(str(tmp_path), {"Contact-Name": "Tester"}, checksums=["sha256", "sha512"])
    report = validate_bag(tmp_path)
    assert report.valid, show(report)
    assert report.version == "0.97"
    # legal BagIt, not portable: a CR in a name, and an OS junk file
    assert report.codes() == {"BAG304", "BAG508"}


def test_corrupt_payload_file_is_named(make_bag: BagFactory) -> None:
    bag = make_bag({"a.txt": b"hello\n", "b.txt": b"world\n"})
    flip_byte(bag / "data" / "b.txt", 2)
    report = validate_bag(bag)
    assert not report.valid
    assert report.codes("error") == {"BAG701"}
    assert where(report, "BAG701") == {"data/b.txt"}
    assert len(report.errors) == 2  # sha256 and sha512 both disagree
    assert not bagit_python_valid(bag)
    with pytest.raises(BagInvalid) as e:
        report.raise_for_errors()
    assert e.value.code == "BAG001"
    assert e.value.findings == report.errors


def test_corrupt_tag_file_is_named(make_bag: BagFactory) -> None:
    bag = make_bag()
    flip_byte(bag / "bag-info.txt", 0)  # 'S' becomes a byte that is not UTF-8
    report = validate_bag(bag)
    assert report.codes("error") == {"BAG201", "BAG702"}
    assert where(report, "BAG702") == {"bag-info.txt"}
    assert [f.line for f in report.findings if f.code == "BAG201"] == [1]
    assert not bagit_python_valid(bag)


def test_missing_and_extra_payload(make_bag: BagFactory) -> None:
    bag = make_bag({"a.txt": b"a", "b.txt": b"bb"})
    (bag / "data" / "a.txt").unlink()
    (bag / "data" / "new.txt").write_bytes(b"new")
    report = validate_bag(bag)
    assert report.codes("error") == {"BAG501", "BAG502", "BAG402"}
    assert where(report, "BAG501") == {"data/a.txt"}
    assert where(report, "BAG502") == {"data/new.txt"}
    assert not bagit_python_valid(bag)


def test_fast_stops_after_payload_oxum(make_bag: BagFactory) -> None:
    bag = make_bag({"a.txt": b"hello"})
    flip_byte(bag / "data" / "a.txt")  # same size: only digests can tell
    fast = validate_bag(bag, fast=True)
    assert fast.valid and fast.checked == "fast"
    (bag / "data" / "a.txt").write_bytes(b"hello, longer")
    fast = validate_bag(bag, fast=True)
    assert fast.codes("error") == {"BAG402"}
    assert where(fast, "BAG402") == {"bag-info.txt"}


def test_fast_without_payload_oxum_warns(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    write_files(bag, {"data/a": b"a"})
    with BagWriter(bag) as w:
        w.add_payload("a", 1, {a: hashlib.new(a, b"a").hexdigest() for a in w.algorithms})
        w.finish()
    text = (bag / "bag-info.txt").read_text().replace("Payload-Oxum: 1.1\n", "")
    (bag / "bag-info.txt").write_text(text)
    report = validate_bag(bag, fast=True)
    assert report.codes() == {"BAG403"} and report.valid


def test_completeness_only_skips_digests(make_bag: BagFactory) -> None:
    bag = make_bag({"a.txt": b"hello", "b.txt": b"b"})
    flip_byte(bag / "data" / "a.txt")
    report = validate_bag(bag, completeness_only=True)
    assert report.valid and report.checked == "completeness"
    (bag / "data" / "b.txt").unlink()
    report = validate_bag(bag, completeness_only=True)
    assert where(report, "BAG501") == {"data/b.txt"}


@pytest.mark.parametrize("mode", ["processes", "threads"])
def test_parallel_digests_agree_with_sequential(make_bag: BagFactory, mode: str) -> None:
    files = {f"f{i:02d}.bin": os.urandom(1000 + i) for i in range(12)}
    bag = make_bag(files)
    flip_byte(bag / "data" / "f03.bin", 5)
    flip_byte(bag / "data" / "f07.bin", 7)
    flip_byte(bag / "tagmanifest-sha256.txt", 3)
    sequential = validate_bag(bag)
    if mode == "processes":
        parallel = validate_bag(bag, processes=2)
    else:
        with ThreadPoolExecutor(max_workers=3) as pool:
            parallel = validate_bag(bag, executor=pool)
    assert parallel.findings == sequential.findings
    assert where(sequential, "BAG701") == {"data/f03.bin", "data/f07.bin"}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_every_payload_file_in_every_manifest(make_bag: BagFactory) -> None:
    bag = make_bag({"a.txt": b"a", "b.txt": b"b"})
    manifest = bag / "manifest-sha512.txt"
    manifest.write_text(
        "".join(x for x in manifest.read_text().splitlines(True) if "b.txt" not in x)
    )
    report = validate_bag(bag, completeness_only=True)
    assert [(f.code, f.severity, f.file) for f in report.findings] == [
        ("BAG503", "error", "data/b.txt")
    ]
    _edit(bag / "bagit.txt", "BagIt-Version: 1.0", "BagIt-Version: 0.97")
    report = validate_bag(bag, completeness_only=True)
    assert [(f.code, f.severity) for f in report.findings] == [("BAG503", "warning")]


def test_duplicate_entries(make_bag: BagFactory) -> None:
    bag = make_bag({"a.txt": b"a"})
    manifest = bag / "manifest-sha256.txt"
    line = manifest.read_text()
    manifest.write_text(line + line)
    report = validate_bag(bag, completeness_only=True)
    assert [(f.code, f.severity, f.line) for f in report.findings] == [("BAG307", "error", 2)]
    manifest.write_text(line + "0" * 64 + "  data/a.txt\n")
    report = validate_bag(bag, completeness_only=True)
    assert [(f.code, f.severity, f.line) for f in report.findings] == [("BAG306", "error", 2)]


def test_fetch_allows_absent_files_only_when_listed(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    write_files(bag, {"data/here.txt": b"here"})
    with BagWriter(bag) as w:
        for name, content, url in [
            ("here.txt", b"here", None),
            ("old.txt", b"from v1", "s3://archive/aip/v1/data/old.txt"),
        ]:
            digests = {a: hashlib.new(a, content).hexdigest() for a in w.algorithms}
            w.add_payload(name, len(content), digests, fetch_url=url)
        w.finish()
    report = validate_bag(bag)
    assert report.valid, show(report)
    assert report.codes() == {"BAG605"}
    assert report.unfetched == ["data/old.txt"]
    assert report.payload_oxum == "11.2"  # the fetched file counts
    assert [e.url for e in report.fetch] == ["s3://archive/aip/v1/data/old.txt"]

    (bag / "data" / "here.txt").unlink()
    report = validate_bag(bag)
    assert where(report, "BAG501") == {"data/here.txt"}

    (bag / "data" / "old.txt").write_bytes(b"from v1, but longer")
    report = validate_bag(bag)
    assert where(report, "BAG606") == {"data/old.txt"}


def test_fetch_entry_must_be_in_every_manifest(make_bag: BagFactory) -> None:
    bag = make_bag({"a.txt": b"a"})
    (bag / "fetch.txt").write_text("http://127.0.0.1:9/x 1 data/x\n")
    report = validate_bag(bag, completeness_only=True)
    assert [(f.file, f.line) for f in report.errors if f.code == "BAG604"] == [("fetch.txt", 1)]
    # the absent fetched file counts in the payload: one file and one octet too many
    assert report.codes("error") == {"BAG604", "BAG401", "BAG402"}
    assert report.codes("warning") == {"BAG505"}  # fetch.txt is not in the tag manifests


def test_unsafe_paths_never_read(make_bag: BagFactory, tmp_path: Path) -> None:
    bag = make_bag({"a.txt": b"a"})
    secret = bag.parent / "secret.txt"
    secret.write_bytes(b"outside")
    digest = hashlib.sha256(b"outside").hexdigest()
    with (bag / "manifest-sha256.txt").open("a") as f:
        f.write(f"{digest}  data/../../secret.txt\n{digest}  {secret}\n")
    report, entries = validate_listing(bag)
    assert [(f.code, f.line) for f in report.findings if f.code == "BAG303"] == [
        ("BAG303", 2),
        ("BAG303", 3),
    ]
    assert set(entries) == {"data/a.txt"}


def test_symlinks_are_reported_not_followed(make_bag: BagFactory) -> None:
    bag = make_bag({"a.txt": b"a"})
    outside = bag.parent / "outside.txt"
    outside.write_bytes(b"outside")
    (bag / "data" / "link.txt").symlink_to(outside)
    report = validate_bag(bag)
    assert where(report, "BAG506") == {"data/link.txt"}
    assert "BAG502" not in report.codes()  # a link is not a payload file


def test_structure_problems(tmp_path: Path) -> None:
    report = validate_bag(tmp_path / "nothing")
    assert report.codes() == {"BAG109"} and report.checked == "none"
    (tmp_path / "empty").mkdir()
    report = validate_bag(tmp_path / "empty")
    assert report.codes("error") == {"BAG101", "BAG108", "BAG301"}


def test_unsupported_algorithm(make_bag: BagFactory) -> None:
    bag = make_bag({"a.txt": b"a"}, algorithms=("sha256",))
    (bag / "manifest-sha256.txt").rename(bag / "manifest-blake3.txt")
    report = validate_bag(bag, completeness_only=True)
    assert report.codes("warning") >= {"BAG313"}
    assert "BAG301" in report.codes("error")


def test_weak_algorithms_warn(make_bag: BagFactory) -> None:
    bag = make_bag({"a.txt": b"a"}, algorithms=("md5",))
    report = validate_bag(bag)
    assert report.valid and report.codes() == {"BAG312"}


def test_percent_encoding(make_bag: BagFactory, tmp_path: Path) -> None:
    bag = make_bag({"100% sure.txt": b"a", "a%0Ab.txt": b"b"})
    assert "data/100%25 sure.txt" in (bag / "manifest-sha256.txt").read_text()
    report, entries = validate_listing(bag)
    assert report.valid and report.findings == [], show(report)
    assert set(entries) == {"data/100% sure.txt", "data/a%0Ab.txt"}
    # bagit-python does not decode %25 (LibraryOfCongress/bagit-python#157): it looks
    # for 'data/100%25 sure.txt'. Our bags follow RFC 8493 2.1.3 here.
    assert not bagit_python_valid(bag)


def test_unencoded_percent_from_other_tools_is_found(tmp_path: Path) -> None:
    """A 1.0 bag whose writer did not encode '%': the literal name is used, with a warning."""
    bag = tmp_path / "bag"
    write_files(bag, {"data/a%25b.txt": b"x"})
    (bag / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    digest = hashlib.sha256(b"x").hexdigest()
    (bag / "manifest-sha256.txt").write_text(f"{digest}  data/a%25b.txt\n")
    report = validate_bag(bag)
    assert report.valid, show(report)
    assert report.codes() == {"BAG507"}


def test_other_normalisation_on_disk(tmp_path: Path) -> None:
    nfc = unicodedata.normalize("NFC", "Núñez.txt")
    nfd = unicodedata.normalize("NFD", nfc)
    bag = tmp_path / "bag"
    write_files(bag, {f"data/{nfc}": b"x"})
    (bag / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    (bag / "manifest-sha256.txt").write_text(
        f"{hashlib.sha256(b'x').hexdigest()}  data/{nfd}\n", encoding="utf-8"
    )
    report = validate_bag(bag)
    assert report.valid, show(report)
    assert report.codes() == {"BAG507"}
    flip_byte(bag / "data" / nfc)
    assert validate_bag(bag).codes("error") == {"BAG701"}


def test_unlisted_tag_files_warn(make_bag: BagFactory) -> None:
    bag = make_bag()
    (bag / "notes.txt").write_text("stray")
    report = validate_bag(bag)
    assert report.valid
    assert where(report, "BAG505") == {"notes.txt"}
    (bag / "bag-info.txt").unlink()
    report = validate_bag(bag)
    assert where(report, "BAG504") == {"bag-info.txt"}


def test_every_code_has_a_description() -> None:
    assert all(code.startswith("BAG") and len(code) == 6 for code in CODES)
    assert all(CODES.values())


def test_tag_manifest_listing_a_tag_manifest(make_bag: BagFactory) -> None:
    bag = make_bag()
    digest = hashlib.sha256((bag / "tagmanifest-sha512.txt").read_bytes()).hexdigest()
    with (bag / "tagmanifest-sha256.txt").open("a") as f:
        f.write(f"{digest}  tagmanifest-sha512.txt\n")
    report = validate_bag(bag)
    assert [(f.code, f.severity) for f in report.findings] == [("BAG315", "error")]


def test_fetch_problems(make_bag: BagFactory) -> None:
    bag = make_bag({"a.txt": b"a"})
    digest = {a: hashlib.new(a, b"gone").hexdigest() for a in ("sha256", "sha512")}
    for alg in ("sha256", "sha512"):
        with (bag / f"manifest-{alg}.txt").open("a") as f:
            f.write(f"{digest[alg]}  data/gone.txt\n")
    (bag / "fetch.txt").write_bytes(
        b"http://127.0.0.1:9/g - data/gone.txt\n"
        b"http://127.0.0.1:9/g - data/gone.txt\n"
        b"http://127.0.0.1:9/\xff 1 data/x\n"
    )
    report = validate_bag(bag, completeness_only=True)
    assert [(f.code, f.line) for f in report.findings if f.file == "fetch.txt"] == [
        ("BAG607", 2),
        ("BAG602", 3),
        ("BAG404", None),
        ("BAG505", None),
    ]
    assert report.unfetched == ["data/gone.txt"]


def test_bagit_txt_not_utf8(make_bag: BagFactory) -> None:
    bag = make_bag()
    (bag / "bagit.txt").write_bytes(b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\xff\n")
    assert "BAG102" in validate_bag(bag, fast=True).codes("error")


def test_unreadable_file_is_reported(make_bag: BagFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    from preservation.bags import validate as module
    from preservation.hashing import hash_file as real

    bag = make_bag({"a.txt": b"a", "b.txt": b"b"})

    def flaky(path: Path, algorithms: tuple[str, ...]) -> object:
        if path.name == "b.txt":
            raise PermissionError(13, "Permission denied")
        return real(path, algorithms)

    monkeypatch.setattr(module, "hash_file", flaky)
    report = validate_bag(bag)
    assert [(f.code, f.file) for f in report.findings] == [("BAG703", "data/b.txt")]
