"""The replication commands and ``aip show`` through the command line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from preservation.cli import cli
from tests.replication.helpers import ingest_aip, local_store, small_files, write_repo


def test_replicate_and_aip_show(tmp_path: Path) -> None:
    repo = write_repo(
        tmp_path / "repo",
        {
            "primary": local_store("stores/primary", "site-a", "primary"),
            "offsite": local_store("stores/offsite", "site-b"),
        },
    )
    aip = ingest_aip(repo, tmp_path / "in", "T1", small_files("cli"))
    ingest_aip(repo, tmp_path / "in", "T2", small_files("cli2"))
    runner = CliRunner()
    base = ["--repo", str(repo.root)]

    usage = runner.invoke(cli, [*base, "replicate"])
    assert usage.exit_code == 2 and "--pending" in usage.output

    one = runner.invoke(cli, [*base, "replicate", "--aip", aip, "--workers", "2", "--json"])
    assert one.exit_code == 0, one.output
    data = json.loads(one.stdout)
    assert data["copies"]["verified"] == 1 and data["results"][0]["aip"] == aip
    assert data["workers"] == 2 and data["results"][0]["objects"] > 0

    human = runner.invoke(cli, [*base, "replicate", "--pending"])
    assert human.exit_code == 0 and "1 verified, 0 waiting" in human.output

    shown = runner.invoke(cli, [*base, "aip", "show", aip, "--json"])
    assert shown.exit_code == 0
    summary = json.loads(shown.stdout)
    assert [v["number"] for v in summary["versions"]] == [1]
    assert any(f["path"] == "data/doc-0.txt" for f in summary["files"])
    copies = {c["store"]: c for c in summary["copies"]}
    assert copies["offsite"]["state"] == "verified" and copies["primary"]["state"] == "verified"
    assert copies["offsite"]["fixity"] == {"pass": summary["files_total"]}
    replication = [e for e in summary["events"] if e["type"] == "replication"]
    assert len(replication) == 1 and replication[0]["store"] == "offsite"

    unknown = runner.invoke(cli, [*base, "replicate", "--pending", "--store", "nowhere"])
    assert unknown.exit_code != 0
