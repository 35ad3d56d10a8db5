"""The same audit on a real Dask cluster (``distributed.LocalCluster``, two worker
processes), through the one executor interface: same findings as on threads, the
reads done in the worker processes, each site's store read only by the worker
offering that site's resource."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from preservation.audit.executor import DaskExecutor, ThreadExecutor, make_executor
from preservation.audit.runner import AuditRequest, run_audit
from preservation.errors import ConfigError
from preservation.repository import Repository
from tests.audit.builders import build_aip, content, flip_byte, make_repo, place_replica
from tests.audit.conftest import log_rows

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """Two worker processes: one offers resource site-a, the other site-b."""
    c = distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        resources={"site-a": 4},
    )
    c.new_spec["options"]["resources"] = {"site-b": 4}
    c.scale(2)
    client = distributed.Client(c)
    client.wait_for_workers(2, timeout=60)
    client.close()
    yield c
    c.close()


def _repo(tmp_path: Path) -> tuple[Repository, str]:
    repo = make_repo(tmp_path / "repo")
    aip = ""
    for a in range(3):
        aip = build_aip(repo, {f"{i}.bin": content(a * 100 + i, 2000 + i) for i in range(20)})
        place_replica(repo, aip, "offsite")
    flip_byte(repo, "offsite", f"{aip}/v1/data/7.bin")
    return repo, aip


def test_audit_on_dask_matches_threads_and_is_pinned(tmp_path: Path, cluster: object) -> None:
    repo, _ = _repo(tmp_path)
    client = distributed.Client(cluster)
    try:
        pid_of = client.run(os.getpid)  # worker address -> pid
        pids = {
            next(iter(w["resources"])): pid_of[address]
            for address, w in client.scheduler_info()["workers"].items()
        }
        assert set(pids) == {"site-a", "site-b"}
        assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
        with DaskExecutor(client, pin_to_site=True) as ex:
            dask_runs = run_audit(repo, AuditRequest(mode="full", ahead=True), executor=ex)
            with pytest.raises(ConfigError, match="site-c"):
                list(ex.map(len, [[1]], site="site-c"))
    finally:
        client.close()
    rows = log_rows(repo)
    for run in dask_runs:
        workers = {r["worker"] for r in rows if r["run_id"] == run.run_id}
        expected_pid = pids[run.site]
        assert workers == {f"{os.uname().nodename}:{expected_pid}"}, (run.store, workers)
    outcomes = {r.store: r.outcomes for r in dask_runs}
    assert outcomes == {"primary": {"pass": 78}, "offsite": {"pass": 77, "mismatch": 1}}

    # the same audit on threads finds the same
    with ThreadExecutor(4) as ex:
        thread_runs = run_audit(repo, AuditRequest(mode="full", ahead=True), executor=ex)
    assert {r.store: r.outcomes for r in thread_runs} == outcomes
    assert {r["worker"] for r in log_rows(repo) if r["run_id"] == thread_runs[0].run_id} == {
        f"{os.uname().nodename}:{os.getpid()}"
    }


def test_executor_from_configuration(tmp_path: Path, cluster: object) -> None:
    address = cluster.scheduler_address  # type: ignore[attr-defined]
    repo = make_repo(tmp_path / "repo", extra=f'[executor]\nkind = "dask"\naddress = "{address}"\n')
    aip = build_aip(repo, {f"{i}.bin": content(i, 500) for i in range(10)})
    with make_executor(repo.config) as ex:
        assert isinstance(ex, DaskExecutor) and not ex.pin_to_site
    (run,) = run_audit(repo, AuditRequest(store="primary", aip=aip))
    assert run.outcomes == {"pass": 16}
    workers = {r["worker"] for r in log_rows(repo)}
    assert f"{os.uname().nodename}:{os.getpid()}" not in workers
