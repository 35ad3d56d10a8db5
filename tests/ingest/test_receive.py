"""Receiving transfers: folders, archives (safe extraction), bags, supplied checksums."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import unicodedata
import zipfile
from pathlib import Path

import pytest

from preservation.config import IngestSettings
from preservation.errors import ArchiveError, ArchiveRefused, TransferUnreadable
from preservation.ingest import archives
from preservation.ingest.archives import detect, extract
from preservation.ingest.receive import parse_checksum_file, receive, transfer_name
from tests.ingest.conftest import codes, only
from tests.support import transfers as T

FOLDER_PATHS = ["doc-001.txt", "doc-002.txt", "sub/doc-003.txt"]


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[p.relative_to(root).as_posix()] = (
            st.st_mode,
            st.st_mtime_ns,
            p.read_bytes() if p.is_file() else b"",
        )
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- folders


def test_folder_transfer_is_read_in_place_and_never_modified(
    tmp_path: Path, settings: IngestSettings, staging: Path
) -> None:
    folder = T.make_folder_transfer(tmp_path)
    before = snapshot(folder)
    t = receive(folder, staging, settings)
    assert (t.kind, t.name, t.container, t.work_dir) == ("folder", "T01", None, None)
    assert t.payload_root == folder
    assert [f.path for f in t.files] == FOLDER_PATHS
    f = list(t.files)[2]
    assert f.abspath == (folder / "sub" / "doc-003.txt").absolute()
    assert f.size == 64 and f.original_name == f.path and f.mtime is not None
    assert t.findings == [] and t.supplied == {}
    t.cleanup()
    assert snapshot(folder) == before
    assert not staging.exists() or not any(staging.iterdir())


def test_symlinks_fifos_and_empty_folders_are_reported_not_listed(
    tmp_path: Path, settings: IngestSettings, staging: Path
) -> None:
    folder = T.make_folder_transfer(tmp_path)
    outside = tmp_path / "outside"
    T.write_files(outside, {"secret.txt": b"secret"})
    (folder / "to-outside").symlink_to(outside, target_is_directory=True)
    (folder / "file-link.txt").symlink_to(outside / "secret.txt")
    os.mkfifo(folder / "pipe")
    (folder / "empty").mkdir()
    t = receive(folder, staging, settings)
    assert [f.path for f in t.files] == FOLDER_PATHS
    assert codes(t.findings) == ["PATH-002", "PATH-002", "PATH-003", "PATH-013"]
    by_file = {f.file: f for f in t.findings}
    assert str(outside) in by_file["to-outside"].message
    assert by_file["file-link.txt"].result == "fail"
    assert by_file["pipe"].property == "security" and "FIFO" in by_file["pipe"].message
    assert by_file["empty"].result == "warn"


def test_nfd_names_get_an_nfc_path_and_keep_the_received_name(
    tmp_path: Path, settings: IngestSettings, staging: Path
) -> None:
    nfd = unicodedata.normalize("NFD", "café.txt")
    folder = T.write_files(tmp_path / "T02", {nfd: b"x"})
    (f,) = receive(folder, staging, settings).files
    assert f.path == "café.txt" and f.original_name == nfd and f.abspath.name == nfd


def test_missing_source_and_non_archive_file(
    tmp_path: Path, settings: IngestSettings, staging: Path
) -> None:
    with pytest.raises(TransferUnreadable) as e:
        receive(tmp_path / "nope", staging, settings)
    assert e.value.code == "RCV001" and "nope" in str(e.value)
    text = tmp_path / "notes.zip"
    text.write_text("not an archive at all")
    with pytest.raises(ArchiveRefused) as ar:
        receive(text, staging, settings)
    assert codes(ar.value.findings) == ["ARC-001"]
    assert "notes.zip" in str(ar.value)
    assert list(staging.iterdir()) == []


# --------------------------------------------------------------------------- archives


@pytest.mark.parametrize("compression", ["zip", "", "gz", "bz2", "xz", "zst"])
def test_archives_of_a_folder_give_the_folder_payload(
    tmp_path: Path, settings: IngestSettings, staging: Path, compression: str
) -> None:
    folder = T.make_folder_transfer(tmp_path)
    if compression == "zip":
        archive = T.zip_folder(folder)
    else:
        archive = T.tar_folder(folder, compression=compression)
    t = receive(archive, staging, settings)
    assert t.name == "T01"
    assert t.kind == ("zip" if compression == "zip" else "tar")
    assert t.container == (
        "zip" if compression == "zip" else "tar" + (f".{compression}" if compression else "")
    )
    assert [f.path for f in t.files] == FOLDER_PATHS
    assert [f.abspath.read_bytes() for f in t.files] == [
        (folder / p).read_bytes() for p in FOLDER_PATHS
    ]
    assert t.work_dir is not None and t.work_dir.parent == staging
    assert t.payload_root.is_relative_to(t.work_dir)
    t.cleanup()
    assert list(staging.iterdir()) == []


def test_type_is_detected_by_magic_bytes_not_extension(tmp_path: Path) -> None:
    folder = T.make_folder_transfer(tmp_path)
    z = T.zip_folder(folder).rename(tmp_path / "looks-like.tar.gz")
    assert detect(z) == "zip"
    tz = T.tar_folder(folder, compression="zst").rename(tmp_path / "plain.zip")
    assert detect(tz) == "tar.zst"
    gz = tmp_path / "single.tar.gz"
    gz.write_bytes(gzip.compress(b"just one document, not a tar"))
    assert detect(gz) is None
    assert transfer_name(tmp_path / "Batch-7.tar.zst") == "Batch-7"
    assert transfer_name(tmp_path / "B.TGZ") == "B"


def test_single_top_folder_is_unwrapped_and_macos_junk_beside_it_reported(
    tmp_path: Path, settings: IngestSettings, staging: Path
) -> None:
    folder = T.make_folder_transfer(tmp_path)
    z = T.zip_entries(
        tmp_path / "mac.zip",
        [(f"T01/{p}", (folder / p).read_bytes()) for p in FOLDER_PATHS]
        + [("__MACOSX/T01/._doc-001.txt", b"resource fork")],
    )
    t = receive(z, staging, settings)
    assert t.payload_root.name == "T01"
    assert [f.path for f in t.files] == FOLDER_PATHS
    (junk,) = t.findings
    assert junk.code == "PATH-009" and "__MACOSX" in junk.message
    assert junk.details["excluded"] is True


def test_hostile_zip_is_refused_with_every_member_named(
    tmp_path: Path, settings: IngestSettings, staging: Path
) -> None:
    z = T.hostile_zip(tmp_path / "hostile.zip")
    with pytest.raises(ArchiveRefused) as e:
        receive(z, staging, settings)
    err = e.value
    assert err.code == "ARC002" and isinstance(err, ArchiveError)
    assert codes(err.findings) == ["ARC-002", "ARC-002", "ARC-002", "ARC-003", "ARC-006"]
    named = {f.file: f for f in err.findings}
    assert set(named) == {
        "../evil.txt",
        "/etc/evil.txt",
        "C:/Windows/evil.txt",
        "link-to-passwd",
        "secret.txt",
    }
    for member, f in named.items():
        assert repr(member) in f.message and "hostile.zip" in f.message
        assert f.details["member"] == member
    assert named["secret.txt"].property == "security"
    for member in named:
        assert repr(member) in str(err)
    assert list(staging.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("compression", ["", "gz"])
def test_hostile_tar_is_refused_with_every_member_named(
    tmp_path: Path, settings: IngestSettings, compression: str
) -> None:
    tar = T.hostile_tar(tmp_path / "hostile.tar", compression)
    dest = tmp_path / "out"
    with pytest.raises(ArchiveRefused) as e:
        extract(tar, dest, settings)
    found = {f.file: f.code for f in e.value.findings}
    assert found == {
        "../evil.txt": "ARC-002",
        "/etc/evil.txt": "ARC-002",
        "link": "ARC-003",
        "hard": "ARC-003",
        "dev/null-device": "ARC-004",
        "pipe": "ARC-004",
    }
    msgs = {f.file: f.message for f in e.value.findings}
    assert "symbolic link to '/etc/passwd'" in msgs["link"]
    assert "hard link to 'ok.txt'" in msgs["hard"]
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.tar"]


def test_failed_extraction_leaves_an_existing_empty_destination_as_it_was(
    tmp_path: Path, settings: IngestSettings
) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ArchiveRefused):
        extract(T.hostile_zip(tmp_path / "h.zip"), dest, settings)
    assert dest.is_dir() and list(dest.iterdir()) == []
    good = T.zip_folder(T.make_folder_transfer(tmp_path))
    result = extract(good, dest, settings)
    assert (result.files, result.dirs) == (3, 1) and (dest / "T01" / "sub").is_dir()
    with pytest.raises(ArchiveError) as e:
        extract(good, dest, settings)  # not empty any more
    assert "not an empty folder" in str(e.value)


def test_zip_bomb_refused_from_its_declared_sizes_before_writing(
    tmp_path: Path, settings: IngestSettings
) -> None:
    bomb = T.zip_bomb(tmp_path / "bomb.zip")  # 64 MiB of zeros in ~64 KiB
    assert bomb.stat().st_size < 1024 * 1024
    dest = tmp_path / "out"
    with pytest.raises(ArchiveRefused) as e:
        extract(bomb, dest, settings)
    assert set(codes(e.value.findings)) == {"ARC-009"}
    assert any(f.file == "zeros.bin" for f in e.value.findings)
    assert not dest.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bomb.zip"]


def test_total_size_and_member_count_limits(tmp_path: Path, tight: IngestSettings) -> None:
    big = T.zip_entries(
        tmp_path / "big.zip",
        [(f"part-{i}.bin", os.urandom(1024 * 1024)) for i in range(5)],
    )
    with pytest.raises(ArchiveRefused) as e:
        extract(big, tmp_path / "a", tight)
    (f,) = e.value.findings
    assert f.code == "ARC-007" and f.file == "part-4.bin" and "4194304" in f.message
    many = T.zip_entries(tmp_path / "many.zip", [(f"f{i}.txt", b"x") for i in range(60)])
    with pytest.raises(ArchiveRefused) as e:
        extract(many, tmp_path / "b", tight)
    (f,) = e.value.findings
    assert f.code == "ARC-008" and f.file == "f50.txt"
    tar = tmp_path / "big.tar"
    with tarfile.open(tar, "w") as t:
        for i in range(5):
            info = tarfile.TarInfo(f"part-{i}.bin")
            info.size = 1024 * 1024
            t.addfile(info, io.BytesIO(os.urandom(info.size)))
    with pytest.raises(ArchiveRefused) as e:
        extract(tar, tmp_path / "c", tight)
    (f,) = e.value.findings
    assert f.code == "ARC-007" and f.file == "part-4.bin"
    assert not any((tmp_path / d).exists() for d in "abc")


@pytest.mark.parametrize("compression", ["gz", "zst"])
def test_compressed_tar_bomb_is_stopped_while_streaming(
    tmp_path: Path, settings: IngestSettings, compression: str
) -> None:
    bomb = T.tar_bomb(tmp_path / f"bomb.tar.{compression}", compression=compression)
    assert bomb.stat().st_size < 1024 * 1024  # its tar header declares 64 MiB: allowed
    dest = tmp_path / "out"
    with pytest.raises(ArchiveRefused) as e:
        extract(bomb, dest, settings)
    (f,) = e.value.findings
    assert f.code == "ARC-009" and f.file == "zeros.bin"
    assert "extraction stopped" in f.message
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [bomb.name]


def test_zip_whose_headers_lie_about_sizes_is_stopped(
    tmp_path: Path, settings: IngestSettings
) -> None:
    liar = T.lying_zip(tmp_path / "liar.zip")  # declares 1000 bytes, holds 16 MiB
    with zipfile.ZipFile(liar) as z:
        assert z.infolist()[0].file_size == 1000
    dest = tmp_path / "out"
    with pytest.raises(ArchiveRefused) as e:
        extract(liar, dest, settings)
    (f,) = e.value.findings  # zipfile stops at the declared size; the CRC then fails
    assert (f.code, f.file) == ("ARC-010", "liar.bin") and "CRC" in f.message
    assert not dest.exists()


def test_budget_stops_streaming_beyond_the_declared_size(tmp_path: Path) -> None:
    """Our own guard, independent of zipfile's: more bytes than declared stop the copy."""
    budget = archives._Budget(tmp_path / "a.zip", IngestSettings())
    with pytest.raises(archives._Stop) as e:
        archives._copy(
            tmp_path / "a.zip", io.BytesIO(b"x" * 5000), tmp_path / "m", "m", budget, 100, None
        )
    assert e.value.finding.code == "ARC-009" and "declared size of 100" in e.value.finding.message


