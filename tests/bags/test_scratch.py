"""validate_bag keeps its per-file state in a scratch database, not in memory.

What that must not change: the payload entries handed to ``on_entries`` (in the order
first listed), findings reported where they were read even across the batches the
manifests are stored in, names that are not valid UTF-8, look-alike names; and the
scratch file is gone when validation ends, however it ends.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import pytest

from preservation.bags import validate_bag
from preservation.bags.validate import WRITE_BATCH
from tests.bags.conftest import BagFactory, write_files


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder the validator's scratch database goes to."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_entries_streamed_in_listed_order_scratch_removed(
    make_bag: BagFactory, scratch: Path
) -> None:
    bag = make_bag({"b.txt": b"b", "a.txt": b"a", "c/d.txt": b"d"})
    manifest = bag / "manifest-sha256.txt"
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(reversed(lines)))  # any order: the order listed is kept
    listed = [line.split("  ", 1)[1].rstrip("\n") for line in reversed(lines)]
    seen: list[str] = []

    def consume(entries: Iterable[tuple[str, dict[str, str]]]) -> None:
        assert [p.suffix for p in scratch.iterdir()] == [".sqlite"]  # still there
        for path, digests in entries:
            seen.append(path)
            assert set(digests) == {"sha256", "sha512"}
            assert digests["sha256"] == sha256((bag / path).read_bytes())

    report = validate_bag(bag, completeness_only=True, on_entries=consume)
    assert report.codes("error") == set()  # the tag manifest is not checked here
    assert seen == listed
    assert list(scratch.iterdir()) == []

    def fail(entries: Iterable[tuple[str, dict[str, str]]]) -> None:
        raise RuntimeError("consumer failed")

    with pytest.raises(RuntimeError, match="consumer failed"):
        validate_bag(bag, on_entries=fail)
    assert list(scratch.iterdir()) == []


def test_not_a_folder_gives_no_entries(tmp_path: Path, scratch: Path) -> None:
    got: list[tuple[str, dict[str, str]]] = []
    report = validate_bag(tmp_path / "nothing", on_entries=got.extend)
    assert report.codes() == {"BAG109"} and got == []
    assert list(scratch.iterdir()) == []


def test_duplicates_across_batches_reported_in_line_order(make_bag: BagFactory) -> None:
    count = 2 * WRITE_BATCH + 10
    bag = make_bag({f"f{i:05d}.txt": b"%d" % i for i in range(count)}, algorithms=("sha256",))
    manifest = bag / "manifest-sha256.txt"
    lines = manifest.read_text().splitlines(keepends=True)
    lines.sort(key=lambda line: line.split("  ", 1)[1])
    path = [line.split("  ", 1)[1] for line in lines]  # data/f00000.txt ...
    other = "0" * 64
    lines.insert(3, lines[0])  # line 4, same digest
    lines.insert(WRITE_BATCH - 1, f"{other}  ./{path[1]}")  # the last of the first batch
    lines.insert(WRITE_BATCH + 5, "not a manifest line\n")
    lines.insert(WRITE_BATCH + 6, f"{other}  {path[WRITE_BATCH + 100]}")  # before its line
    lines.append(lines[WRITE_BATCH + 200])  # same digest, last line
    manifest.write_text("".join(lines))
    report = validate_bag(bag, completeness_only=True)
    n = len(lines)
    assert [(f.code, f.line) for f in report.findings] == [
        ("BAG307", 4),
        ("BAG308", WRITE_BATCH),
        ("BAG306", WRITE_BATCH),
        ("BAG302", WRITE_BATCH + 6),
        ("BAG306", WRITE_BATCH + 105),  # the line made by make_bag, now the second
        ("BAG307", n),
    ]
    # the entries keep the digest listed first
    entries: dict[str, dict[str, str]] = {}
    validate_bag(bag, completeness_only=True, on_entries=entries.update)
    assert len(entries) == count
    assert entries["data/f00001.txt"] == {"sha256": sha256(b"1")}
    assert entries[f"data/f{WRITE_BATCH + 100:05d}.txt"] == {"sha256": other}


def test_name_not_utf8_on_disk(make_bag: BagFactory) -> None:
    bag = make_bag({"a.txt": b"a"})
    name = os.fsdecode(b"data/caf\xe9 \xff.txt")  # Latin-1 bytes: surrogate escapes
    (bag / name).write_bytes(b"x")
    report = validate_bag(bag)
    assert {(f.code, f.file) for f in report.errors} == {
        ("BAG502", name),
        ("BAG401", "bag-info.txt"),
        ("BAG402", "bag-info.txt"),
    }
    # listed with its raw bytes (not UTF-8): that line is reported, the file unlisted
    with (bag / "manifest-sha256.txt").open("ab") as f:
        f.write(sha256(b"x").encode() + b"  " + os.fsencode(name) + b"\n")
    report = validate_bag(bag, completeness_only=True)
    assert {(f.code, f.file, f.line) for f in report.errors} == {
        ("BAG316", "manifest-sha256.txt", 2),
        ("BAG502", name, None),
        ("BAG401", "bag-info.txt", None),
        ("BAG402", "bag-info.txt", None),
    }


def test_look_alikes_named_in_order(tmp_path: Path) -> None:
    nfc = unicodedata.normalize("NFC", "data/é.txt")
    nfd = unicodedata.normalize("NFD", nfc)
    bag = tmp_path / "bag"
    write_files(bag, {nfd: b"e", "data/README.txt": b"r", "data/zz.txt": b"z"})
    (bag / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    listed = [
        ("data/zz.txt", b"z"),
        ("data/readme.txt", b"r"),
        (nfc, b"e"),
        ("data/README.txt", b"r"),
        (nfd, b"e"),
        ("data/Readme.TXT", b"wrong"),
    ]
    text = "".join(f"{sha256(data)}  {path}\n" for path, data in listed)
    (bag / "manifest-sha256.txt").write_text(text, encoding="utf-8")
    report = validate_bag(bag)
    got = [(f.code, f.file, f.message) for f in report.findings]
    assert got == [
        ("BAG311", nfc, f"listed under several Unicode normalisations: {nfc!a}, {nfd!a}"),
        (
            "BAG310",
            "data/readme.txt",
            "names differ only in case (one file on case-insensitive systems):"
            " 'data/readme.txt', 'data/README.txt', 'data/Readme.TXT'",
        ),
        (
            "BAG507",
            "data/readme.txt",
            "listed as 'data/readme.txt' and as 'data/README.txt'; only the latter exists"
            " (names differ in case)",
        ),
        (
            "BAG507",
            nfc,
            f"listed as {nfc!a}; on disk as {nfd!a} (other Unicode normalisation)",
        ),
        (
            "BAG507",
            "data/Readme.TXT",
            "listed as 'data/Readme.TXT' and as 'data/README.txt'; only the latter exists"
            " (names differ in case)",
        ),
        (
            "BAG701",
            "data/Readme.TXT",
            f"sha256 is {sha256(b'r')}, manifest-sha256.txt says {sha256(b'wrong')}"
            " (file on disk: data/README.txt)",
        ),
    ]
