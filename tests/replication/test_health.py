"""``preservation health``: its figures, NDSA levels, exit statuses 0/1/2, and its JSON
validated against schemas/health.schema.json."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from sqlalchemy import update

from preservation.catalog.models import Copy, FileCopy
from preservation.cli import cli
from preservation.model import utcnow
from preservation.repository import Repository
from preservation.storage.health import health, media_type, ndsa_level, next_level_needs
from preservation.storage.replicate import replicate_pending
from tests.replication.helpers import ingest_aip, local_store, small_files, write_repo

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "health.schema.json").read_text()
)
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def validate(data: dict[str, Any]) -> dict[str, Any]:
    errors = sorted(VALIDATOR.iter_errors(data), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    return data


def run_health(repo: Repository, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["--repo", str(repo.root), "health", "--json", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, validate(json.loads(result.stdout))


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return write_repo(
        tmp_path / "repo",
        {
            "primary": local_store("stores/primary", "site-a", "primary"),
            "offsite": local_store("stores/offsite", "site-b"),
        },
    )


def _store(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in data["stores"] if s["name"] == name)


def test_exit_statuses_below_policy_ok_and_unreachable(repo: Repository, tmp_path: Path) -> None:
    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("h"))

    code, data = run_health(repo)
    assert code == 1 and data["status"] == "below_policy" and data["exit_status"] == 1
    [entry] = data["aips"]
    assert entry["id"] == aip and entry["verified_copies"] == 1 and not entry["meets_policy"]
    assert entry["queued_copies"] == ["offsite v1 pending"]
    offsite = _store(data, "offsite")
    assert offsite["copies_pending"] == 1 and offsite["objects"] == 0
    assert offsite["oldest_unverified"]["aip"] == aip
    assert data["aip_totals"]["below_policy"] == 1

    assert replicate_pending(repo).ok
    code, data = run_health(repo)
    assert code == 0 and data["status"] == "ok"
    assert data["aips"] == []
    primary, offsite = _store(data, "primary"), _store(data, "offsite")
    assert offsite["objects"] == primary["objects"] > 0
    assert offsite["bytes"] == primary["bytes"] > 0
    assert offsite["copies"] == {"verified": 1} and offsite["oldest_unverified"] is None
    assert [s["verified_copies"] for s in data["sites"]] == [1, 1]

    shutil.move(repo.root / "stores" / "offsite", tmp_path / "away")
    code, data = run_health(repo)
    assert code == 2 and data["status"] == "store_unreachable"
    offsite = _store(data, "offsite")
    assert not offsite["reachable"] and "does not exist" in offsite["error"]
    assert [s["reachable"] for s in data["sites"]] == [True, False]


def test_human_output_and_exit_status(repo: Repository, tmp_path: Path) -> None:
    ingest_aip(repo, tmp_path / "in", "T1", small_files("human"))
    result = CliRunner().invoke(cli, ["--repo", str(repo.root), "health"])
    assert result.exit_code == 1
    assert "below_policy" in result.output and "NDSA storage level 0" in result.output


def test_stale_missing_audit_and_all(repo: Repository, tmp_path: Path) -> None:
    a = ingest_aip(repo, tmp_path / "in", "T1", small_files("s1"))
    b = ingest_aip(repo, tmp_path / "in", "T2", small_files("s2"))
    assert replicate_pending(repo).ok
    now = utcnow()
    with repo.catalog.session() as s:
        # every offsite file verified 200 days ago (interval 180): stale
        s.execute(
            update(FileCopy)
            .where(FileCopy.store_name == "offsite")
            .values(last_verified_at=now - timedelta(days=200))
        )
        s.execute(
            update(Copy)
            .where(Copy.store_name == "primary")
            .values(last_audit_at=now - timedelta(days=3))
        )

    code, data = run_health(repo)
    assert code == 0  # stale copies still count as copies: policy met
    assert {x["id"] for x in data["aips"]} == {a, b}
    assert all(x["stale_copies"] == ["offsite v1"] for x in data["aips"])
    assert _store(data, "offsite")["stale_copies"] == 2
    assert _store(data, "primary")["stale_copies"] == 0
    assert data["aip_totals"]["with_stale_copies"] == 2
    primary = _store(data, "primary")
    assert primary["last_full_audit"] is not None and primary["copies_never_audited"] == 0
    assert _store(data, "offsite")["last_full_audit"] is None

    with repo.catalog.session() as s:
        s.execute(
            update(Copy)
            .where(Copy.store_name == "offsite", Copy.version_id.in_(_version_ids(s, a)))
            .values(state="missing")
        )
    code, data = run_health(repo)
    assert code == 1
    entry = next(x for x in data["aips"] if x["id"] == a)
    assert entry["missing_copies"] == ["offsite v1"] and entry["verified_copies"] == 1

    code, data = run_health(repo, "--all", "--limit", "1")
    assert data["aips_truncated"] and len(data["aips"]) == 1


def _version_ids(session: Any, aip: str) -> list[int]:
    from sqlalchemy import select

    from preservation.catalog.models import AipVersion

    return list(session.execute(select(AipVersion.id).where(AipVersion.aip_id == aip)).scalars())


def test_ndsa_levels_and_the_aips_that_hold_the_repository_back(tmp_path: Path) -> None:
    repo = write_repo(
        tmp_path / "repo",
        {
            "primary": local_store("stores/primary", "site-a", "primary"),
            "offsite": local_store("stores/offsite", "site-b"),
            "vault": local_store("stores/vault", "site-c", cold=True),
        },
        copies=3,
        sites=3,
    )
    full = ingest_aip(repo, tmp_path / "in", "T1", small_files("n1"))
    assert replicate_pending(repo).ok
    lagging = ingest_aip(repo, tmp_path / "in", "T2", small_files("n2"))
    assert replicate_pending(repo, store="offsite").ok

    report = health(repo)
    data = validate(report.to_dict())
    assert report.exit_status == 1
    n = data["ndsa"]
    # full: 3 copies on 3 sites, disk + cold -> level 4; lagging: 2 copies, 2 sites -> 1
    assert n["ceiling"] == 4 and n["level"] == 1 and n["next_level"] == 2
    assert n["aips_by_level"] == {"1": 1, "4": 1}
    assert n["blocking_aips"] == [lagging] and n["blocking_total"] == 1
    assert not n["blocked_by_configuration"]
    entry = next(x for x in data["aips"] if x["id"] == lagging)
    assert entry["ndsa_level"] == 1 and entry["media"] == ["disk"]
    assert _store(data, "vault")["media"] == "cold"
    assert full not in {x["id"] for x in data["aips"]}

    assert replicate_pending(repo).ok
    data = validate(health(repo).to_dict())
    assert data["ndsa"]["level"] == 4 and data["ndsa"]["blocking_aips"] == []
    assert data["exit_status"] == 0


def test_empty_repository_reports_its_ceiling(repo: Repository) -> None:
    data = validate(health(repo).to_dict())
    assert data["exit_status"] == 0
    assert data["ndsa"]["level"] == data["ndsa"]["ceiling"] == 1
    assert data["ndsa"]["blocked_by_configuration"]
    assert "3 verified copies" in data["ndsa"]["ceiling_needs"]


@pytest.mark.parametrize(
    ("copies", "sites", "media", "level"),
    [
        (1, 1, 1, 0),
        (2, 1, 1, 0),  # two copies in one place: not separate locations
        (2, 2, 1, 1),
        (3, 1, 2, 0),
        (3, 2, 1, 2),
        (3, 2, 2, 3),
        (3, 3, 1, 2),
        (3, 3, 2, 4),
        (5, 4, 3, 4),
    ],
)
def test_ndsa_mapping(copies: int, sites: int, media: int, level: int) -> None:
    assert ndsa_level(copies, sites, media) == level
    needs = next_level_needs(copies, sites, media)
    assert (needs == "") == (level == 4)
    if needs:
        assert needs.startswith(f"level {level + 1} needs")


def test_media_types() -> None:
    from preservation.config import LocalStoreSettings, S3StoreSettings

    assert media_type(LocalStoreSettings(type="local", path=Path("x"), site="s")) == "disk"
    assert media_type(S3StoreSettings(type="s3", bucket="bkt", site="s")) == "object"
    cold = S3StoreSettings(type="s3", bucket="bkt", site="s", cold=True, storage_class="GLACIER")
    assert media_type(cold) == "cold"


def test_the_schema_is_not_vacuous(repo: Repository) -> None:
    data = health(repo).to_dict()
    validate(data)
    for broken in (
        {**data, "exit_status": 3},
        {**data, "extra": 1},
        {**data, "stores": [{**data["stores"][0], "reachable": "yes"}]},
        {k: v for k, v in data.items() if k != "ndsa"},
    ):
        assert list(VALIDATOR.iter_errors(broken))