def test_duplicate_members_and_file_folder_clashes(
    tmp_path: Path, settings: IngestSettings
) -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        dup = T.zip_entries(tmp_path / "dup.zip", [("a.txt", b"1"), ("a.txt", b"2")])
    with pytest.raises(ArchiveRefused) as e:
        extract(dup, tmp_path / "o1", settings)
    (f,) = e.value.findings
    assert (f.code, f.file) == ("ARC-011", "a.txt") and "twice" in f.message
    clash = T.zip_entries(tmp_path / "clash.zip", [("a", b"file"), ("a/b.txt", b"x")])
    with pytest.raises(ArchiveRefused) as e:
        extract(clash, tmp_path / "o2", settings)
    (f,) = e.value.findings
    assert (f.code, f.file) == ("ARC-011", "a/b.txt") and "both a file and a folder" in f.message


def test_zip_names_without_utf8_flag_are_decoded_and_reported(
    tmp_path: Path, settings: IngestSettings, staging: Path
) -> None:
    name = "文书档案/关于2011年工作的报告.txt"
    z = T.zip_entries(
        tmp_path / "gbk.zip",
        [  # one top folder, unwrapped: findings name payload paths, not member names
            (T.legacy_name_info(f"T01/{name}", "gb18030"), b"report"),
            (T.legacy_name_info("T01/caf\u00e9.txt", "cp437"), b"menu"),
            ("T01/plain.txt", b"ascii"),
        ],
    )
    with zipfile.ZipFile(z) as zf:
        assert all(not i.flag_bits & 0x800 for i in zf.infolist())
    t = receive(z, staging, settings)
    assert sorted(f.path for f in t.files) == sorted([name, "café.txt", "plain.txt"])
    assert codes(t.findings) == ["ARC-012", "ARC-012"]
    gb = next(f for f in t.findings if "gb18030" in f.message)
    assert gb.file == name and gb.result == "warn" and f"'T01/{name}'" in gb.message
    raw = f"T01/{name}".encode("gb18030").decode("ascii", "backslashreplace")
    assert t.decoded_names[name] == raw and raw in gb.message
    cp = next(f for f in t.findings if "cp437" in f.message)
    assert cp.file == "café.txt" and "T01/caf\\x82.txt" in cp.message


