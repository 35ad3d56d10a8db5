"""The scheduler as it runs in production: ``preservation scheduler`` processes with real
APScheduler jobs on short intervals, their job store in the catalogue database.

- Two scheduler processes on one repository: only one is active; jobs never overlap
  (neither a slow job with itself nor two runs of one store's audit); SIGTERM stops the
  active one cleanly (exit 0) and the other takes over with the same job store.
- A run missed while no scheduler was running runs once (coalesced) at start-up.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from preservation.catalog.models import Job
from preservation.repository import Repository
from tests.audit.builders import build_aip, content, make_repo

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _start(repo: Repository, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "preservation", "--repo", str(repo.root), "--log-level",
             "INFO", "scheduler"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _wait_for(log: Path, text: str, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return time.time()
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {log}:\n{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"no clean stop:\n{log.read_text(errors='replace')[-3000:]}") from None
    assert code == 0, log.read_text(errors="replace")[-3000:]


def _probes(repo: Repository, name: str) -> list[dict[str, Any]]:
    path = repo.root / f"probe-{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _disjoint(spans: list[tuple[float, float]]) -> bool:
    spans = sorted(spans)
    return all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_one_active_scheduler_no_overlap_and_takeover(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        extra="""
[audit]
lease_seconds = 6

[scheduler]
misfire_grace = "1h"
audit = { interval = "2s" }
replication = { interval = "1h", enabled = false }

[scheduler.jobs.slow]
interval = "1s"
function = "tests.audit.schedjobs:slow_probe"
""",
    )
    for a in range(2):
        build_aip(repo, {f"{i}.bin": content(a * 10 + i, 100) for i in range(5)})
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = _start(repo, log_a)
    _wait_for(log_a, "scheduler active")
    b = _start(repo, log_b)
    try:
        _wait_for(log_b, "standby")
        time.sleep(5)
        before = _probes(repo, "slow")
        assert {p["pid"] for p in before} == {a.pid}  # B stood by
        _stop(a, log_a)
        _wait_for(log_b, "scheduler active")
        time.sleep(5)
    finally:
        if a.poll() is None:
            a.kill()
    _stop(b, log_b)

    probes = _probes(repo, "slow")
    assert {p["pid"] for p in probes} == {a.pid, b.pid}  # the job went on after the restart
    assert _disjoint([(p["start"], p["end"]) for p in probes])  # never two at a time
    assert len(probes) >= 4
    with repo.catalog.session() as s:
        jobs = s.execute(select(Job).where(Job.kind.in_(("audit", "schedule")))).scalars().all()
    audits = [j for j in jobs if j.kind == "audit"]
    scheduled = [j for j in jobs if j.kind == "schedule"]
    for store in ("primary", "offsite"):
        runs = [j for j in audits if j.params["store"] == store]
        assert runs and all(j.state == "done" for j in runs)
        assert _disjoint([(j.created_at.timestamp(), j.updated_at.timestamp()) for j in runs])
    assert {j.params["job"] for j in scheduled} >= {"audit:primary", "audit:offsite", "slow"}
    assert {j.params["trigger"] for j in scheduled} == {"scheduler"}
    for log in (log_a, log_b):
        assert "Traceback" not in log.read_text(errors="replace")


def test_missed_run_runs_once_at_start_up(tmp_path: Path) -> None:
    interval = 6.0
    repo = make_repo(
        tmp_path / "repo",
        extra=f"""
[audit]
lease_seconds = 6

[scheduler]
misfire_grace = "1h"
audit = {{ cron = "0 3 * * *" }}
replication = {{ interval = "1h", enabled = false }}

[scheduler.jobs.quick]
interval = "{interval:g}s"
function = "tests.audit.schedjobs:quick_probe"
""",
    )
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = _start(repo, log_a)
    registered = _wait_for(log_a, "scheduler active")  # the job's interval starts here
    _stop(a, log_a)  # the job is in the job store, due `interval` seconds after it
    assert _probes(repo, "quick") == []
    time.sleep(max(0.0, registered + 2 * interval + 0.5 - time.time()))  # two runs missed

    started = time.time()
    b = _start(repo, log_b)
    try:
        active = _wait_for(log_b, "scheduler active")
        # the next run on the job's own schedule; wait until just before it
        next_regular = registered + math.ceil((active - registered) / interval) * interval
        time.sleep(max(0.5, min(next_regular - 0.5, active + 3.0) - time.time()))
        early = [p for p in _probes(repo, "quick") if p["start"] < next_regular - 0.3]
    finally:
        _stop(b, log_b)
    # the missed runs were coalesced into one run, at start-up
    assert len(early) == 1, (early, log_b.read_text()[-3000:])
    assert started <= early[0]["start"] <= active + 2.0
    assert "Traceback" not in log_b.read_text(errors="replace")
