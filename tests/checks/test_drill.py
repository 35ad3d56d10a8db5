"""Restore drills: from the command line, and as the scheduler's ``restore-drill`` job
in a real ``preservation scheduler`` process; a damaged off-site copy fails the drill
and the failure is recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from preservation.catalog.models import EventRow, Job
from preservation.config import CONFIG_NAME
from preservation.repository import Repository, open_repository
from tests.audit.builders import flip_byte
from tests.checks.conftest import Cli

ROOT = Path(__file__).resolve().parents[2]


def _drill_events(repo: Repository) -> list[EventRow]:
    with repo.catalog.session() as s:
        rows = s.execute(select(EventRow).where(EventRow.type == "validation")).scalars().all()
        return [e for e in rows if e.detail.startswith("restore drill")]


def _damage_offsite(repo: Repository, aip: str) -> str:
    key = next(i.key for i in repo.store("offsite").list(f"{aip}/v1/data/"))
    flip_byte(repo, "offsite", key)
    return key


def test_drill_command(repo: Repository, aips: list[str], cli: Cli) -> None:
    code, data = cli("drill", "--count", "3")
    assert code == 0, data
    assert data["store"] == "offsite" and data["restored"] == 3
    assert sorted(a["aip"] for a in data["aips"]) == sorted(aips)
    assert all(a["files"] > 0 and a["problems"] == [] for a in data["aips"])
    assert {e.outcome for e in _drill_events(repo)} == {"success"}
    assert not list(repo.config.staging_dir.glob("drill-*"))  # scratch folders removed

    _damage_offsite(repo, aips[1])
    code, data = cli("drill", "--count", "3", "--seed", "7")
    assert code == 1 and data["failed"] == 1
    bad = next(a for a in data["aips"] if not a["ok"])
    assert bad["aip"] == aips[1] and "FIX001" in bad["problems"][0]
    assert not list(repo.config.staging_dir.glob("drill-*"))
    failures = [e for e in _drill_events(repo) if e.outcome == "failure"]
    assert [(e.aip_id, e.store_name) for e in failures] == [(aips[1], "offsite")]
    with repo.catalog.session() as s:
        query = select(Job).where(Job.kind == "drill").order_by(Job.created_at)
        assert [j.state for j in s.execute(query).scalars()] == ["done", "failed"]
    assert cli("drill", "--store", "nowhere")[0] == 2


def _jobs(repo: Repository, kind: str) -> list[dict[str, Any]]:
    with repo.catalog.session() as s:
        rows = s.execute(select(Job).where(Job.kind == kind).order_by(Job.created_at)).scalars()
        return [{"state": j.state, "result": j.result, "params": j.params} for j in rows]


def _wait(repo: Repository, done: Any, log: Path, timeout: float = 40.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [j for j in _jobs(repo, "drill") if j["state"] in ("done", "failed")]
        if done(jobs):
            return jobs
        time.sleep(0.2)
    raise AssertionError(f"no drill as expected:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.mark.slow
def test_restore_drill_runs_from_the_scheduler(
    repo: Repository, aips: list[str], tmp_path: Path
) -> None:
    path = repo.root / CONFIG_NAME
    path.write_text(path.read_text(encoding="utf-8") + """
[audit]
lease_seconds = 6

[scheduler]
misfire_grace = "1h"
audit = { cron = "0 3 * * *" }
replication = { interval = "1h", enabled = false }

[scheduler.jobs.restore-drill]
interval = "2s"
function = "preservation.checks.drill:scheduled_drill"

[scheduler.jobs.format-risk]
cron = "0 3 * * 0"
enabled = false

[drill]
count = 3
""", encoding="utf-8")  # fmt: skip
    repo = open_repository(repo.root)
    log = tmp_path / "scheduler.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "preservation", "--repo", str(repo.root), "--log-level",
             "INFO", "scheduler"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        first = _wait(repo, lambda jobs: len(jobs) >= 1, log)
        assert first[0]["state"] == "done" and first[0]["result"]["restored"] == 3
        _damage_offsite(repo, aips[2])
        jobs = _wait(repo, lambda jobs: any(j["state"] == "failed" for j in jobs), log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=30) == 0, log.read_text(errors="replace")[-3000:]
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    failed = next(j for j in jobs if j["state"] == "failed")
    assert failed["result"]["ok"] is False and failed["params"]["store"] == "offsite"
    assert [a["aip"] for a in failed["result"]["aips"] if not a["ok"]] == [aips[2]]
    scheduled = [j for j in _jobs(repo, "schedule") if j["params"]["job"] == "restore-drill"]
    assert scheduled and {j["params"]["trigger"] for j in scheduled} == {"scheduler"}
    assert {j["state"] for j in scheduled} == {"done"}  # the job ran; the drill failed
    outcomes = {(e.aip_id, e.outcome) for e in _drill_events(repo)}
    assert (aips[2], "failure") in outcomes and (aips[0], "success") in outcomes
    assert "Traceback" not in log.read_text(errors="replace")