def test_invalid_utf8_names_are_refused(tmp_path: Path, settings: IngestSettings) -> None:
    flagged = T.RawZipInfo("caf\u00e9.txt")
    flagged.encoding = "latin-1"
    flagged.extra_flags = 0x800  # says UTF-8, is not
    z = T.zip_entries(tmp_path / "bad.zip", [(flagged, b"x")])
    with pytest.raises(ArchiveRefused) as e:
        extract(z, tmp_path / "o1", settings)
    (f,) = e.value.findings
    assert f.code == "ARC-005" and f.file == "caf\\xe9.txt"
    tar = tmp_path / "bad.tar"
    with tarfile.open(tar, "w", format=tarfile.GNU_FORMAT, encoding="latin-1") as t:
        info = tarfile.TarInfo("caf\u00e9.txt")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ArchiveRefused) as e:
        extract(tar, tmp_path / "o2", settings)
    (f,) = e.value.findings
    assert f.code == "ARC-005" and f.file == "caf\\xe9.txt" and "UTF-8" in f.message


def test_corrupt_archive_names_the_member(tmp_path: Path, settings: IngestSettings) -> None:
    folder = T.write_files(tmp_path / "T", {"a.txt": T.content(1, 4096), "b.txt": b"b" * 10})
    z = T.zip_folder(folder, top=False)
    data = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("a.txt")
    start = info.header_offset + 30 + len(b"a.txt") + len(info.extra)
    data[start + 5] ^= 0xFF  # flip a byte of a.txt's compressed data
    z.write_bytes(bytes(data))
    with pytest.raises(ArchiveRefused) as e:
        extract(z, tmp_path / "out", settings)
    (f,) = e.value.findings
    assert f.code == "ARC-010" and f.file == "a.txt"
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- checksums


