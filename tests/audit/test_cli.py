"""The audit, repair and scheduler commands: JSON output and exit statuses."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from preservation.audit.scheduler import DEFAULT_SLOTS, resolve_function
from preservation.catalog.models import Copy
from preservation.cli import main
from preservation.repository import Repository
from tests.audit.builders import (
    LOCAL_STORES,
    build_aip,
    content,
    flip_byte,
    make_repo,
    place_replica,
)


class _Cli:
    """Runs the console entry point in this process, as a user would (exit statuses
    and error codes included)."""

    def __init__(self, repo: Repository, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
        self.repo, self.capsys, self.monkeypatch = repo, capsys, monkeypatch

    def __call__(self, *args: str) -> tuple[int, Any]:
        self.capsys.readouterr()
        self.monkeypatch.setattr(sys, "argv", ["preservation", "--repo", str(self.repo.root),
                                               "--json", *args])  # fmt: skip
        code = 0
        try:
            main()
        except SystemExit as e:
            code = int(e.code or 0)
        out = self.capsys.readouterr().out
        try:
            return code, json.loads(out) if out.strip() else None
        except json.JSONDecodeError:
            return code, out


@pytest.fixture
def run(repo: Repository, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> _Cli:  # fmt: skip
    return _Cli(repo, capsys, monkeypatch)


def test_audit_commands(repo: Repository, run: _Cli) -> None:
    aip = build_aip(repo, {f"{i}.bin": content(i, 64) for i in range(3)})
    place_replica(repo, aip, "offsite")

    code, data = run("audit", "run", "--store", "primary")
    assert code == 0 and data["runs"][0]["checked"] == 0  # nothing due yet
    code, data = run("audit", "run", "--store", "primary", "--ahead", "--budget", "5objects")
    assert code == 0 and data["ok"] and data["runs"][0]["checked"] == 5
    assert data["runs"][0]["stopped_by"] == "budget:objects"

    flip_byte(repo, "primary", f"{aip}/v1/data/1.bin")
    code, data = run("audit", "run", "--aip", aip, "--mode", "full")
    assert code == 4 and not data["ok"]
    assert [r["store"] for r in data["runs"]] == ["primary", "offsite"]
    (incident,) = data["runs"][0]["incidents"]
    assert incident["kind"] == "mismatch"

    code, status = run("audit", "status")
    assert code == 0
    primary = next(s for s in status["stores"] if s["store"] == "primary")
    assert primary["failing"] == 1 and primary["open_incidents"] == {"error": 1}
    assert primary["coverage"] < 1.0 and status["open_incidents"] == 1
    assert status["runs"][0]["store"] == "offsite"

    code, incidents = run("audit", "incidents")
    assert code == 0 and [i["id"] for i in incidents] == [incident["incident"]]

    code, data = run("repair")
    assert code == 2  # neither numbers nor --all
    code, data = run("repair", str(incident["incident"]))
    assert code == 0 and data["repaired"] == 1
    code, data = run("repair", str(incident["incident"]))
    assert code == 2  # AUD103: not open any more

    code, data = run("audit", "run", "--mode", "sample", "--fraction", "2")
    assert code == 2
    code, data = run("audit", "run", "--budget", "lots")
    assert code == 2


def test_scheduler_list_and_run_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(
        tmp_path / "repo",
        LOCAL_STORES.replace("fixity_interval_days = 90", "fixity_interval_days = 1"),
        extra='[scheduler.jobs.drill]\ncron = "0 5 * * 6"\nfunction = "preservation.no:drill"\n',
    )
    run = _Cli(repo, capsys, monkeypatch)
    aip = build_aip(repo, {"a.bin": content(1, 64)})
    code, jobs = run("scheduler", "list")
    assert code == 0
    by_id = {j["id"]: j for j in jobs}
    assert by_id["audit:primary"]["registered"] and by_id["audit:offsite"]["registered"]
    assert by_id["audit:primary"]["schedule"] == "0 2 * * *"
    # slots of later parts are there, registered only once their function exists
    for slot in ("format-risk", "report"):
        exists = resolve_function(str(DEFAULT_SLOTS[slot].function)) is not None
        assert by_id[slot]["registered"] == exists, by_id[slot]
    assert not by_id["drill"]["registered"]
    assert by_id["drill"]["reason"] == "preservation.no:drill does not exist (yet)"
    # the hourly replication catch-up, once: the offsite copy queued at ingest is made
    if by_id["replication"]["registered"]:
        code, data = run("scheduler", "run-once", "replication")
        assert code == 0, data
        with repo.catalog.session() as s:
            states = {c.store_name: c.state for c in s.query(Copy).all()}
        assert states == {"primary": "verified", "offsite": "verified"}
    flip_byte(repo, "primary", f"{aip}/v1/data/a.bin")
    code, data = run("scheduler", "run-once", "audit:primary")
    assert code == 4  # a 1-day interval: the daily share is the whole store
    assert data["result"]["runs"][0]["failures"] == 1
    code, data = run("scheduler", "run-once", "nonsense")
    assert code == 2
