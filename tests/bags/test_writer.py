"""BagWriter: incremental tag files, local and store layouts, both validators agree."""

from __future__ import annotations

import hashlib
import shutil
from datetime import date
from pathlib import Path

import bagit
import pytest

from preservation.bags import BagWriter, TagFile, make_bag_in_place, validate_bag
from preservation.errors import UnsafePath, UsageError
from preservation.hashing import hash_file
from tests.bags.conftest import AIP_INFO, write_files

PAYLOAD = {"a.txt": b"hello\n", "dir/b c.bin": bytes(range(256)), "卷/件.txt": "档案".encode()}


def digests_of(
    content: bytes, algorithms: tuple[str, ...] = ("sha256", "sha512")
) -> dict[str, str]:
    return {a: hashlib.new(a, content).hexdigest() for a in algorithms}


def write_bag(scratch: Path, payload: dict[str, bytes], **kwargs: object) -> list[TagFile]:
    with BagWriter(scratch, info=AIP_INFO, **kwargs) as w:  # type: ignore[arg-type]
        for rel, content in payload.items():
            w.add_payload(rel, len(content), digests_of(content, w.algorithms))
        return w.finish(bagging_date=date(2024, 5, 6))


def test_local_bag_is_valid_for_both_validators(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    write_files(bag / "data", PAYLOAD)
    tags = write_bag(bag, PAYLOAD)
    assert [t.path for t in tags] == [
        "manifest-sha256.txt",
        "manifest-sha512.txt",
        "bag-info.txt",
        "tagmanifest-sha256.txt",
        "tagmanifest-sha512.txt",
        "bagit.txt",  # last: the declaration goes up after everything it declares
    ]
    for t in tags:
        assert t.local == bag / t.path
        assert (t.digests, t.size) == hash_file(t.local, ("sha256", "sha512"))
    report = validate_bag(bag)
    assert report.valid and report.findings == [], [str(f) for f in report.findings]
    bagit.Bag(str(bag)).validate()
    info = (bag / "bag-info.txt").read_text()
    assert info == (
        "Source-Organization: Municipal Archive\n"
        "External-Identifier: urn:uuid:0f0c2a4e-5a57-4a41-9d3c-2f3f8c3c9d11\n"
        "BagIt-Profile-Identifier: urn:uuid:8735a6df-04db-4db3-b34e-e51d82a1e6cd\n"
        "Bagging-Date: 2024-05-06\n"
        "Bag-Software-Agent: preservation 0.1.0\n"
        "Payload-Oxum: 268.3\n"
    )
    assert (bag / "bagit.txt").read_bytes() == (
        b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    )


def test_store_layout_scratch_apart_from_payload(tmp_path: Path) -> None:
    """Payload goes to the store directly; tag files come back from a scratch folder."""
    scratch = tmp_path / "scratch"
    metadata = tmp_path / "mets.xml"
    metadata.write_bytes(b"<mets/>")
    with BagWriter(scratch, info=AIP_INFO) as w:
        for rel, content in PAYLOAD.items():
            w.add_payload(rel, len(content), digests_of(content))
        w.add_tag_file("metadata/mets.xml", metadata)
        tags = w.finish()
    store = tmp_path / "store"  # stands in for <prefix>/<aip>/v1/
    write_files(store / "data", PAYLOAD)
    for t in tags:
        (store / t.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(t.local, store / t.path)
    assert "metadata/mets.xml" in [t.path for t in tags]
    assert "metadata/mets.xml" in (store / "tagmanifest-sha512.txt").read_text()
    assert sorted(p.name for p in scratch.iterdir()) == sorted(
        t.path for t in tags if t.path != "metadata/mets.xml"
    )
    report = validate_bag(store)
    assert report.valid and report.findings == []
    bagit.Bag(str(store)).validate()


def test_manifest_lines_go_to_disk_as_entries_arrive(tmp_path: Path) -> None:
    content = b"x"
    with BagWriter(tmp_path / "s", algorithms=("sha256",)) as w:
        for i in range(3000):
            w.add_payload(f"f{i:05d}", 1, digests_of(content, ("sha256",)))
        partial = (tmp_path / "s" / "manifest-sha256.txt").stat().st_size
        assert partial > 100_000  # ~80 bytes a line: most lines are already written
        w.finish()
    lines = (tmp_path / "s" / "manifest-sha256.txt").read_text().splitlines()
    assert len(lines) == 3000
    assert lines[0].endswith("  data/f00000")  # in the order added


def test_deterministic_output(tmp_path: Path) -> None:
    a = [t.local.read_bytes() for t in write_bag(tmp_path / "a", PAYLOAD)]
    b = [t.local.read_bytes() for t in write_bag(tmp_path / "b", PAYLOAD)]
    assert a == b


def test_fetch_entries(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "s") as w:
        w.add_payload("kept.txt", 3, digests_of(b"new"))
        w.add_payload("old.txt", 5, digests_of(b"old!!"), fetch_url="s3://b/aip/v1/data/old.txt")
        tags = w.finish()
    assert [t.path for t in tags][:3] == ["manifest-sha256.txt", "manifest-sha512.txt", "fetch.txt"]
    assert (
        tmp_path / "s" / "fetch.txt"
    ).read_text() == "s3://b/aip/v1/data/old.txt 5 data/old.txt\n"
    assert "Payload-Oxum: 8.2\n" in (tmp_path / "s" / "bag-info.txt").read_text()


def test_bad_input_refused(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "s") as w:
        good = digests_of(b"a")
        w.add_payload("a", 1, good)
        with pytest.raises(UsageError, match="already"):
            w.add_payload("a", 1, good)
        with pytest.raises(UnsafePath):
            w.add_payload("../escape", 1, good)
        with pytest.raises(UnsafePath):
            w.add_payload("new\nline", 1, good)
        with pytest.raises(UsageError, match="no sha512"):
            w.add_payload("b", 1, {"sha256": good["sha256"]})
        with pytest.raises(UsageError, match="not a sha256"):
            w.add_payload("b", 1, {**good, "sha256": "xyz"})
        with pytest.raises(UsageError, match="negative"):
            w.add_payload("b", -1, good)
        with pytest.raises(UsageError):
            w.add_payload("b", 1, good, fetch_url="not absolute")
        with pytest.raises(UsageError):
            w.add_tag_file("data/x", tmp_path / "x")
        with pytest.raises(UsageError):
            w.add_tag_file("manifest-md5.txt", tmp_path / "x")
        w.finish()
        with pytest.raises(UsageError, match="finished"):
            w.add_payload("c", 1, good)
    with pytest.raises(UsageError, match="already holds"):
        BagWriter(tmp_path / "s")
    with pytest.raises(UsageError, match="computed"):
        BagWriter(tmp_path / "t", info={"Payload-Oxum": "1.1"})


def test_abort_removes_what_the_writer_wrote(tmp_path: Path) -> None:
    scratch = tmp_path / "s"
    (scratch / "data").mkdir(parents=True)
    (scratch / "data" / "keep").write_bytes(b"k")
    with pytest.raises(RuntimeError), BagWriter(scratch) as w:
        w.add_payload("keep", 1, digests_of(b"k"))
        raise RuntimeError("upload failed")
    assert [p.name for p in scratch.iterdir()] == ["data"]
    with BagWriter(scratch) as w:  # left without finish(): nothing half-written stays
        w.add_payload("keep", 1, digests_of(b"k"))
    assert [p.name for p in scratch.iterdir()] == ["data"]


def test_make_bag_in_place(tmp_path: Path) -> None:
    folder = tmp_path / "transfer"
    write_files(folder, {"data/inner.txt": b"a folder named data", "top.txt": b"t"})
    tags = make_bag_in_place(folder, ("sha512",), {"Contact-Name": "X"})
    assert (folder / "data" / "data" / "inner.txt").is_file()
    assert (folder / "data" / "top.txt").is_file()
    assert [t.path for t in tags] == [
        "manifest-sha512.txt",
        "bag-info.txt",
        "tagmanifest-sha512.txt",
        "bagit.txt",
    ]
    manifest = (folder / "manifest-sha512.txt").read_text().splitlines()
    assert [line.split("  ", 1)[1] for line in manifest] == ["data/data/inner.txt", "data/top.txt"]
    assert validate_bag(folder).valid
    bagit.Bag(str(folder)).validate()
    with pytest.raises(UsageError, match="already a bag"):
        make_bag_in_place(folder)


def test_make_bag_in_place_refuses_links_before_moving(tmp_path: Path) -> None:
    folder = tmp_path / "t"
    write_files(folder, {"a.txt": b"a"})
    (folder / "link").symlink_to(folder / "a.txt")
    with pytest.raises(UsageError, match="symbolic"):
        make_bag_in_place(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", "link"]
