"""Budgets and resumption: a repository of a few thousand files is covered in the
expected number of runs, steady daily work covers a store within its interval, and a
run killed with SIGKILL is continued by the next one without losing or repeating
committed work."""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from preservation.audit import plan, runner
from preservation.audit.budget import Budget, parse_budget, parse_duration
from preservation.audit.runner import AuditRequest, run_audit
from preservation.catalog.models import EventRow, File, FileCopy, Job
from preservation.errors import UsageError
from preservation.repository import Repository
from tests.audit.builders import build_aip, content, make_repo
from tests.audit.conftest import PRIMARY_ONLY, log_rows

AIPS, FILES_PER_AIP, SIZE = 30, 100, 200
TAG_FILES = 6  # bagit, bag-info, manifest-sha256/512, tagmanifest-sha256/512
TOTAL = AIPS * (FILES_PER_AIP + TAG_FILES)


def _bulk(repo: Repository) -> None:
    for a in range(AIPS):
        build_aip(
            repo,
            {f"d/{i:03d}.bin": content(a * 1000 + i, SIZE) for i in range(FILES_PER_AIP)},
        )


def _age_all(repo: Repository, days: int) -> None:
    """Every file copy last verified ``days`` ago (due on a 90-day store)."""
    then = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    with repo.catalog.session() as s:
        s.execute(update(FileCopy).values(last_verified_at=then))


def _verified_since(repo: Repository, since: dt.datetime) -> int:
    with repo.catalog.session() as s:
        return int(
            s.execute(
                select(func.count())
                .select_from(FileCopy)
                .where(FileCopy.last_verified_at >= since, FileCopy.outcome == "pass")
            ).scalar_one()
        )


@pytest.fixture
def big(tmp_path: Path) -> Repository:
    repo = make_repo(tmp_path / "repo", PRIMARY_ONLY, extra="[audit]\nbatch_size = 500\n")
    _bulk(repo)
    return repo


@pytest.mark.slow
def test_object_budget_covers_in_expected_runs(
    big: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "FLUSH_COPIES", 3)  # events of finished copies go early
    _age_all(big, 100)
    start = dt.datetime.now(dt.UTC)
    budget = 1000
    runs = []
    while True:
        (r,) = run_audit(big, AuditRequest(store="primary", mode="full", budget=f"{budget}objects"))
        runs.append(r)
        if r.checked == 0:
            break
        assert len(runs) < 10
    assert [r.checked for r in runs] == [1000, 1000, 1000, TOTAL - 3000, 0]
    assert len(runs) - 1 == math.ceil(TOTAL / budget)
    assert [r.stopped_by for r in runs[:3]] == ["budget:objects"] * 3
    assert _verified_since(big, start) == TOTAL
    # every file checked exactly once: one Parquet row each
    rows = log_rows(big)
    assert len(rows) == TOTAL
    assert len({(r["aip"], r["path"]) for r in rows}) == TOTAL
    # one fixity check event per run and AIP copy (an AIP split by a budget: one per run)
    with big.catalog.session() as s:
        events = s.execute(
            select(EventRow.aip_id, EventRow.detail).where(EventRow.type == "fixity check")
        ).all()
    pairs = {(r["run_id"], r["aip"]) for r in rows}
    assert len(events) == len(pairs) == AIPS + 3
    assert {(d.split()[2].rstrip(":"), a) for a, d in events} == pairs


@pytest.mark.slow
def test_byte_budget_and_auto_share(big: Repository) -> None:
    with big.catalog.session() as s:
        total_bytes, biggest = s.execute(select(func.sum(File.size), func.max(File.size))).one()
    _age_all(big, 100)
    budget = 200_000
    checked_bytes: list[int] = []
    while True:
        (r,) = run_audit(big, AuditRequest(store="primary", mode="full", budget=f"{budget}B"))
        if r.checked == 0:
            break
        assert r.bytes <= budget
        checked_bytes.append(r.bytes)
    assert sum(checked_bytes) == total_bytes
    assert math.ceil(total_bytes / budget) <= len(checked_bytes)
    assert len(checked_bytes) <= math.ceil(total_bytes / (budget - biggest))

    # auto: the steady daily share covers the whole store within its interval, in
    # runs of about the same size, before anything is due (work ahead of time)
    interval = 3
    share = plan.auto_budget(TOTAL, int(total_bytes), interval, inventory=False)
    assert share.bytes == math.ceil(total_bytes / interval * plan.AUTO_SLACK)
    start = dt.datetime.now(dt.UTC)
    sizes = []
    for _ in range(interval):
        (r,) = run_audit(
            big, AuditRequest(store="primary", mode="full", budget=f"{share.bytes}B", ahead=True)
        )
        sizes.append(r.bytes)
    assert _verified_since(big, start) == TOTAL
    assert max(sizes[:-1]) <= share.bytes and min(sizes[:-1]) >= share.bytes - int(biggest)


