"""Early reads (preservation.audit.early): files read while the command starts are
used by the run only where nothing it records changes; a file changed since, or a
lease held by someone else meanwhile, makes the run read the file itself."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from preservation.audit import early as early_mod
from preservation.audit.early import EarlyReads, start_early_reads
from preservation.audit.lease import lease
from preservation.audit.runner import AuditRequest, run_audit
from preservation.repository import Repository
from tests.audit.builders import build_aip, content, flip_byte
from tests.audit.conftest import log_rows

FILES = {f"big-{i}.bin": content(i, 300_000 + 1000 * i) for i in range(3)}
FILES["small.txt"] = content(9, 100)


@pytest.fixture(autouse=True)
def _small_files_count(monkeypatch: pytest.MonkeyPatch) -> None:
    # Test files are small and just written: read them early all the same.
    monkeypatch.setattr(early_mod, "MIN_SIZE", 1000)
    monkeypatch.setattr(early_mod, "SETTLED", 0.0)


def _start(repo: Repository, aip: str, **kw: Any) -> EarlyReads:
    options: dict[str, Any] = {
        "store": "primary",
        "aip": aip,
        "mode": "full",
        "algorithm": None,
        "all_digests": False,
        "budget": None,
        "fraction": None,
        "workers": 2,
    }
    early = start_early_reads(repo, **{**options, **kw})
    assert early is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the test waits for the reads to be done
        with early._lock:
            entries = list(early._entries.values())
            finished = early._files is None
        if finished and all(e.done.is_set() for e in entries):
            break
        time.sleep(0.01)
    assert len(entries) == 3  # the three big files, not the small one
    return early


def _rows(repo: Repository, run_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["path"], r["algorithm"]): r for r in log_rows(repo) if r["run_id"] == run_id}


def test_early_reads_give_the_same_evidence(repo: Repository) -> None:
    aip = build_aip(repo, FILES)
    (plain,) = run_audit(repo, AuditRequest(store="primary", aip=aip, all_digests=True))
    early = _start(repo, aip, all_digests=True)
    before = early.started_at
    try:
        (r,) = run_audit(
            repo, AuditRequest(store="primary", aip=aip, all_digests=True), early=early
        )
    finally:
        early.close()
    assert early.used
    assert r.outcomes == plain.outcomes == {"pass": len(FILES) + 6}
    assert r.started == before  # the run started when its first reads did
    rows, plain_rows = _rows(repo, r.run_id), _rows(repo, plain.run_id)
    assert rows.keys() == plain_rows.keys()  # one row per file and algorithm, as before
    for key, row in rows.items():
        for column in ("expected", "actual", "size", "actual_size", "outcome", "code"):
            assert row[column] == plain_rows[key][column], (key, column)
    for name in FILES:
        started = rows[(f"data/{name}", "sha256")]["started"]
        assert (started < r.finished) and ((started >= before) if "big" in name else True)
    big = rows[("data/big-0.bin", "sha256")]["started"]
    small = rows[("data/small.txt", "sha256")]["started"]
    assert big < small  # read early, before the run read the small file itself


def test_a_file_changed_after_its_early_read_is_read_again(repo: Repository) -> None:
    aip = build_aip(repo, FILES)
    early = _start(repo, aip)
    flip_byte(repo, "primary", f"{aip}/v1/data/big-1.bin")  # after the early read
    try:
        (r,) = run_audit(repo, AuditRequest(store="primary", aip=aip), early=early)
    finally:
        early.close()
    assert r.outcomes == {"pass": len(FILES) + 5, "mismatch": 1}  # 6 tag files
    assert [i["path"] for i in r.incidents] == ["data/big-1.bin"]
    assert early.used  # the other big files' reads were still good


def test_reads_made_while_someone_held_the_lease_are_not_used(repo: Repository) -> None:
    aip = build_aip(repo, FILES)
    early = _start(repo, aip)
    with lease(repo, "audit:primary"):  # a repair of the store, say, meanwhile
        pass
    try:
        (r,) = run_audit(repo, AuditRequest(store="primary", aip=aip), early=early)
    finally:
        early.close()
    assert not early.used
    assert r.outcomes == {"pass": len(FILES) + 6}


def test_unclaimed_reads_are_not_handed_out(repo: Repository) -> None:
    aip = build_aip(repo, FILES)
    early = _start(repo, aip)
    try:
        assert early.take(f"{aip}/v1/data/big-0.bin", ("sha256",)) is None
        early.claim(None)
        done = early.take(f"{aip}/v1/data/big-0.bin", ("sha256",))
        assert done is not None and list(done.digests) == ["sha256"]
        assert early.take(f"{aip}/v1/data/big-0.bin", ("sha256", "md5")) is None
        assert early.take(f"{aip}/v1/data/small.txt", ("sha256",)) is None
    finally:
        early.close()


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "inventory"},
        {"mode": "sample"},
        {"budget": "1GB"},
        {"aip": None},
        {"store": None},
        {"store": "nowhere"},
    ],
)
def test_early_reads_only_for_one_aip_in_full(repo: Repository, options: dict[str, Any]) -> None:
    aip = build_aip(repo, FILES)
    base: dict[str, Any] = {
        "store": "primary",
        "aip": aip,
        "mode": "full",
        "algorithm": None,
        "all_digests": False,
        "budget": None,
        "fraction": None,
        "workers": 2,
    }
    assert start_early_reads(repo, **{**base, **options}) is None


def test_keys_outside_the_aip_are_never_opened(repo: Repository, tmp_path: Path) -> None:
    aip = build_aip(repo, FILES)
    manifest = repo.config.resolve(Path("stores/primary")) / aip / "v1" / "manifest-sha256.txt"
    manifest.chmod(0o644)
    with manifest.open("a", encoding="utf-8") as f:
        f.write(f"{'0' * 64}  ../../../{tmp_path.name}/outside.bin\n")
    (tmp_path / "outside.bin").write_bytes(b"x" * 5000)
    early = _start(repo, aip)
    try:
        assert all(".." not in k for k in early._entries)
    finally:
        early.close()


def test_early_reads_can_be_turned_off(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    aip = build_aip(repo, FILES)
    monkeypatch.setenv(early_mod.ENV_SWITCH, "0")
    options: dict[str, Any] = {"algorithm": None, "all_digests": False, "budget": None,
                               "fraction": None, "workers": 2}  # fmt: skip
    assert start_early_reads(repo, store="primary", aip=aip, mode="full", **options) is None
