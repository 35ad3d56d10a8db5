"""Replication, health and deletion with the catalogue on PostgreSQL (when
PRESERVATION_TEST_POSTGRES_URL names a server): row locks, window functions and JSON
columns behave as on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from preservation.repository import Repository
from preservation.storage.deletion import approve_deletion, request_deletion
from preservation.storage.health import health
from preservation.storage.replicate import replicate_pending
from tests.catalog.conftest import POSTGRES_URL, fresh_postgres_database
from tests.replication.helpers import (
    copy_states,
    events_of,
    ingest_aip,
    local_store,
    small_files,
    write_repo,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="PRESERVATION_TEST_POSTGRES_URL not set"),
]


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    with fresh_postgres_database(POSTGRES_URL) as url:
        repo = write_repo(
            tmp_path / "repo",
            {
                "primary": local_store("stores/primary", "site-a", "primary"),
                "offsite": local_store("stores/offsite", "site-b"),
            },
            catalog_url=url,
        )
        try:
            yield repo
        finally:
            repo.catalog.dispose()


def test_replicate_health_and_delete_on_postgresql(repo: Repository, tmp_path: Path) -> None:
    a = ingest_aip(repo, tmp_path / "in", "T1", small_files("pg1"))
    b = ingest_aip(repo, tmp_path / "in", "T2", small_files("pg2"))
    first = health(repo)
    assert first.exit_status == 1
    offsite = next(s for s in first.to_dict()["stores"] if s["name"] == "offsite")
    assert offsite["oldest_unverified"]["aip"] == a

    report = replicate_pending(repo)

    assert report.ok and report.count("verified") == 2
    assert copy_states(repo, b)[(1, "offsite")] == "verified"
    assert health(repo).exit_status == 0
    request = request_deletion(repo, a, reason="test", user="alice")
    result = approve_deletion(repo, request["id"], user="bob")
    assert result.request["state"] == "completed"
    assert [e.outcome for e in events_of(repo, a, "deletion")] == ["success"]
    assert health(repo).to_dict()["aip_totals"]["deleted"] == 1


def test_paged_walk_follows_the_server_collation(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files of a version are read in pages keyed by path (``path > last`` and
    ``ORDER BY path`` compare under the same collation, whatever the server's is):
    every file is read exactly once."""
    from preservation.storage import replicate as rep
    from tests.replication.helpers import aip_keys, expected_keys

    monkeypatch.setattr(rep, "FILE_PAGE", 2)
    names = ["B.txt", "a.txt", "_x.txt", "Z-1.txt", "z_2.txt", "é.txt", "e.txt", "A b.txt"]
    aip = ingest_aip(repo, tmp_path / "in", "T1", {n: f"{n} bytes".encode() for n in names})

    report = replicate_pending(repo)

    [result] = report.results
    assert result.outcome == "verified", result.error
    assert result.objects == result.copied == len(expected_keys(repo, aip))
    assert aip_keys(repo.store("offsite"), aip) == expected_keys(repo, aip)