def test_auto_budget_in_a_run(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        PRIMARY_ONLY.replace("fixity_interval_days = 90", "fixity_interval_days = 4"),
    )
    for a in range(4):
        build_aip(repo, {f"{i}.bin": content(a * 100 + i, 1000) for i in range(10)})
    start = dt.datetime.now(dt.UTC)
    runs = [run_audit(repo, AuditRequest(store="primary", budget="auto"))[0] for _ in range(4)]
    assert all(r.budget.startswith("auto (") for r in runs)
    assert _verified_since(repo, start) == 4 * 16
    assert all(r.checked > 0 for r in runs)


def test_due_only_by_default(repo: Repository) -> None:
    build_aip(repo, {"a.bin": content(1, 100)})
    (r,) = run_audit(repo, AuditRequest(store="primary"))
    assert r.checked == 0  # verified at ingest, not due for 90 days
    (r,) = run_audit(repo, AuditRequest(store="primary", ahead=True))
    assert r.checked == 7


def test_time_budget_stops_between_units(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    for a in range(3):
        build_aip(repo, {f"{i}.bin": content(a * 100 + i, 10) for i in range(40)})
    clock = [1000.0]

    def tick() -> float:
        clock[0] += 1.0  # every look at the clock costs a second
        return clock[0]

    monkeypatch.setattr(plan.time, "monotonic", tick)
    (r,) = run_audit(repo, AuditRequest(store="primary", ahead=True, budget="5s", workers=1))
    assert r.stopped_by == "budget:time"
    assert 0 < r.checked < 3 * 46


def test_budget_parsing() -> None:
    assert parse_budget("50GB") == Budget(bytes=50 * 10**9)
    assert parse_budget("1.5GiB").bytes == int(1.5 * 2**30)
    assert parse_budget("2h") == Budget(seconds=7200)
    assert parse_budget("1h30m").seconds == 5400
    assert parse_budget("1000objects") == Budget(objects=1000)
    assert parse_budget("250 files") == Budget(objects=250)
    assert parse_budget("50GB,2h") == Budget(bytes=50 * 10**9, seconds=7200)
    assert parse_budget("auto").auto and parse_budget(None).unlimited
    assert parse_duration("1d") == 86400
    for bad in ("lots", "5 parsecs", "0objects", "1GB,2GB", "-3h"):
        with pytest.raises(UsageError):
            parse_budget(bad)


def test_sample_is_seeded(repo: Repository) -> None:
    for a in range(5):
        build_aip(repo, {f"{i}.bin": content(a * 100 + i, 50) for i in range(40)})
    total = 5 * 46

    def sampled(seed: int) -> set[tuple[str, str]]:
        (r,) = run_audit(
            repo, AuditRequest(store="primary", mode="sample", seed=seed, fraction=0.25)
        )
        assert r.seed == seed and r.mode == "sample"
        return {(x["aip"], x["path"]) for x in log_rows(repo) if x["run_id"] == r.run_id}

    first, again, other = sampled(7), sampled(7), sampled(8)
    assert first == again != other
    assert 0.1 * total < len(first) < 0.4 * total
    with pytest.raises(UsageError):
        run_audit(repo, AuditRequest(store="primary", mode="full", fraction=0.5))


@pytest.mark.slow
def test_killed_run_resumes(big: Repository) -> None:
    _age_all(big, 100)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")},
        "PRESERVATION_FAULT_KILL_AT": "audit:after-batch",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "preservation", "--repo", str(big.root), "audit", "run",
         "--store", "primary", "--mode", "full"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    with big.catalog.session() as s:
        killed = s.execute(select(Job).where(Job.kind == "audit")).scalar_one()
        assert killed.state == "running" and killed.result["checked"] == 500
    assert len(log_rows(big)) == 500

    (r,) = run_audit(big, AuditRequest(store="primary", mode="full"))
    assert r.resumed == [killed.id]
    assert r.checked == TOTAL - 500  # the killed run's 500 committed checks are not redone
    rows = log_rows(big)
    assert len(rows) == TOTAL and len({(x["aip"], x["path"]) for x in rows}) == TOTAL
    with big.catalog.session() as s:
        job = s.get(Job, killed.id)
        assert job is not None and job.state == "failed" and "interrupted" in (job.error or "")
        # the killed run's evidence was completed: its PREMIS events were emitted
        events = (
            s.execute(select(EventRow.detail).where(EventRow.type == "fixity check"))
            .scalars()
            .all()
        )
        assert any(killed.id in d for d in events) and any(r.run_id in d for d in events)
        assert job.result["copies"] == {}  # every copy's event emitted...
        assert sum(killed.id in d for d in events) == job.result["copies_done"] > 0  # ...once