def test_checksum_files_inside_and_beside_a_folder(
    tmp_path: Path, settings: IngestSettings, staging: Path
) -> None:
    folder = T.make_folder_transfer(tmp_path)
    d = {p: sha256((folder / p).read_bytes()) for p in FOLDER_PATHS}
    (folder / "checksums.sha256").write_text(
        "# made by hand\n"
        f"{d['doc-001.txt']}  doc-001.txt\n"
        f"{d['doc-002.txt'].upper()} *./doc-002.txt\n"
        "\n"
        f"SHA256 (sub/doc-003.txt) = {d['sub/doc-003.txt']}\n"
    )
    md5 = hashlib.md5((folder / "doc-001.txt").read_bytes()).hexdigest()
    (tmp_path / "T01.md5").write_text(f"{md5}  T01/doc-001.txt\n")
    t = receive(folder, staging, settings)
    assert [f.path for f in t.files] == FOLDER_PATHS  # the checksum file is not payload
    assert t.findings == []
    assert t.supplied == {
        "doc-001.txt": {"sha256": d["doc-001.txt"], "md5": md5},
        "doc-002.txt": {"sha256": d["doc-002.txt"]},
        "sub/doc-003.txt": {"sha256": d["sub/doc-003.txt"]},
    }
    assert sorted(t.supplied_from) == ["T01.md5", "checksums.sha256"]
    assert t.submission_tag_files["checksums.sha256"] == folder / "checksums.sha256"


