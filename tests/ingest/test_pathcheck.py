"""Path checks: unsafe names, collisions, lengths, empty, junk and hidden files, duplicates."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import hypothesis
from hypothesis import given
from hypothesis import strategies as st

from preservation.config import IngestSettings
from preservation.ingest.pathcheck import check_duplicates, check_paths, junk_reason
from preservation.ingest.receive import TransferFile, receive
from preservation.model import FileEntry
from tests.ingest.conftest import codes, only
from tests.support import transfers as T


def tf(path: str, size: int = 1, original: str | None = None) -> TransferFile:
    return TransferFile(
        path=unicodedata.normalize("NFC", path),
        original_name=original or path,
        size=size,
        abspath=Path("/nowhere") / path,
    )


def test_clean_transfer_has_no_findings(tmp_path: Path, settings: IngestSettings) -> None:
    t = receive(T.make_folder_transfer(tmp_path), tmp_path / "staging", settings)
    assert check_paths(t.files, settings) == ([], [])


def test_nfc_and_case_collisions_name_both_files(tmp_path: Path, settings: IngestSettings) -> None:
    nfc, nfd = "café.txt", unicodedata.normalize("NFD", "café.txt")
    folder = T.write_files(
        tmp_path / "T",
        {nfc: b"composed", nfd: b"decomposed", "Report.pdf": b"a", "report.pdf": b"b",
         "Scans/p1.tif": b"1", "scans/p2.tif": b"2"},
    )  # fmt: skip
    files = receive(folder, tmp_path / "staging", settings).files
    assert sorted(f.path for f in files).count("café.txt") == 2
    findings, excluded = check_paths(files, settings)
    assert excluded == []
    (collision,) = only(findings, "PATH-005")
    assert collision.result == "fail" and collision.file == "café.txt"
    assert sorted(collision.details["names"]) == sorted([nfc, nfd])
    assert repr(nfd) in collision.message and repr(nfc) in collision.message
    (not_nfc,) = only(findings, "PATH-011")
    assert not_nfc.details["received"] == nfd
    case = {f.file: f for f in only(findings, "PATH-006")}
    assert set(case) == {"Report.pdf", "Scans"}
    assert "'Report.pdf', 'report.pdf'" in case["Report.pdf"].message
    assert "folders" in case["Scans"].message and "'scans'" in case["Scans"].message


def test_junk_is_reported_and_excluded(tmp_path: Path) -> None:
    junk = [".DS_Store", "Thumbs.db", "sub/desktop.ini", "__MACOSX/sub/._a.txt", "sub/._a.txt",
            "~$报告.docx", "sub/~$表.xlsx", "$RECYCLE.BIN/x.txt"]  # fmt: skip
    files = [tf(p) for p in [*junk, "a.txt", "sub/a.txt"]]
    findings, excluded = check_paths(files, IngestSettings())
    assert sorted(excluded) == sorted(junk)
    assert codes(findings) == ["PATH-009"] * len(junk)
    for f in findings:
        assert f.result == "warn" and f.property == "security" and f.details["excluded"]
        assert f.file in junk
    findings, excluded = check_paths(files, IngestSettings(exclude_junk=False))
    assert "kept" in only(findings, "PATH-009")[0].message
    # kept junk is judged like any file: '._a.txt' and '.DS_Store' are hidden, and a
    # top-level '~$' name is unsafe (a key may not start with '~') so it is not stored
    assert {f.file for f in only(findings, "PATH-010")} == {
        ".DS_Store",
        "__MACOSX/sub/._a.txt",
        "sub/._a.txt",
    }
    assert [f.file for f in only(findings, "PATH-001")] == excluded == ["~$报告.docx"]
    assert junk_reason("docs/.ds_store") == "macOS folder settings"
    assert junk_reason("docs/readme.txt") is None


def test_unsafe_names_fail_and_are_not_stored(tmp_path: Path, settings: IngestSettings) -> None:
    folder = tmp_path / "T"
    folder.mkdir()
    (folder / "back\\slash.txt").write_bytes(b"x")
    (folder / "bell\x07.txt").write_bytes(b"x")
    os.close(os.open(os.fsencode(folder) + b"/caf\xe9.txt", os.O_CREAT | os.O_WRONLY))
    (folder / "ok.txt").write_bytes(b"x")
    files = receive(folder, tmp_path / "staging", settings).files
    findings, excluded = check_paths(files, settings)
    unsafe = {f.file: f for f in only(findings, "PATH-001")}
    assert set(unsafe) == {"back\\slash.txt", "bell\x07.txt", "caf\\xe9.txt"}
    assert "backslash" in unsafe["back\\slash.txt"].message
    assert "control character" in unsafe["bell\x07.txt"].message
    assert "not valid UTF-8" in unsafe["caf\\xe9.txt"].message
    assert all(f.result == "fail" and f.property == "integrity" for f in unsafe.values())
    assert len(excluded) == 3 and "ok.txt" not in excluded
    # the empty undecodable file is excluded before the empty-file check
    assert only(findings, "PATH-008") == []


def test_long_paths_empty_and_hidden_files() -> None:
    settings = IngestSettings(max_path_bytes=40)
    long_path = "folder/" + "目" * 12 + ".txt"  # 7 + 36 + 4 = 47 bytes
    segment = "x" * 256 + ".txt"
    files = [tf(long_path), tf(segment), tf("empty.txt", size=0), tf(".hidden/notes.txt")]
    findings, excluded = check_paths(files, settings)
    long = {f.file: f for f in only(findings, "PATH-007")}
    assert "47 bytes long, more than the limit of 40" in long[long_path].message
    assert long[long_path].details["excluded"] is False
    assert "260 bytes long" in long[segment].message and long[segment].details["excluded"]
    assert excluded == [segment]  # a name over 255 bytes cannot be a store key
    (empty,) = only(findings, "PATH-008")
    assert (empty.file, empty.result) == ("empty.txt", "warn")
    (hidden,) = only(findings, "PATH-010")
    assert hidden.file == ".hidden/notes.txt" and "'.hidden'" in hidden.message


def test_duplicate_content_after_hashing() -> None:
    entries = [
        FileEntry("a/one.tif", 10, {"sha256": "ab" * 32}),
        FileEntry("b/two.tif", 10, {"sha256": "AB" * 32}),
        FileEntry("c.tif", 10, {"sha256": "cd" * 32}),
        FileEntry("e1.txt", 0, {"sha256": "ee" * 32}),
        FileEntry("e2.txt", 0, {"sha256": "ee" * 32}),
    ]
    (f,) = check_duplicates(entries)
    assert f.code == "PATH-012" and f.result == "warn" and f.file == "a/one.tif"
    assert f.details["paths"] == ["a/one.tif", "b/two.tif"]
    assert "a/one.tif, b/two.tif" in f.message


@hypothesis.settings(deadline=None)  # timing varies on a busy CI machine
@given(st.lists(st.text(min_size=1, max_size=30), max_size=20))
def test_any_names_give_findings_about_given_files_only(names: list[str]) -> None:
    files = [tf(n, size=len(n) % 3) for n in names]
    findings, excluded = check_paths(files, IngestSettings())
    given_paths = {f.path for f in files}
    assert set(excluded) <= given_paths
    for f in findings:
        assert f.file is not None
