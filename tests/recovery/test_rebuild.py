"""Catalogue rebuild from one store alone, compared table by table with the original.

The repository has three versions (a migration and a metadata correction), a
replication, two audits and a repair (tests/recovery/conftest.py). The catalogue is
rebuilt from the primary and from the off-site store (local, and a real SeaweedFS
bucket) into a fresh SQLite database, and into a fresh PostgreSQL schema when
PRESERVATION_TEST_POSTGRES_URL is set; every substantive column must agree and the
event chain must verify with the original hashes.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from preservation.catalog.db import Catalog
from preservation.catalog.events import verify_chain
from preservation.catalog.models import (
    AgentRow,
    Aip,
    AipVersion,
    Copy,
    EventRow,
    File,
    FileCopy,
)
from preservation.errors import UsageError
from preservation.recovery.rebuild import rebuild_catalog
from tests.recovery.conftest import Done, History

AIP_COLUMNS = ("id", "reference_code", "title", "transfer_name", "fonds", "year",
               "security_level", "open_status", "retention", "state", "current_version",
               "payload_key", "public")  # fmt: skip
VERSION_COLUMNS = ("id", "reason", "file_count", "byte_count", "mets_sha256", "bag_sha256",
                   "descriptive")  # fmt: skip
FILE_COLUMNS = ("kind", "size", "sha256", "sha512", "puid", "mime", "format_name",
                "format_version", "file_uuid", "origin_version", "record_reference_code",
                "original_name", "role", "derived_from", "properties")  # fmt: skip
# read at import: the autouse fixture clears PRESERVATION_* variables for each test
POSTGRES_URL = os.environ.get("PRESERVATION_TEST_POSTGRES_URL", "")
EVENT_COLUMNS = ("id", "aip_id", "version_id", "store_name", "type", "datetime", "outcome",
                 "detail", "outcome_detail", "agents", "objects", "prev_hash", "hash")  # fmt: skip


def snapshot(s: Session) -> dict[str, Any]:
    """The substantive content of every table a rebuild writes, keyed by natural keys."""
    out: dict[str, Any] = {}
    out["aips"] = {
        a.id: {c: getattr(a, c) for c in AIP_COLUMNS if hasattr(a, c)}
        for a in s.execute(sa.select(Aip)).scalars()
    }
    out["versions"] = {
        (v.aip_id, v.number): {c: getattr(v, c) for c in VERSION_COLUMNS}
        for v in s.execute(sa.select(AipVersion)).scalars()
    }
    out["files"] = {
        (aip, n, f.path): {c: getattr(f, c) for c in FILE_COLUMNS}
        for f, aip, n in s.execute(
            sa.select(File, AipVersion.aip_id, AipVersion.number).join(
                AipVersion, AipVersion.id == File.version_id
            )
        )
    }
    out["copies"] = {
        (aip, n, c.store_name): (c.state, c.verified_at is not None, c.last_audit_at is not None)
        for c, aip, n in s.execute(
            sa.select(Copy, AipVersion.aip_id, AipVersion.number).join(
                AipVersion, AipVersion.id == Copy.version_id
            )
        )
    }
    version = aliased(AipVersion)
    out["file_copies"] = {
        (aip, n, store, path): (outcome, verified is not None)
        for aip, n, store, path, outcome, verified in s.execute(
            sa.select(
                version.aip_id,
                version.number,
                FileCopy.store_name,
                File.path,
                FileCopy.outcome,
                FileCopy.last_verified_at,
            )
            .join(File, File.id == FileCopy.file_id)
            .join(version, version.id == File.version_id)
        )
    }
    out["events"] = [
        {c: getattr(e, c) for c in EVENT_COLUMNS}
        for e in s.execute(sa.select(EventRow).order_by(EventRow.seq)).scalars()
    ]
    out["agents"] = {
        a.id: (a.name, a.type, a.version) for a in s.execute(sa.select(AgentRow)).scalars()
    }
    return out


def _diff(x: Any, y: Any) -> Any:
    if isinstance(x, dict) and isinstance(y, dict):
        return {c: (x.get(c), y.get(c)) for c in x.keys() | y.keys() if x.get(c) != y.get(c)}
    return (x, y)


def assert_same(original: dict[str, Any], rebuilt: dict[str, Any]) -> None:
    for table in original:
        a, b = original[table], rebuilt[table]
        if isinstance(a, dict):
            assert set(a) == set(b), f"{table}: keys differ: {set(a) ^ set(b)}"
            diffs = {k: _diff(a[k], b[k]) for k in a if a[k] != b[k]}
            assert not diffs, f"{table} differs: {diffs}"
        else:
            assert len(a) == len(b), f"{table}: {len(a)} rows, rebuilt {len(b)}"
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                assert x == y, f"{table} row {i}: {_diff(x, y)}"


@pytest.fixture
def postgres_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database (dropped afterwards) when the server is configured."""
    base = POSTGRES_URL
    if not base:
        yield None
        return
    name = f"rebuild_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(Catalog(base).url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = Catalog(base).url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def check_rebuild(h: History, source: str, url: str) -> None:
    with h.repo.catalog.session() as s:
        original = snapshot(s)
    report = rebuild_catalog(h.repo, source=source, into=url)
    assert report.problems == [], report.problems
    assert report.chain_ok and report.chain_segments == 1 and report.relinked == 0
    catalog = Catalog(url)
    try:
        with catalog.session() as s:
            assert verify_chain(s).ok
            rebuilt = snapshot(s)
    finally:
        catalog.dispose()
    assert original["aips"][h.aip]["current_version"] == 3
    # what opening each file found is compared too: every v1 payload file has some
    assert all(
        f["properties"] for (_, n, _), f in original["files"].items()
        if n == 1 and f["kind"] == "payload"
    )
    assert {t for (_, _, _, t) in [(0, 0, 0, e["type"]) for e in original["events"]]} >= {
        "replication",
        "fixity check",
        "migration",
        "metadata modification",
    }
    assert_same(original, rebuilt)


def test_rebuild_local(
    local_history: History,
    tmp_path: Path,
    postgres_url: str | None,
    run_cli: Callable[..., Done],
) -> None:
    h = local_history
    for source in ("primary", "offsite"):
        check_rebuild(h, source, f"sqlite:///{tmp_path / f'rebuilt-{source}.sqlite'}")
    if postgres_url:
        check_rebuild(h, "offsite", postgres_url)
        catalog = Catalog(postgres_url)
        try:  # versions kept their ids: the next one made the usual way must not collide
            with catalog.session() as s:
                s.add(AipVersion(aip_id=h.aip, number=4, reason="reingest"))
                s.flush()
                s.rollback()
        finally:
            catalog.dispose()
    # a catalogue that is not empty is refused, --force replaces it (the command line)
    target = f"sqlite:///{tmp_path / 'rebuilt-primary.sqlite'}"
    with pytest.raises(UsageError, match="not empty"):
        rebuild_catalog(h.repo, source="primary", into=target)
    refused = run_cli(h.repo.root, "catalog", "rebuild", "--from", "primary", "--into", target)
    assert refused.returncode == 2 and "USE001" in refused.stderr
    done = run_cli(
        h.repo.root, "catalog", "rebuild", "--from", "offsite", "--into", target, "--force",
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["chain_ok"] and data["aips"] == 1 and data["versions"] == 3


@pytest.mark.seaweedfs
def test_rebuild_from_seaweedfs(s3_history: History, tmp_path: Path) -> None:
    check_rebuild(s3_history, "offsite", f"sqlite:///{tmp_path / 'rebuilt.sqlite'}")
