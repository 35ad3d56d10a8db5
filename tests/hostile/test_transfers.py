"""Hostile transfers through ``preservation ingest`` (in-process CLI) and ``bag validate``.

Only what tests/ingest/test_bad_inputs.py, tests/ingest/test_receive.py and tests/bags/
do not already cover: names that are not UTF-8, control characters, names that NFC
lengthens, hard links, FIFOs, 10,000-level nesting (folder, zip, tar), a register nested
10,000 deep, a member declaring 20 GB, a 0-byte file, a zip bomb as a payload file, and a
1 GiB sparse file streamed in bounded memory. Each refused transfer leaves nothing in the
store or the catalogue; each accepted one validates as a bag afterwards.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import psutil
import pytest

from preservation.repository import Repository
from tests.hostile.support import (
    finding_files,
    new_repository,
    nothing_stored,
    remove_nested,
    run_cli,
)
from tests.support import transfers as tr

NESTING = 10_000


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return new_repository(tmp_path / "repo")


def ingest(repo: Repository, source: Path, *extra: str) -> tuple[int, dict[str, set[str]]]:
    out = run_cli("--repo", str(repo.root), "--json", "ingest", str(source), "--no-replicate",
                  *extra)  # fmt: skip
    return out.status, finding_files(out)


def stored_bag_is_valid(repo: Repository) -> None:
    (aip,) = {i.key.split("/", 1)[0] for i in repo.primary.list("") if not i.key.startswith(".")}
    bag = repo.primary.root / aip / "v1"  # type: ignore[attr-defined]
    out = run_cli("--json", "bag", "validate", "--processes", "1", str(bag))
    assert out.status == 0 and out.data["valid"] is True, out.stdout


def test_name_that_is_not_utf8_is_refused_and_the_report_is_written(
    repo: Repository, tmp_path: Path
) -> None:
    """Regression: the refusal report crashed (UnicodeEncodeError) on the raw name."""
    folder = tr.make_folder_transfer(tmp_path)
    with open(os.fsencode(folder) + b"/bad\xff\xfe.txt", "wb") as f:
        f.write(b"x")
    status, found = ingest(repo, folder)
    assert status == 3
    assert found["PATH-001"] == {"bad\\xff\\xfe.txt"}
    assert nothing_stored(repo)
    reports = list((repo.root / "staging" / "reports").glob("*-refused-*.json"))
    assert len(reports) == 1 and b"bad\\\\xff\\\\xfe.txt" in reports[0].read_bytes()


CONTROL_NAMES = ["a\x01b.txt", "line\nbreak.txt", "esc\x1b[31m.txt", "del\x7f.txt"]


@pytest.mark.parametrize("name", CONTROL_NAMES)
def test_control_characters_in_names_are_refused(
    repo: Repository, tmp_path: Path, name: str
) -> None:
    folder = tr.make_folder_transfer(tmp_path)
    (folder / name).write_bytes(b"x")
    status, found = ingest(repo, folder)
    assert status == 3 and found["PATH-001"] == {name}
    assert nothing_stored(repo)


def test_name_that_nfc_lengthens_past_255_bytes_is_refused(
    repo: Repository, tmp_path: Path
) -> None:
    """U+0958 (3 bytes) becomes two code points (6 bytes) under NFC: 255 -> 510 bytes."""
    folder = tr.make_folder_transfer(tmp_path)
    name = "\u0958" * 84 + ".t"
    assert len(name.encode()) <= 255
    (folder / name).write_bytes(b"x")
    status, found = ingest(repo, folder)
    assert status == 3 and "PATH-007" in found
    assert nothing_stored(repo)


def test_hard_link_is_stored_as_two_files_and_reported(repo: Repository, tmp_path: Path) -> None:
    folder = tr.make_folder_transfer(tmp_path)
    os.link(folder / "doc-001.txt", folder / "hard.txt")
    status, found = ingest(repo, folder)
    assert status == 0 and found["PATH-012"] == {"doc-001.txt"}  # same content twice
    stored_bag_is_valid(repo)


def test_fifo_is_never_opened(repo: Repository, tmp_path: Path) -> None:
    """A reader of the FIFO would block for ever: the ingest must finish and name it."""
    folder = tr.make_folder_transfer(tmp_path)
    os.mkfifo(folder / "pipe")
    status, found = ingest(repo, folder)
    assert status == 0 and found["PATH-003"] == {"pipe"}
    assert not [i for i in repo.primary.list("") if i.key.endswith("/pipe")]
    stored_bag_is_valid(repo)


def test_zero_byte_file_is_kept_and_validates(repo: Repository, tmp_path: Path) -> None:
    folder = tr.make_folder_transfer(tmp_path)
    (folder / "empty.txt").write_bytes(b"")
    status, found = ingest(repo, folder)
    assert status == 0 and found["PATH-008"] == {"empty.txt"}
    assert [i for i in repo.primary.list("") if i.key.endswith("data/empty.txt")]
    stored_bag_is_valid(repo)


def _nested_folder(root: Path, depth: int) -> None:
    """``d/d/.../d/leaf.txt`` far beyond PATH_MAX, built relative to open folders."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        leaf = os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, b"leaf")
        os.close(leaf)
    finally:
        os.close(fd)


