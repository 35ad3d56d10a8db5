"""The discovered files of a transfer, on disk: order, narrowing, supplied digests."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from preservation.ingest import filetable
from preservation.ingest.filetable import FileTable, TransferFile


def tf(path: str, size: int = 1, original: str | None = None) -> TransferFile:
    original = original or path
    return TransferFile(path, original, size, f"/src/{original}", 1_700_000_000.0)


@pytest.fixture
def table(tmp_path: Path) -> FileTable:
    return FileTable(tmp_path / "files.sqlite")


def test_files_come_back_sorted_by_path_with_what_was_discovered(table: FileTable) -> None:
    table.extend([tf("b/z.txt", 3), tf("a.txt", 1), tf("b/a.txt", 2)])
    files = list(table)
    assert [f.path for f in files] == ["a.txt", "b/a.txt", "b/z.txt"]
    assert [f.size for f in files] == [1, 2, 3]
    assert files[0].abspath == Path("/src/a.txt") and files[0].mtime is not None
    assert (len(table), table.bytes) == (3, 6)
    assert "b/a.txt" in table and "b" not in table and 3 not in table


def test_paging_crosses_page_boundaries_without_loss(
    table: FileTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filetable, "PAGE", 7)
    names = [f"d{i % 5}/f{i:03d}" for i in range(50)]
    table.extend(tf(n) for n in names)
    # two received names that are one path: both come back, the first received first
    table.add(tf("d0/f000", 9, original="d0/f000-second"))
    got = [(f.path, f.original_name) for f in table]
    assert [p for p, _ in got] == sorted([*names, "d0/f000"])
    assert got[:2] == [("d0/f000", "d0/f000"), ("d0/f000", "d0/f000-second")]


def test_excluded_and_equal_paths_are_narrowed_down(table: FileTable) -> None:
    table.extend([tf("Thumbs.db"), tf("a.txt", original="a1"), tf("a.txt", original="a2")])
    table.add(tf("b.txt"))
    table.exclude(["Thumbs.db"])
    table.keep_first_of_equal_paths()
    assert [(f.path, f.original_name) for f in table] == [("a.txt", "a1"), ("b.txt", "b.txt")]
    assert [f.path for f in table.discovered()] == ["Thumbs.db", "a.txt", "a.txt", "b.txt"]
    assert len(table) == 2 and "Thumbs.db" not in table
    got = table.get("a.txt")
    assert got is not None and got.original_name == "a1"
    table.remove(["b.txt"])
    assert [f.path for f in table] == ["a.txt"]


def test_supplied_digests_are_kept_and_conflicts_reported(table: FileTable) -> None:
    table.extend([tf("a.txt"), tf("b.txt"), tf("c.txt")])
    assert table.add_supplied("a.txt", "sha256", "aa") is None
    assert table.add_supplied("a.txt", "sha256", "aa") is None  # the same again: fine
    assert table.add_supplied("a.txt", "sha256", "ab") == "aa"  # a conflict: not kept
    table.add_supplied_many([("b.txt", "sha256", "bb"), ("b.txt", "md5", "b5")])
    assert {f.path: f.supplied for f in table} == {
        "a.txt": {"sha256": "aa"},
        "b.txt": {"sha256": "bb", "md5": "b5"},
        "c.txt": {},
    }
    assert dict(table.supplied) == {
        "a.txt": {"sha256": "aa"},
        "b.txt": {"sha256": "bb", "md5": "b5"},
    }
    assert len(table.supplied) == 2 and "c.txt" not in table.supplied
    assert list(table.without_supplied()) == ["c.txt"]


def test_names_that_are_not_utf8_survive(table: FileTable) -> None:
    bad = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    table.extend([tf(bad), tf("ok.txt")])
    assert {f.path for f in table} == {bad, "ok.txt"}
    assert bad in table
    table.exclude([bad])
    assert [f.path for f in table] == ["ok.txt"]


def test_threads_may_read_at_once(table: FileTable) -> None:
    table.extend(tf(f"f{i:05d}") for i in range(3000))
    counts: list[int] = []

    def read() -> None:
        counts.append(sum(1 for _ in table))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts == [3000] * 4


def test_sealed_table_takes_no_more_files_and_close_removes_it(table: FileTable) -> None:
    table.add(tf("a"))
    assert len(table) == 1
    with pytest.raises(RuntimeError):
        table.add(tf("b"))
    table.close()
    assert not table.path.exists()
