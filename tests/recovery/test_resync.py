"""Store resync: an emptied store restored from a good one, verified, resumable.

The off-site store (local, and a real SeaweedFS bucket) is emptied; ``store resync``
runs in a child process that is killed (SIGKILL, PRESERVATION_FAULT_KILL_AT) after its
first copy; the rerun takes the job over, copies only what is missing, and the store
then holds every object with the right digest, its copies verified in the catalogue,
and the event log from which the catalogue can be rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from preservation.catalog.models import AipVersion, Copy, FileCopy, Job
from preservation.errors import UsageError
from preservation.repository import Repository
from preservation.storage.resync import resync_store
from tests.recovery.conftest import History
from tests.recovery.test_rebuild import check_rebuild


def digests(repo: Repository, store: str) -> dict[str, str]:
    out: dict[str, str] = {}
    st = repo.store(store)
    for info in st.list(""):
        if info.key.startswith((".", "quarantine/")):  # probes; evidence of that store
            continue
        with st.open(info.key) as fh:
            out[info.key] = hashlib.sha256(fh.read()).hexdigest()
    return out


def empty(repo: Repository, store: str) -> None:
    st = repo.store(store)
    for info in list(st.list("")):
        st.delete(info.key)
    assert not list(st.list(""))


def resync_killed_after_first_copy(repo: Repository) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")}
    env["PRESERVATION_FAULT_KILL_AT"] = "resync:after-copy"
    done = subprocess.run(
        [sys.executable, "-m", "preservation", "--repo", str(repo.root), "store", "resync",
         "--from", "primary", "--to", "offsite", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr


def check_resync(h: History, tmp_path: Path) -> None:
    repo = h.repo
    before = digests(repo, "offsite")
    assert any("/events/" in k for k in before)
    empty(repo, "offsite")

    resync_killed_after_first_copy(repo)
    with repo.catalog.session() as s:
        states = sorted(
            s.execute(
                select(AipVersion.number, Copy.state)
                .join(AipVersion, AipVersion.id == Copy.version_id)
                .where(Copy.store_name == "offsite")
            ).all()
        )
        job = s.execute(select(Job).where(Job.kind == "resync")).scalar_one()
    assert [st for _, st in states].count("verified") == 1, states
    assert job.state == "running"  # its process was killed

    report = resync_store(repo, source="primary", target="offsite")
    assert report.ok and report.resumed and report.job == job.id, report.to_dict()
    assert (report.copies, report.already, report.verified) == (3, 1, 2)
    # what the killed run copied (version 1's objects, which versions 2 and 3 reuse)
    # is found intact and kept, not written again
    assert report.objects_present > 0 and report.objects_copied > 0
    after = digests(repo, "offsite")
    assert {k: after.get(k) for k in before} == before
    assert {k for k in after if k not in before} == {
        k for k in after if "/events/" in k and k not in before
    }  # new: the replication events of the resync itself
    with repo.catalog.session() as s:
        rows = s.execute(
            select(Copy.state, FileCopy.outcome)
            .join(FileCopy, FileCopy.copy_id == Copy.id)
            .where(Copy.store_name == "offsite")
        ).all()
        job_state = s.get(Job, job.id)
    assert rows and all(r == ("verified", "pass") for r in rows)
    assert job_state is not None and job_state.state == "done"
    # the restored store alone rebuilds the catalogue
    check_rebuild(h, "offsite", f"sqlite:///{tmp_path / 'after-resync.sqlite'}")
    with pytest.raises(UsageError, match="same store"):
        resync_store(repo, source="offsite", target="offsite")


def test_resync_local(local_history: History, tmp_path: Path) -> None:
    check_resync(local_history, tmp_path)


@pytest.mark.seaweedfs
def test_resync_seaweedfs(s3_history: History, tmp_path: Path) -> None:
    check_resync(s3_history, tmp_path)