@pytest.mark.slow  # about 10 s: 10,000 folders made and removed
def test_folder_nested_10000_levels_is_refused(repo: Repository, tmp_path: Path) -> None:
    folder = tr.make_folder_transfer(tmp_path)
    _nested_folder(folder, NESTING)
    try:
        start = time.monotonic()
        status, found = ingest(repo, folder)
        assert status == 3 and "PATH-004" in found  # the folder cannot be read: named
        assert any(f.startswith("d/d/d/") for f in found["PATH-004"])
        assert time.monotonic() - start < 30
        assert nothing_stored(repo)
    finally:
        remove_nested(folder)  # pytest's own clean-up (shutil.rmtree) would recurse too deep


def _deep_name() -> str:
    return "/".join(["d"] * NESTING) + "/leaf.txt"


def test_zip_nested_10000_levels_is_refused(repo: Repository, tmp_path: Path) -> None:
    z = tmp_path / "deep.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(_deep_name(), b"leaf")
        zf.writestr("ok.txt", b"ok")
    status, found = ingest(repo, z)
    assert status == 3 and found["ARC-005"] == {_deep_name()}
    assert nothing_stored(repo)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.zip", "repo"]


def test_tar_nested_10000_levels_is_refused(repo: Repository, tmp_path: Path) -> None:
    t = tmp_path / "deep.tar"
    with tarfile.open(t, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in ((_deep_name(), b"leaf"), ("ok.txt", b"ok")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    status, found = ingest(repo, t)
    assert status == 3 and found["ARC-005"] == {_deep_name()}
    assert nothing_stored(repo)


def test_register_nested_10000_levels_is_refused(repo: Repository, tmp_path: Path) -> None:
    """Regression: json/tomllib raised RecursionError (a crash, no error code)."""
    folder = tr.make_folder_transfer(tmp_path)
    for name, text in (
        ("deep.json", "[" * NESTING + "]" * NESTING),
        ("deep.toml", "a = " + "[" * NESTING + "]" * NESTING),
    ):
        register = tmp_path / name
        register.write_text(text, encoding="utf-8")
        out = run_cli("--repo", str(repo.root), "ingest", str(folder), "--register", str(register))
        assert out.status == 3 and out.error is not None and out.error.code == "REG001"
        assert "nested too deeply" in str(out.error) and name in str(out.error)
    assert nothing_stored(repo)


def test_register_with_old_mac_line_ends_is_read(tmp_path: Path) -> None:
    """Regression (found by Hypothesis): a CSV register with CR-only line ends raised
    csv.Error out of the ingest; it is now read like any other."""
    from preservation.ingest.register import read_register

    register = tmp_path / "register.csv"
    register.write_bytes("件数,3\r文件数,3\r".encode())
    got = read_register(register)
    assert (got.items, got.files) == (3, 3)


def test_member_declaring_20_gb_is_refused_before_reading(tmp_path: Path) -> None:
    """A tar header declaring a 20 GB member (the data is not even there) trips the
    archive size limit at once, without reading or writing a byte of it."""
    repo = new_repository(tmp_path / "repo", max_archive_bytes=1024**3)
    t = tmp_path / "huge.tar"
    info = tarfile.TarInfo("sparse.bin")
    info.size = 20 * 1024**3
    t.write_bytes(info.tobuf(tarfile.PAX_FORMAT) + b"\0" * 10240)
    start = time.monotonic()
    status, found = ingest(repo, t)
    assert status == 3 and found["ARC-007"] == {"sparse.bin"}
    assert time.monotonic() - start < 10
    assert nothing_stored(repo)


def test_zip_bomb_as_a_payload_file_is_not_decompressed(repo: Repository, tmp_path: Path) -> None:
    """A bomb inside a folder transfer is payload, not a transfer: the usability check
    sees the declared ratio and does not inflate 64 MiB of zeros per member."""
    folder = tr.make_folder_transfer(tmp_path)
    tr.zip_bomb(folder / "bomb.zip")
    start = time.monotonic()
    status, _found = ingest(repo, folder)
    assert status == 0
    assert time.monotonic() - start < 30
    stored_bag_is_valid(repo)


def _anon_rss(pid: int) -> int:
    """Anonymous resident memory (heap, stacks): what the process really loaded.

    Plain RSS also counts file pages mapped from disk: Siegfried (in-process through
    pygfried) maps each file it identifies, so RSS follows the file's size while the
    pages stay clean page cache the kernel can drop at any time."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/<pid>/status")


def _watch(proc: subprocess.Popen[str], stop: threading.Event, peak: dict[str, int]) -> None:
    ps = psutil.Process(proc.pid)
    while not stop.is_set():
        try:
            peak["anon"] = max(peak["anon"], _anon_rss(proc.pid))
            peak["rss"] = max(peak["rss"], ps.memory_info().rss)
        except (psutil.Error, OSError, AssertionError):
            return
        time.sleep(0.02)


@pytest.mark.slow
def test_sparse_1_gib_file_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    """A sparse file of zeros through the real CLI in a subprocess: the process's peak
    anonymous memory stays far below the file size. 20 GB would take 8 to 25 minutes
    here (two digests, a real copy into the local store, identification: 25 to 70 s per
    GiB on this shared machine), so the size is 1 GiB; the 20 GB case is refused up
    front by the archive size limit (test above)."""
    size = 1024**3
    repo = new_repository(tmp_path / "repo")
    folder = tr.make_folder_transfer(tmp_path)
    with (folder / "sparse.bin").open("wb") as f:
        f.truncate(size)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "preservation", "--repo", str(repo.root), "--json", "ingest",
         str(folder), "--no-replicate"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    stop, peak = threading.Event(), {"anon": 0, "rss": 0}
    watcher = threading.Thread(target=_watch, args=(proc, stop, peak), daemon=True)
    watcher.start()
    try:
        _out, err = proc.communicate(timeout=240)
    finally:
        stop.set()
        watcher.join()
    assert proc.returncode == 0, err
    anon_mib = peak["anon"] / 1024**2
    print(f"peak anonymous memory {anon_mib:.0f} MiB, peak RSS {peak['rss'] / 1024**2:.0f} MiB")
    assert 0 < peak["anon"] < 256 * 1024**2, f"{anon_mib:.0f} MiB anonymous for a 1 GiB file"
    (sparse,) = [i.key for i in repo.primary.list("") if i.key.endswith("data/sparse.bin")]
    assert (repo.primary.root / sparse).stat().st_size == size  # type: ignore[attr-defined]
