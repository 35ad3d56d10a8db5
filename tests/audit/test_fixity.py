"""The checks on a local store: the direct-read fast path agrees with the generic one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from preservation.audit.fixity import FileTask, _hash_local, check_content, hash_object
from preservation.hashing import BLOCK_SIZE
from preservation.storage.local import LocalStore


class _GenericLocal(LocalStore):
    """A local store that the fast path does not recognise (exact type check)."""


SIZES = [0, 1, 4095, BLOCK_SIZE, BLOCK_SIZE + 1, 2 * BLOCK_SIZE + 17]


def _content(size: int) -> bytes:
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def _store(tmp_path: Path) -> LocalStore:
    root = tmp_path / "store"
    for size in SIZES:
        f = root / "aip" / "v1" / "data" / f"f{size}.bin"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(_content(size))
    return LocalStore("primary", "site-a", root)


@pytest.mark.parametrize("algs", [("sha256",), ("sha256", "sha512"), ("md5", "sha1")])
def test_fast_path_digests_equal_the_generic_read(tmp_path: Path, algs: tuple[str, ...]) -> None:
    store = _store(tmp_path)
    for size in SIZES:
        key = f"aip/v1/data/f{size}.bin"
        fast = _hash_local(store, key, algs)
        assert fast is not None
        assert fast == hash_object(store, key, algs, size)
        data = _content(size)
        assert fast[0]["sha256" if "sha256" in algs else "md5"] == hashlib.new(
            "sha256" if "sha256" in algs else "md5", data
        ).hexdigest()


def _task(key: str, size: int, sha256: str) -> FileTask:
    return FileTask(
        file_copy_id=1, copy_id=1, version_id=1, aip_id="aip", version=1, path="data/x",
        key=key, kind="payload", size=size, expected={"sha256": sha256},
        manifest={"sha256": sha256},
    )  # fmt: skip


def test_fast_and_generic_checks_give_the_same_findings(tmp_path: Path) -> None:
    store = _store(tmp_path)
    generic = _GenericLocal(store.name, store.site, store.root)
    good = hashlib.sha256(_content(4095)).hexdigest()
    cases = {
        "pass": _task("aip/v1/data/f4095.bin", 4095, good),
        "mismatch": _task("aip/v1/data/f4095.bin", 4095, "0" * 64),
        "size": _task("aip/v1/data/f4095.bin", 4096, good),
        "missing": _task("aip/v1/data/none.bin", 1, good),
        "unreadable": _task("aip/../escape.bin", 1, good),  # not a safe key
        "folder": _task("aip/v1/data", 1, good),  # a folder, not an object
    }
    for name, task in cases.items():
        fast = check_content(store, task, ("sha256",))
        slow = check_content(generic, task, ("sha256",))
        assert (fast.outcome, fast.detail, fast.actual_size, fast.digests) == (
            slow.outcome,
            slow.detail,
            slow.actual_size,
            slow.digests,
        ), name
        if name in ("pass", "mismatch", "size", "missing"):
            assert fast.outcome == name
