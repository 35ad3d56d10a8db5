"""Behaviour particular to the local store: crash-safe writes, read-only files, no
temporary names in listings, OS errors mapped to the error tree."""

from __future__ import annotations

import errno
import io
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from preservation.errors import (
    AccessDenied,
    InvalidKey,
    ObjectExists,
    StorageError,
    StorageFull,
)
from preservation.storage.local import LocalStore


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore("primary", "site-a", tmp_path / "root")


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_stored_files_are_read_only_and_named_by_key(store: LocalStore) -> None:
    store.put("aip/v1/data/a.txt", io.BytesIO(b"a"))
    path = store.root / "aip" / "v1" / "data" / "a.txt"
    assert path.read_bytes() == b"a"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert files(store.root) == ["aip/v1/data/a.txt"]


def test_temporary_names_never_show_and_cannot_be_keys(store: LocalStore) -> None:
    store.put("d/real", io.BytesIO(b"1"))
    leftover = store.root / "d" / f".real.tmp-{'0' * 32}"  # as a crash would leave it
    leftover.write_bytes(b"partial")
    assert [o.key for o in store.list()] == ["d/real"]
    with pytest.raises(InvalidKey, match="temporary"):
        store.put(f"d/.x.tmp-{'a' * 32}", io.BytesIO(b"2"))
    # names that are not valid keys (not NFC) are not listed either
    (store.root / "d" / "cafe\u0301").write_bytes(b"nfd")
    assert [o.key for o in store.list()] == ["d/real"]


def flaky_os(monkeypatch: pytest.MonkeyPatch, name: str, err: int) -> None:
    real = getattr(os, name)
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(err, os.strerror(err))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, failing)


def test_disk_full_is_storage_full_and_leaves_nothing(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.root.mkdir()
    flaky_os(monkeypatch, "fsync", errno.ENOSPC)
    with pytest.raises(StorageFull) as info:
        store.put("k", io.BytesIO(b"data" * 1000))
    assert info.value.code == "STO006"
    assert files(store.root) == []
    assert [f.name for f in store.root.iterdir()] == []


def test_permission_denied_is_access_denied(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.root.mkdir()
    flaky_os(monkeypatch, "open", errno.EACCES)
    with pytest.raises(AccessDenied) as info:
        store.put("k", io.BytesIO(b"data"))
    assert info.value.code == "STO004"
    assert files(store.root) == []


def test_other_os_errors_are_storage_errors(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.root.mkdir()
    flaky_os(monkeypatch, "fsync", errno.EIO)
    with pytest.raises(StorageError, match="errno 5"):
        store.put("k", io.BytesIO(b"data"))
    assert files(store.root) == []


def test_without_hard_links_overwrite_false_still_refuses(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    store.put("k", io.BytesIO(b"one"))
    with pytest.raises(ObjectExists):
        store.put("k", io.BytesIO(b"two"))
    store.move("k", "moved")
    assert files(store.root) == ["moved"]
    assert (store.root / "moved").read_bytes() == b"one"


def test_a_key_cannot_go_below_an_object(store: LocalStore) -> None:
    store.put("a", io.BytesIO(b"file"))
    with pytest.raises(InvalidKey, match="cannot be a folder"):
        store.put("a/b", io.BytesIO(b"x"))
    store.put("d/e", io.BytesIO(b"x"))
    with pytest.raises(InvalidKey, match="folder"):
        store.put("d", io.BytesIO(b"x"))


def test_delete_prunes_empty_folders_but_keeps_the_root(store: LocalStore) -> None:
    store.put("x/y/z/deep", io.BytesIO(b"1"))
    store.put("x/keep", io.BytesIO(b"2"))
    store.delete("x/y/z/deep")
    assert [p.relative_to(store.root).as_posix() for p in store.root.rglob("*")] == [
        "x",
        "x/keep",
    ]
    store.delete("x/keep")
    assert store.root.is_dir()
    assert list(store.root.iterdir()) == []


def test_list_of_a_missing_root_is_empty(store: LocalStore) -> None:
    assert list(store.list()) == []
    assert list(store.list("a/b/")) == []


def test_concurrent_puts_and_deletes_in_one_folder(store: LocalStore) -> None:
    """A delete prunes an emptied folder while another thread is about to write in it."""
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(60):
                key = f"shared/deep/{n}-{i}"
                store.put(key, io.BytesIO(b"x"))
                store.delete(key)
        except BaseException as e:  # collected and reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list(store.list()) == []
