"""Bit rot across many objects in both stores, chosen by a seeded random generator:
byte flips, truncations and deletions, of payload and tag files alike. The next full
audit finds every one (with its own outcome), repair restores each from the other
store, and a file damaged in both stores becomes a critical incident that stays open
and keeps failing audits, never a silent pass."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy import select

from preservation.audit.repair import repair_incidents
from preservation.audit.runner import AuditRequest, run_audit
from preservation.catalog.models import Incident
from preservation.repository import Repository
from tests.audit.builders import (
    build_aip,
    content,
    delete,
    flip_byte,
    make_repo,
    place_replica,
    read_object,
    truncate,
)
from tests.faults.consistency import problems

SEED = 20261126
STORES = ("primary", "offsite")
KIND = {"flip": "mismatch", "truncate": "size", "delete": "missing"}


def damage(repo: Repository, rng: random.Random, store: str, key: str) -> str:
    how = rng.choice(sorted(KIND))
    if how == "flip":
        size = len(read_object(repo, store, key))
        flip_byte(repo, store, key, offset=rng.randrange(size))
    elif how == "truncate":
        size = len(read_object(repo, store, key))
        truncate(repo, store, key, rng.randrange(size))
    else:
        delete(repo, store, key)
    return how


@pytest.mark.slow
def test_random_damage_is_found_and_repaired(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    rng = random.Random(SEED)
    keys: list[str] = []
    for a in range(8):
        files = {f"f-{i}.bin": content(100 * a + i, rng.randrange(1, 6000)) for i in range(6)}
        aip = build_aip(repo, files)
        place_replica(repo, aip, "offsite")
        keys += [i.key for i in repo.primary.list(f"{aip}/v1/")]
    assert len(keys) == 8 * (6 + 6)  # payload + bagit, bag-info, 2 manifests, 2 tag manifests

    chosen = rng.sample(keys, 26)
    both, single = chosen[:2], chosen[2:]
    expected: dict[tuple[str, str], str] = {}
    for key in single:
        store = rng.choice(STORES)
        expected[(store, key)] = KIND[damage(repo, rng, store, key)]
    for key in both:
        for store in STORES:
            expected[(store, key)] = KIND[damage(repo, rng, store, key)]

    found: dict[tuple[str, str], str] = {}
    for run in run_audit(repo, AuditRequest(mode="full", ahead=True)):
        for inc in run.incidents:
            found[(run.store, f"{inc['aip']}/v1/{inc['path']}")] = inc["kind"]
    assert found == expected  # every damage found, with its own outcome, nothing else

    report = repair_incidents(repo)
    assert report.count("repaired") == len(single) and report.count("failed") == 0
    assert report.count("critical") == 2 * len(both)
    with repo.catalog.session() as s:
        rows = s.execute(
            select(Incident.store_name, Incident.aip_id, Incident.path, Incident.state,
                   Incident.severity)
        ).all()  # fmt: skip
    open_ = {(st, f"{aip}/v1/{path}"): sev for st, aip, path, state, sev in rows if state == "open"}
    assert open_ == {(st, key): "critical" for st in STORES for key in both}

    # a second full audit: every repaired object passes; the files damaged in both
    # stores still fail (no silent pass)
    failing: set[tuple[str, str]] = set()
    passed = 0
    for run in run_audit(repo, AuditRequest(mode="full", ahead=True)):
        failing |= {(run.store, f"{i['aip']}/v1/{i['path']}") for i in run.incidents}
        assert not any(i["new"] for i in run.incidents)  # the open critical ones again
        passed += run.outcomes.get("pass", 0)
    assert failing == set(open_)
    assert passed == 2 * len(keys) - len(open_)
    assert [p for p in problems(repo) if p.startswith("[bad-object]")] == []
