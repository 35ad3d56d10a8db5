"""The parts that make ingest fast and flat in memory: examination in worker processes,
the disk-backed work index, and local-store puts through anonymous files."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import Any

import pytest

from preservation.errors import DigestMismatch, ObjectExists, PreservationError
from preservation.ingest import examine
from preservation.ingest.examine import Examiner, examine_batch
from preservation.ingest.pathcheck import check_duplicates
from preservation.ingest.work_index import WorkIndex
from preservation.storage.local import LocalStore
from tests.support import transfers as T


def _items(root: Path) -> list[tuple[str, str]]:
    return sorted(
        (p.relative_to(root).as_posix(), str(p)) for p in root.rglob("*") if p.is_file()
    )


def test_worker_processes_find_what_the_ingest_process_finds(tmp_path: Path) -> None:
    source, _, _ = T.make_scanned_transfer(tmp_path / "scans", items=2, pages=2)
    (source / "notes.txt").write_text("plain text\n", encoding="utf-8")
    (source / "random.bin").write_bytes(os.urandom(3000))
    items = _items(source)
    here = examine_batch(items)
    with Examiner(workers=2, files=examine.IN_PROCESS_BELOW) as pool:
        assert not pool.in_process
        futures = [pool.submit(items[:3]), pool.submit(items[3:])]
        there = [f.result() for f in futures]
    assert {**there[0].formats, **there[1].formats} == here.formats
    assert {**there[0].properties, **there[1].properties} == here.properties
    assert there[0].findings + there[1].findings == here.findings
    tiffs = [p for p, info in here.formats.items() if p.endswith(".tif")]
    assert tiffs and all(here.formats[p].puid for p in tiffs)  # type: ignore[union-attr]
    assert all(here.properties[p]["open"] == "pass" for p in tiffs)
    # the workers say how much memory they used: the ingest reports it honestly
    assert 0 < pool.worker_peak_kb < 400 * 1024


def test_the_worker_starts_with_the_siegfried_gc_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Go reads GOGC from the environment a process was started with (what
    # /proc/PID/environ shows), not from os.environ changed later in that process.
    monkeypatch.delenv("GOGC", raising=False)
    source = T.make_folder_transfer(tmp_path)
    with Examiner(workers=1, files=examine.IN_PROCESS_BELOW) as pool:
        pool.submit(_items(source)).result()
        pid = pool.worker_pid
        assert pid is not None
        started_with = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"GOGC={examine.SIEGFRIED_GOGC}".encode() in started_with
        # a fresh interpreter that imports only what examining needs
        assert b"preservation.ingest.examine" in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert "GOGC" not in os.environ  # this process's environment is left alone


def test_the_worker_is_replaced_and_a_dead_worker_fails_the_batch_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = T.make_folder_transfer(tmp_path)
    items = _items(source)
    monkeypatch.setattr(examine, "TASKS_PER_WORKER", 2)
    with Examiner(workers=1, files=examine.IN_PROCESS_BELOW) as pool:
        pids = []
        for _ in range(3):
            assert len(pool.submit(items).result().formats) == len(items)
            pids.append(pool.worker_pid)
        assert pids[0] == pids[1] != pids[2]  # replaced after TASKS_PER_WORKER batches
        assert not Path(f"/proc/{pids[0]}").exists()  # told to exit, and reaped
        os.kill(pids[2], 9)  # the worker dies: this batch and every later one fail
        first, later = pool.submit(items), pool.submit(items)
        with pytest.raises(PreservationError, match=r"identification worker .* exit status -9"):
            first.result()
        with pytest.raises(PreservationError):
            later.result()


def test_an_error_raised_in_the_worker_reaches_the_caller_and_the_worker_goes_on(
    tmp_path: Path,
) -> None:
    source = T.make_folder_transfer(tmp_path)
    with Examiner(workers=1, files=examine.IN_PROCESS_BELOW) as pool:
        bad = pool.submit([("only-one-part",)])  # type: ignore[list-item]
        good = pool.submit(_items(source))
        with pytest.raises(ValueError):
            bad.result()
        assert len(good.result().formats) == 3


def test_closing_after_an_error_cancels_the_queued_batches_and_kills_the_worker(
    tmp_path: Path,
) -> None:
    source = T.make_folder_transfer(tmp_path)
    items = _items(source)
    pool = Examiner(workers=1, files=examine.IN_PROCESS_BELOW)
    pool.submit(items).result()
    pid = pool.worker_pid
    queued = [pool.submit(items) for _ in range(20)]
    pool.close(cancel=True)  # what the context manager does when the ingest fails
    assert any(f.cancelled() for f in queued)
    assert all(f.done() for f in queued)
    assert not Path(f"/proc/{pid}").exists()


def test_a_small_transfer_is_examined_in_process(tmp_path: Path) -> None:
    source = T.make_folder_transfer(tmp_path)
    with Examiner(workers=2, files=examine.IN_PROCESS_BELOW - 1) as pool:
        assert pool.in_process
        found = pool.submit(_items(source)).result()
    assert len(found.formats) == 3 and pool.worker_peak_kb == 0


def test_work_index_finds_duplicates_and_staging_problems(tmp_path: Path) -> None:
    index = WorkIndex(tmp_path / "index.sqlite")
    index.add_content([("b", 5, "aa"), ("a", 5, "aa"), ("c", 5, "bb"), ("e1", 0, "zz")])
    index.add_content([("d", 6, "aa"), ("e2", 0, "zz")])
    dups = list(index.duplicate_candidates())
    assert [d.path for d in dups] == ["a", "b"]  # same digest and size; empty files skipped
    (finding,) = check_duplicates(dups)
    assert finding.details["paths"] == ["a", "b"]

    index.expect([("s/1", 10), ("s/2", 20), ("s/3", 30)])
    index.found([("s/1", 10), ("s/2", 21), ("s/4", 1)])
    count, shown = index.staging_problems(limit=2)
    assert count == 3
    assert shown == ["s/2: expected 20 bytes, found 21", "s/3: expected 30 bytes, found None"]
    assert index.staging_problems(limit=5)[1][2] == "s/4: not expected"
    index.close()


class _Failing(io.RawIOBase):
    """Gives some bytes, then fails like a disk error in the source."""

    def __init__(self) -> None:
        self.calls = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        self.calls += 1
        if self.calls > 1:
            raise OSError(errno.EIO, "source failed")
        b[:4] = b"half"
        return 4


def _names(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_anonymous_puts_leave_nothing_on_failure(tmp_path: Path) -> None:
    store = LocalStore("p", "a", tmp_path / "store")
    info = store.put("x/y", io.BytesIO(b"data"), algorithms=("sha256", "sha512"), sync=False)
    assert store._anonymous is True  # this file system has O_TMPFILE
    assert set(info.digests) == {"sha256", "sha512"} and info.size == 4
    assert (store.root / "x" / "y").stat().st_mode & 0o777 == 0o444
    with pytest.raises(ObjectExists):
        store.put("x/y", io.BytesIO(b"other"))
    with pytest.raises(OSError, match="source failed"):
        store.put("x/z", io.BufferedReader(_Failing()))
    with pytest.raises(DigestMismatch):
        store.put("x/w", io.BytesIO(b"data"), size=5)
    with pytest.raises(DigestMismatch):
        store.put("x/v", io.BytesIO(b"data"), digests={"sha256": "0" * 64})
    assert _names(store.root) == ["x/y"]  # no temporary files, no partial objects
    assert (store.root / "x" / "y").read_bytes() == b"data"


def test_without_anonymous_files_the_temporary_name_path_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_tmpfile(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_tmpfile)
    store = LocalStore("p", "a", tmp_path / "store")
    store.put("k", io.BytesIO(b"one"))
    assert store._anonymous is False
    with pytest.raises(ObjectExists):
        store.put("k", io.BytesIO(b"two"))
    assert _names(store.root) == ["k"] and (store.root / "k").read_bytes() == b"one"


def test_anonymous_file_that_cannot_be_linked_is_named_the_other_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_link = os.link

    def no_proc_link(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if str(src).startswith("/proc/"):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", no_proc_link)
    store = LocalStore("p", "a", tmp_path / "store")
    info = store.put("a/b", io.BytesIO(b"bytes"), algorithms=("sha512",))
    assert store._anonymous is False and set(info.digests) == {"sha512"}
    assert _names(store.root) == ["a/b"] and (store.root / "a" / "b").read_bytes() == b"bytes"
