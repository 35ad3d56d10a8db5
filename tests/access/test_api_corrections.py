"""Metadata corrections through the API and the CLI: a metadata-only version, a
PREMIS metadata modification event, visibility following the new values."""

from __future__ import annotations

import json

from click.testing import CliRunner
from fastapi.testclient import TestClient

from preservation.cli import cli
from tests.access.conftest import AccessEnv


def test_correction_opens_then_closes_a_record(
    fresh_client: TestClient, fresh_env: AccessEnv
) -> None:
    aip = fresh_env.aips["secret"]
    reader, archivist = fresh_env.headers("reader"), fresh_env.headers("archivist")
    assert fresh_client.get(f"/api/aips/{aip}", headers=reader).status_code == 404

    r = fresh_client.patch(
        f"/api/aips/{aip}/metadata",
        json={"fields": {"security_level": "公开", "open_status": "开放"}, "note": "解密审查"},
        headers=archivist,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == 2 and body["public"] is True
    assert body["changed"] == {
        "security_level": {"from": "秘密", "to": "公开"},
        "open_status": {"from": "不开放", "to": "开放"},
    }

    detail = fresh_client.get(f"/api/aips/{aip}", headers=reader)
    assert detail.status_code == 200
    data = detail.json()
    assert data["aip"]["current_version"] == 2
    assert data["aip"]["security_level"] == "公开" and data["aip"]["public"] is True
    v2 = data["versions"][-1]
    assert v2["reason"] == "metadata" and v2["descriptive"]["open_status"] == "开放"
    # metadata only: every payload file of v2 still lives in v1's objects
    payload = [f for f in data["files"] if f["kind"] == "payload"]
    assert payload and all(f["origin_version"] == 1 for f in payload)
    events = [e for e in data["events"] if e["type"] == "metadata modification"]
    assert len(events) == 1 and "archivist-user" in events[0]["detail"]
    assert "秘密 -> 公开" in events[0]["detail"]
    # the new version streams out complete
    dl = fresh_client.get(f"/api/aips/{aip}/files/data/doc-001.txt", headers=reader)
    assert dl.status_code == 200
    # closing it again hides it at once
    r = fresh_client.patch(
        f"/api/aips/{aip}/metadata", json={"fields": {"open_status": "控制"}}, headers=archivist
    )
    assert r.status_code == 200 and r.json()["public"] is False
    assert fresh_client.get(f"/api/aips/{aip}", headers=reader).status_code == 404
    assert fresh_client.get("/api/aips", headers=reader).json()["total"] == 0


def test_bad_corrections(fresh_client: TestClient, fresh_env: AccessEnv) -> None:
    aip = fresh_env.aips["secret"]
    h = fresh_env.headers("admin")
    cases = [
        ({"fields": {"path": "x"}}, 400),
        ({"fields": {"security_level": "秘密"}}, 400),  # unchanged
        ({"fields": {"year": "20x1"}}, 400),
        ({"fields": {"title": "a\x01b"}}, 422),
        ({"fields": {}}, 422),
        ({"fields": {"title": 5}}, 422),
    ]
    for body, status in cases:
        r = fresh_client.patch(f"/api/aips/{aip}/metadata", json=body, headers=h)
        assert r.status_code == status, (body, r.text)
    missing = fresh_client.patch(
        "/api/aips/00000000-0000-0000-0000-000000000000/metadata",
        json={"fields": {"title": "x"}},
        headers=h,
    )
    assert missing.status_code == 404


def test_cli_correct_and_access_log_review(fresh_env: AccessEnv) -> None:
    aip = fresh_env.aips["secret"]
    repo = str(fresh_env.repo.root)
    runner = CliRunner()
    r = runner.invoke(
        cli,
        ["--repo", repo, "--json", "aip", "correct", aip, "--set", "title=新题名", "--user", "li"],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["version"] == 2 and out["changed"]["title"]["to"] == "新题名"
    r = runner.invoke(cli, ["--repo", repo, "aip", "correct", aip, "--set", "nonsense"])
    assert r.exit_code != 0
    r = runner.invoke(
        cli, ["--repo", repo, "--json", "access-log", "review", "--since", "2000-01-01"]
    )
    assert r.exit_code == 0, r.output
    review = json.loads(r.output)
    assert review["by_user"]["li"] == {"correct": 1}
    assert review["changes"][0]["aip"] == aip
    human = runner.invoke(cli, ["--repo", repo, "access-log", "review", "--since", "2000-01-01"])
    assert human.exit_code == 0 and "li" in human.output
    bad = runner.invoke(cli, ["--repo", repo, "access-log", "review", "--since", "yesterday"])
    assert bad.exit_code == 2


def test_corrected_date_moves_the_date_search(
    fresh_client: TestClient, fresh_env: AccessEnv
) -> None:
    aip = fresh_env.aips["secret"]  # records dated 2012-03-01 and 2012-03-02
    auditor, archivist = fresh_env.headers("auditor"), fresh_env.headers("archivist")

    def found(query: str) -> bool:
        r = fresh_client.get(f"/api/aips?{query}", headers=auditor)
        assert r.status_code == 200, r.text
        return aip in {i["id"] for i in r.json()["items"]}

    assert found("date_from=2012-03-02&date_to=2012-03-31")
    assert not found("date_from=2012-06-01&date_to=2012-06-30")
    r = fresh_client.patch(
        f"/api/aips/{aip}/metadata",
        json={"fields": {"date": "2012-06-10至2012-06-20"}},
        headers=archivist,
    )
    assert r.status_code == 200, r.text
    assert found("date_from=2012-06-01&date_to=2012-06-15")
    assert not found("date_from=2012-03-01&date_to=2012-03-31")
    v2 = fresh_client.get(f"/api/aips/{aip}", headers=auditor).json()["versions"][-1]
    assert (v2["descriptive"]["date_from"], v2["descriptive"]["date_to"]) == (
        "2012-06-10",
        "2012-06-20",
    )
