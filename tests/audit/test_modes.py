"""Modes and evidence details: inventory's unexpected objects, cold stores, every
digest of the manifests in one pass, a bag that disagrees with its catalogue, the
Parquet log's schema (and its copy on a store), and the event chain afterwards."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from preservation.audit.parquet_log import SCHEMA, read_log
from preservation.audit.repair import repair_incidents
from preservation.audit.runner import AuditRequest, run_audit
from preservation.catalog.models import EventRow, FileCopy, Incident
from preservation.cli import cli
from preservation.errors import NotRepairable, UsageError
from preservation.repository import Repository
from tests.audit.builders import LOCAL_STORES, build_aip, content, make_repo, place_replica
from tests.audit.conftest import log_rows

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "audit-log.schema.json"
FILES = {f"f{i}.txt": content(i, 500 + i) for i in range(4)}


def test_inventory_finds_unexpected_objects_and_repair_quarantines(repo: Repository) -> None:
    aip = build_aip(repo, FILES)
    stray = f"{aip}/v1/data/stray.tmp"
    repo.primary.put(stray, io.BytesIO(b"left behind"), size=11)
    (inv,) = run_audit(repo, AuditRequest(store="primary", mode="inventory", aip=aip))
    assert inv.outcomes == {"pass": 10, "unexpected": 1}
    (incident,) = inv.incidents
    assert incident["kind"] == "unexpected" and incident["severity"] == "warning"
    assert incident["path"] == "data/stray.tmp"
    rows = [r for r in log_rows(repo) if r["run_id"] == inv.run_id]
    assert [r["code"] for r in rows if r["outcome"] == "unexpected"] == ["AUD007"]
    with repo.catalog.session() as s:
        assert s.execute(select(EventRow).where(EventRow.detail.like("%(inventory)%"))).first()
        # inventory on a store audited in full does not move its files' last verification
        assert set(
            s.execute(select(FileCopy.detail).where(FileCopy.store_name == "primary")).scalars()
        ) == {None}

    report = repair_incidents(repo, [incident["incident"]])
    assert report.ok
    assert not repo.primary.exists(stray)
    assert repo.primary.exists(f"quarantine/{incident['incident']}/{stray}")
    (again,) = run_audit(repo, AuditRequest(store="primary", mode="inventory", aip=aip))
    assert again.outcomes == {"pass": 10}


def test_cold_store_is_audited_by_inventory_only(tmp_path: Path) -> None:
    stores = LOCAL_STORES.replace(
        'role = "replica"\nfixity_interval_days = 180', 'role = "replica"\ncold = true'
    )
    repo = make_repo(tmp_path / "repo", stores)
    aip = build_aip(repo, FILES)
    place_replica(repo, aip, "offsite")
    with pytest.raises(UsageError, match="cold"):
        run_audit(repo, AuditRequest(store="offsite", mode="full"))
    (r,) = run_audit(repo, AuditRequest(store="offsite", aip=aip))
    assert r.mode == "inventory" and r.outcomes == {"pass": 10}
    rows = [x for x in log_rows(repo) if x["run_id"] == r.run_id]
    assert {x["algorithm"] for x in rows} == {"size"}  # a local store keeps no checksum


def test_all_digests_in_one_pass(repo: Repository) -> None:
    aip = build_aip(repo, FILES)
    (r,) = run_audit(repo, AuditRequest(store="primary", aip=aip, all_digests=True))
    assert r.algorithms == ["sha256", "sha512"]
    assert r.outcomes == {"pass": 10}
    rows = [x for x in log_rows(repo) if x["run_id"] == r.run_id]
    assert len(rows) == 2 * 10  # one row per file and algorithm
    by = {(x["path"], x["algorithm"]): x for x in rows}
    data = FILES["f1.txt"]
    assert by[("data/f1.txt", "sha512")]["actual"] == hashlib.sha512(data).hexdigest()
    assert by[("data/f1.txt", "sha256")]["actual"] == hashlib.sha256(data).hexdigest()
    # one read: both rows of a file come from the same check
    assert by[("data/f1.txt", "sha512")]["started"] == by[("data/f1.txt", "sha256")]["started"]


def test_bag_manifest_disagreeing_with_catalogue(repo: Repository) -> None:
    aip = build_aip(repo, FILES, manifest_override={"data/f2.txt": "0" * 64})
    (r,) = run_audit(repo, AuditRequest(store="primary", aip=aip))
    assert r.outcomes == {"pass": 9, "manifest": 1}
    (incident,) = r.incidents
    assert incident["kind"] == "manifest" and incident["path"] == "data/f2.txt"
    with pytest.raises(NotRepairable, match="a person must decide"):
        repair_incidents(repo, [incident["incident"]])


def test_damaged_manifest_is_reported_and_not_used(repo: Repository) -> None:
    aip = build_aip(repo, FILES)
    key = f"{aip}/v1/manifest-sha256.txt"
    path = repo.config.resolve(Path("stores/primary")) / key
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b"data/f0.txt", b"data/f9.txt"))
    (r,) = run_audit(repo, AuditRequest(store="primary", aip=aip))
    assert r.outcomes == {"pass": 9, "mismatch": 1}  # the manifest itself, once
    assert [i["path"] for i in r.incidents] == ["manifest-sha256.txt"]


def test_parquet_schema_matches_the_json_schema(repo: Repository) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    props = schema["properties"]
    assert list(props) == SCHEMA.names
    for f in SCHEMA:
        assert props[f.name]["x-parquet-type"] == str(f.type), f.name
        assert (f.name in schema["required"]) == (not f.nullable), f.name
    aip = build_aip(repo, FILES)
    run_audit(repo, AuditRequest(store="primary", aip=aip, all_digests=True))
    folder = repo.config.resolve(repo.config.settings.audit.log_dir)
    files = list(folder.glob("date=*/*.parquet"))
    assert files and all(f.parent.name.startswith("date=") for f in files)
    table = read_log(folder)
    assert "date" in table.column_names
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for row in table.drop_columns(["date"]).to_pylist():
        row["started"] = row["started"].isoformat()
        validator.validate(row)


def test_log_is_also_written_to_a_store(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", extra='[audit]\nlog_store = "offsite"\n')
    aip = build_aip(repo, FILES)
    (r,) = run_audit(repo, AuditRequest(store="primary", aip=aip))
    keys = [i.key for i in repo.store("offsite").list("audit-log/")]
    assert len(keys) == 1 and keys[0].startswith("audit-log/date=")
    assert keys[0].endswith(f"{r.run_id}-000001.parquet")


def test_events_verify_after_audit_and_repair(repo: Repository) -> None:
    aip = build_aip(repo, FILES)
    place_replica(repo, aip, "offsite")
    repo.primary.delete(f"{aip}/v1/data/f1.txt")
    run_audit(repo, AuditRequest(store="primary", aip=aip, repair=True))
    runner = CliRunner()
    ok = runner.invoke(cli, ["--repo", str(repo.root), "events", "verify", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["ok"] is True
    with repo.catalog.session() as s:
        assert s.execute(select(Incident.state)).scalar_one() == "repaired"
        row = (
            s.execute(
                select(EventRow).where(EventRow.type == "fixity check").order_by(EventRow.seq)
            )
            .scalars()
            .first()
        )
        assert row is not None
        row.outcome_detail = "all fine, honestly"  # tampering
    bad = runner.invoke(cli, ["--repo", str(repo.root), "events", "verify", "--json"])
    assert bad.exit_code == 4
    report = json.loads(bad.output)
    assert report["ok"] is False and report["first_break"]["seq"] == row.seq


def test_auto_repair_policy(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", extra="[audit]\nauto_repair = true\n")
    aip = build_aip(repo, FILES)
    place_replica(repo, aip, "offsite")
    repo.primary.delete(f"{aip}/v1/data/f3.txt")
    (r,) = run_audit(repo, AuditRequest(store="primary", aip=aip))
    assert r.failures == 1
    assert r.repair is not None and r.repair["repaired"] == 1
    assert repo.primary.exists(f"{aip}/v1/data/f3.txt")
    (off,) = run_audit(repo, AuditRequest(store="primary", aip=aip, repair=False))
    assert off.failures == 0 and off.repair is None
