"""Fixtures of the audit tests: repositories with two stores (local + local, or local
+ a real SeaweedFS bucket), and a helper to read the Parquet audit log."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from preservation.audit.parquet_log import read_log
from preservation.repository import Repository
from tests.audit.builders import ACCESS_ENV, SECRET_ENV, make_repo, s3_store_toml
from tests.support.seaweedfs import SeaweedFS

PRIMARY_ONLY = """
[stores.primary]
type = "local"
path = "stores/primary"
site = "site-a"
role = "primary"
fixity_interval_days = 90
"""


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    """Two local stores on two sites: primary (90 days) and offsite (180 days)."""
    return make_repo(tmp_path / "repo")


@pytest.fixture
def s3_repo(tmp_path: Path, seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> Repository:
    """A local primary and an off-site replica in a fresh SeaweedFS bucket."""
    bucket = seaweedfs.make_bucket(f"audit-{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv(ACCESS_ENV, seaweedfs.access_key)
    monkeypatch.setenv(SECRET_ENV, seaweedfs.secret_key)
    return make_repo(
        tmp_path / "repo", PRIMARY_ONLY + s3_store_toml("offsite", seaweedfs, bucket, site="site-b")
    )


def log_rows(repo: Repository) -> list[dict[str, Any]]:
    folder = repo.config.resolve(repo.config.settings.audit.log_dir)
    if not folder.exists():
        return []
    rows: list[dict[str, Any]] = read_log(folder).to_pylist()
    return rows