def test_bad_checksum_lines_are_named_by_file_and_line(
    tmp_path: Path, settings: IngestSettings, staging: Path
) -> None:
    folder = T.make_folder_transfer(tmp_path)
    good = sha256((folder / "doc-001.txt").read_bytes())
    (folder / "SHA256SUMS").write_bytes(
        (
            f"{good}  doc-001.txt\n"
            "abc  doc-002.txt\n"  # too short
            "this is not a checksum line\n"
            f"{good}  missing.txt\n"
            f"{'0' * 64}  doc-001.txt\n"  # conflicts with line 1
            f"{good}  ../outside.txt\n"
        ).encode()
        + b"\xff\xfe\n"
    )
    t = receive(folder, staging, settings)
    found = sorted((f.code, f.message) for f in t.findings)
    assert [c for c, _ in found] == ["FIX-101"] * 5 + ["FIX-102"]
    text = "\n".join(m for _, m in found)
    for n in (2, 3, 5, 6, 7):
        assert f"SHA256SUMS line {n}" in text
    assert "'missing.txt', which is not in the transfer" in text
    assert t.supplied == {"doc-001.txt": {"sha256": good}}


def test_gb18030_checksum_file(tmp_path: Path) -> None:
    f = tmp_path / "checksums.md5"
    f.write_bytes(f"{'a' * 32}  目录/报告.pdf\n".encode("gb18030"))
    (line,), bad = parse_checksum_file(f, "md5")
    assert bad == [] and line.path == "目录/报告.pdf" and line.line == 1


