"""A small repository for the dashboard, metrics and Chromium tests, built with the
real pipeline: three ingests (two public AIPs, one restricted), one of them left
unreplicated (a pending copy, below policy), one refused ingest, one full audit run
of the primary store, and two open incidents (one on a public AIP, one on the
restricted AIP). Users of every role with their tokens.

``expected(repo, sees_restricted)`` recomputes the figures the pages must show from
what was ingested, independently of the dashboard's queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from preservation.access import auth
from preservation.audit.runner import AuditRequest, run_audit
from preservation.errors import IngestRefused
from preservation.ingest.pipeline import IngestRequest, ingest_and_replicate, run_ingest
from preservation.model import utcnow
from preservation.repository import Repository, init_repository
from tests.support.transfers import item_code, sheet_row, tiff_page, write_csv_sheet, write_files

ROLES = ("admin", "archivist", "auditor", "reader")


_SHARED: dict[str, World] = {}


def shared_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """One world per test session for the dashboard, metrics and Chromium tests
    (read only: a test that changes the catalogue builds its own)."""
    if "world" not in _SHARED:
        _SHARED["world"] = build_world(tmp_path_factory.mktemp("dashboard"))
    return _SHARED["world"]


@dataclass
class Ingested:
    aip: str
    reference_code: str
    files: int
    bytes: int
    public: bool
    replicated: bool


@dataclass
class World:
    repo: Repository
    tokens: dict[str, str]
    aips: list[Ingested] = field(default_factory=list)
    refused_job: str | None = None
    incidents: list[tuple[str, str]] = field(default_factory=list)  # (aip, severity)

    def visible(self, sees_restricted: bool) -> list[Ingested]:
        return [a for a in self.aips if sees_restricted or a.public]


def bearer(world: World, role: str) -> dict[str, str]:
    """The Authorization header of the test user of ``role``."""
    return {"Authorization": f"Bearer {world.tokens[role]}"}


def _transfer(
    parent: Path, name: str, n: int, files: dict[str, bytes], **fields: str
) -> tuple[Path, Path]:
    """One item: its files in a folder named after its reference code, and the sheet."""
    code = item_code(n)
    folder = write_files(parent / name, {f"{code}/{k}": v for k, v in files.items()})
    rows = [sheet_row(n, pages=len(files), **fields)]
    sheet = write_csv_sheet(parent / f"{name}.csv", rows)
    return folder, sheet


def build_world(root: Path) -> World:
    repo = init_repository(root / "repo")
    transfers = root / "transfers"
    world = World(repo, {})
    specs: list[tuple[str, int, dict[str, bytes], dict[str, str], bool]] = [
        ("pub1", 11, {"a.txt": b"alpha " * 50, "b.txt": b"beta " * 80, "c.tif": tiff_page(7)},
         {}, True),
        ("pub2", 12, {"scan.txt": b"gamma " * 300}, {}, False),
        ("secret", 13, {"s1.txt": b"restricted " * 40, "s2.txt": b"more " * 10},
         {"security_level": "秘密", "open_status": "控制"}, True),
    ]  # fmt: skip
    for name, n, files, fields, replicate in specs:
        folder, sheet = _transfer(transfers, name, n, files, **fields)
        request = IngestRequest(folder, sheet=sheet, submitter="tester")
        receipt = (ingest_and_replicate if replicate else run_ingest)(repo, request)
        assert receipt.aip is not None
        world.aips.append(
            Ingested(
                aip=receipt.aip,
                reference_code=receipt.reference_code,
                files=len(files),
                bytes=sum(len(b) for b in files.values()),
                public=not fields,
                replicated=replicate,
            )
        )
    # a refused ingest: the sheet names a file that is not in the transfer
    folder = write_files(transfers / "bad", {"x.txt": b"x"})
    rows = [sheet_row(14, pages=1, path="missing.txt")]
    sheet = write_csv_sheet(transfers / "bad.csv", rows)
    try:
        run_ingest(repo, IngestRequest(folder, sheet=sheet, submitter="tester"))
    except IngestRefused:
        pass
    run_audit(repo, AuditRequest(store="primary", mode="full", ahead=True))
    _add_incidents(world)
    for role in ROLES:
        _, token = auth.add_user(repo, f"{role}1", role)
        world.tokens[role] = token
    return world


def _add_incidents(world: World) -> None:
    from preservation.catalog import audit_queries as aq

    public = next(a for a in world.aips if a.public)
    secret = next(a for a in world.aips if not a.public)
    with world.repo.catalog.session() as s:
        for aip, severity in ((public.aip, "warning"), (secret.aip, "critical")):
            aq.add_incident(
                s, aip_id=aip, version_id=None, store_name="offsite", path="data/x",
                kind="mismatch", severity=severity, evidence={"test": True}, when=utcnow(),
            )  # fmt: skip
            world.incidents.append((aip, severity))


def expected(world: World, sees_restricted: bool) -> dict[str, Any]:
    """The overview figures, from what the builder ingested."""
    seen = world.visible(sees_restricted)
    stores = len(world.repo.config.settings.stores)
    copies = stores * len(seen)  # a copy per store; the unreplicated AIP's is pending
    verified = sum(stores if a.replicated else 1 for a in seen)
    return {
        "aips": len(seen),
        "files": sum(a.files for a in seen),
        "bytes": sum(a.bytes for a in seen),
        "copies": copies,
        "copies-verified": verified,
        "incidents": sum(1 for aip, _ in world.incidents if aip in {a.aip for a in seen}),
    }
