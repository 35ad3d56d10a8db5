"""Leases keep one holder per job across threads, processes and hosts; a dead or
silent holder is taken over. The whole audit path also runs on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from preservation.audit.lease import lease, process_alive
from preservation.audit.repair import repair_incidents
from preservation.audit.runner import AuditRequest, run_audit
from preservation.audit.status import audit_status
from preservation.catalog import audit_queries as aq
from preservation.errors import JobBusy
from preservation.repository import Repository
from tests.audit.builders import build_aip, content, delete, make_repo, place_replica
from tests.audit.conftest import log_rows
from tests.catalog.conftest import POSTGRES_URL, fresh_postgres_database

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _always(host: str | None, pid: int | None) -> bool:
    return True


def test_lease_rows(repo: Repository) -> None:
    host = socket.gethostname()
    with repo.catalog.session() as s:
        assert aq.acquire_lease(s, "x", host=host, pid=1, ttl_seconds=60, now=NOW,
                                alive=_always) is None  # fmt: skip
    with repo.catalog.session() as s:
        holder = aq.acquire_lease(s, "x", host="other", pid=2, ttl_seconds=60,
                                  now=NOW + dt.timedelta(seconds=30), alive=_always)  # fmt: skip
        assert holder is not None and holder.pid == 1
        # renewed by its holder only
        assert aq.renew_lease(s, "x", host=host, pid=1, now=NOW + dt.timedelta(seconds=50))
        assert not aq.renew_lease(s, "x", host="other", pid=2, now=NOW)
    with repo.catalog.session() as s:  # silent for longer than the ttl: taken over
        later = NOW + dt.timedelta(seconds=111)
        assert aq.acquire_lease(s, "x", host="other", pid=2, ttl_seconds=60, now=later,
                                alive=_always) is None  # fmt: skip
        assert not aq.release_lease(s, "x", host=host, pid=1, now=NOW)
        assert aq.release_lease(s, "x", host="other", pid=2, now=NOW)
    with repo.catalog.session() as s:  # released: free for anyone
        assert aq.acquire_lease(s, "x", host=host, pid=3, ttl_seconds=60, now=NOW,
                                alive=_always) is None  # fmt: skip


def test_dead_holder_on_this_host_is_taken_over(repo: Repository) -> None:
    dead = _dead_pid()
    assert not process_alive(socket.gethostname(), dead)
    assert process_alive("another-host", dead)  # can't tell: assume alive
    now = dt.datetime.now(dt.UTC)
    with repo.catalog.session() as s:
        aq.acquire_lease(s, "audit:primary", host=socket.gethostname(), pid=dead,
                         ttl_seconds=3600, now=now, alive=process_alive)  # fmt: skip
    with lease(repo, "audit:primary"):  # the dead holder does not block
        pass


def test_a_second_audit_of_a_store_is_refused(repo: Repository) -> None:
    build_aip(repo, {"a.bin": content(1, 10)})
    with repo.catalog.session() as s:  # a live audit in another process (our parent)
        now = dt.datetime.now(dt.UTC)
        aq.acquire_lease(s, "audit:primary", host=socket.gethostname(), pid=os.getppid(),
                         ttl_seconds=3600, now=now, alive=process_alive)  # fmt: skip
    with pytest.raises(JobBusy) as e:
        run_audit(repo, AuditRequest(store="primary", ahead=True))
    assert e.value.code == "AUD101" and e.value.exit_status == 9
    with (
        lease(repo, "audit:offsite"),
        pytest.raises(JobBusy, match="this process"),
        lease(repo, "audit:offsite"),
    ):
        pass


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not POSTGRES_URL:
        pytest.skip("PRESERVATION_TEST_POSTGRES_URL not set")
    with fresh_postgres_database(POSTGRES_URL) as url:
        yield url


@pytest.mark.postgres
def test_audit_and_repair_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    repo = make_repo(tmp_path / "repo", catalog_url=pg_url)
    try:
        aip = build_aip(repo, {f"{i}.bin": content(i, 100) for i in range(3)})
        place_replica(repo, aip, "offsite")
        delete(repo, "primary", f"{aip}/v1/data/1.bin")
        (r,) = run_audit(repo, AuditRequest(store="primary", budget="4objects", ahead=True))
        assert r.checked == 4 and r.stopped_by == "budget:objects"
        (r2,) = run_audit(repo, AuditRequest(store="primary", budget="5objects", ahead=True))
        assert r2.checked == 5 and r.failures + r2.failures == 1  # the rest, not run 1 again
        assert len({x["path"] for x in log_rows(repo)}) == 9
        assert repair_incidents(repo).ok
        status = audit_status(repo)
        primary = next(x for x in status["stores"] if x["store"] == "primary")
        assert primary["file_copies"] == 9 and primary["failing"] == 0
        assert primary["coverage"] == 1.0
        with repo.catalog.session() as s:
            assert aq.acquire_lease(s, "y", host="h", pid=1, ttl_seconds=5, now=NOW,
                                    alive=_always) is None  # fmt: skip
            assert aq.acquire_lease(s, "y", host="h2", pid=2, ttl_seconds=5, now=NOW,
                                    alive=_always) is not None  # fmt: skip
    finally:
        repo.catalog.dispose()