def test_archive_sidecar_digest_is_verified(
    tmp_path: Path, settings: IngestSettings, staging: Path
) -> None:
    z = T.zip_folder(T.make_folder_transfer(tmp_path))
    digest = sha256(z.read_bytes())
    sidecar = tmp_path / "T01.zip.sha256"
    sidecar.write_text(f"{digest}  T01.zip\n")
    t = receive(z, staging, settings)
    (f,) = t.findings
    assert (f.code, f.result) == ("FIX-104", "pass") and digest in f.message
    assert t.submission_tag_files["T01.zip.sha256"] == sidecar
    flipped = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    sidecar.write_text(f"{flipped}  T01.zip\n")
    (f,) = receive(z, staging, settings).findings
    assert (f.code, f.result) == ("FIX-104", "fail")
    assert flipped in f.message and "T01.zip.sha256 line 1" in f.message


# --------------------------------------------------------------------------- bags


def test_folder_bag(tmp_path: Path, settings: IngestSettings, staging: Path) -> None:
    bag = T.make_bag(T.make_folder_transfer(tmp_path), checksums=["sha256", "sha512"])
    t = receive(bag, staging, settings)
    assert t.kind == "bag" and t.bag_root == bag and t.payload_root == bag / "data"
    assert [f.path for f in t.files] == FOLDER_PATHS
    assert t.findings == []
    data = (bag / "data" / "doc-001.txt").read_bytes()
    assert t.supplied["doc-001.txt"] == {
        "sha256": sha256(data),
        "sha512": hashlib.sha512(data).hexdigest(),
    }
    assert t.bag_info["Source-Organization"] == "Test Archive"
    assert t.bag_info["Payload-Oxum"] == f"{3 * 64}.3"
    assert {"bagit.txt", "bag-info.txt", "manifest-sha256.txt"} <= set(t.submission_tag_files)


def test_bag_one_folder_down_in_an_archive(
    tmp_path: Path, settings: IngestSettings, staging: Path
) -> None:
    bag = T.make_bag(T.make_folder_transfer(tmp_path))
    t = receive(T.tar_folder(bag, compression="gz"), staging, settings)
    assert (t.kind, t.container, t.name) == ("bag", "tar.gz", "T01-bag")
    assert t.bag_root is not None and t.bag_root.name == "T01-bag"
    assert [f.path for f in t.files] == FOLDER_PATHS and len(t.supplied) == 3
    assert t.findings == []


def test_incomplete_bag_and_tampered_tag_file(
    tmp_path: Path, settings: IngestSettings, staging: Path
) -> None:
    bag = T.make_bag(T.make_folder_transfer(tmp_path))
    (bag / "data" / "doc-002.txt").unlink()
    (bag / "data" / "extra.txt").write_bytes(b"not in the manifest")
    with (bag / "bag-info.txt").open("a") as f:
        f.write("Contact-Name: someone who edited the bag\n")
    t = receive(bag, staging, settings)
    structure = only(t.findings, "FIX-103")
    files = {f.file for f in structure if f.result == "fail"}
    assert {"doc-002.txt", "extra.txt"} <= files
    assert all(f.details["bag_code"].startswith("BAG") for f in structure)
    (tag,) = only(t.findings, "FIX-105")
    assert tag.result == "fail" and "bag-info.txt" in tag.message
    assert "doc-002.txt" not in {f.path for f in t.files}
