"""A copy in which an audit found damage is not counted as verified until repaired."""

from __future__ import annotations

from pathlib import Path

from preservation.audit.repair import repair_incidents
from preservation.audit.runner import AuditRequest, run_audit
from preservation.ingest.pipeline import IngestRequest, run_ingest
from preservation.repository import init_repository
from preservation.storage.health import health
from preservation.storage.replicate import replicate_pending
from tests.support import transfers as tr


def test_damaged_copy_is_not_verified_until_repaired(tmp_path: Path) -> None:
    repo = init_repository(tmp_path / "repo")
    folder = tr.make_folder_transfer(tmp_path / "in")
    receipt = run_ingest(repo, IngestRequest(source=folder))
    assert replicate_pending(repo).ok
    assert health(repo).exit_status == 0

    victim = repo.config.resolve(Path("stores/offsite")) / receipt.aip / "v1/data/doc-001.txt"
    data = bytearray(victim.read_bytes())
    data[0] ^= 0x01
    victim.chmod(0o644)
    victim.write_bytes(bytes(data))

    summaries = run_audit(repo, AuditRequest(store="offsite", mode="full", ahead=True,
                                             repair=False))  # fmt: skip
    assert sum(s.failures for s in summaries) == 1

    report = health(repo, include_all=True)
    assert report.exit_status == 1  # one verified copy left: below policy (2 copies)
    aip = next(a for a in report.to_dict()["aips"] if a["id"] == receipt.aip)
    assert aip["damaged_copies"] == ["offsite v1"]
    assert aip["verified_copies"] == 1 and not aip["meets_policy"]

    repair_incidents(repo)
    assert health(repo).exit_status == 0
