"""Fixtures for every test package. Keep this small: package fixtures live beside
their tests (tests/<package>/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.seaweedfs import SeaweedFS, require_weed, start_seaweedfs


@pytest.fixture(autouse=True)
def _clear_preservation_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PRESERVATION_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("PRESERVATION_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One real SeaweedFS server (S3 gateway on a free loopback port) for the session.

    Fails under CI=true when the weed binary is missing; skips elsewhere.
    """
    weed = require_weed()
    server = start_seaweedfs(weed, tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()
