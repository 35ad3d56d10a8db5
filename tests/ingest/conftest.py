"""Fixtures for the ingest tests; data builders live in tests/support/transfers.py."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from preservation.config import IngestSettings
from preservation.ingest.findings import Finding


@pytest.fixture
def settings() -> IngestSettings:
    return IngestSettings()


@pytest.fixture
def tight() -> IngestSettings:
    """Low limits, so that small test archives can exceed them."""
    return IngestSettings(
        max_archive_bytes=4 * 1024 * 1024, max_archive_files=50, max_compression_ratio=20.0
    )


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    return tmp_path / "staging"


def codes(findings: Iterable[Finding]) -> list[str]:
    """The codes of ``findings``, sorted (duplicates kept)."""
    return sorted(f.code for f in findings)


def only(findings: Iterable[Finding], code: str) -> list[Finding]:
    return [f for f in findings if f.code == code]
