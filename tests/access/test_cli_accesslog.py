"""Changes made from the command line are in the access log: who (``--user`` or the
OS user), what, when, from where (``cli@<hostname>``), and the exit status."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import socket
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from preservation.access.accesslog import cli_change
from preservation.catalog import access_queries as aq
from preservation.cli import cli
from preservation.errors import UsageError
from preservation.repository import Repository
from tests.access.conftest import AccessEnv
from tests.support import transfers as tr

SINCE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
CLIENT = f"cli@{socket.gethostname()}"


def _entries(repo: Repository) -> list[dict[str, Any]]:
    with repo.catalog.session() as s:
        return list(aq.access_entries(s, SINCE))


def test_cli_changes_are_logged(fresh_env: AccessEnv, tmp_path: Path) -> None:
    repo = fresh_env.repo
    root = str(repo.root)
    runner = CliRunner()
    before = len(_entries(repo))

    folder = tr.make_folder_transfer(tmp_path / "in", "T-cli", n=2, size=80)
    r = runner.invoke(
        cli, ["--repo", root, "--json", "ingest", str(folder), "--user", "wang", "--no-replicate"]
    )
    assert r.exit_code == 0, r.output
    aip = json.loads(r.output)["aip"]
    # a refused one is logged too, with its exit status
    r = runner.invoke(cli, ["--repo", root, "ingest", str(folder)])  # a duplicate
    assert r.exit_code != 0
    # deletion request: the command's own --user
    r = runner.invoke(
        cli,
        [*("--repo", root, "--json", "aip", "delete-request", aip),
         *("--reason", "test", "--user", "li")],
    )
    assert r.exit_code == 0, r.output
    request = json.loads(r.output)["id"]
    # no --user: the login name
    r = runner.invoke(cli, ["--repo", root, "--json", "formats", "reidentify", "--aip", aip])
    assert r.exit_code == 0, r.output

    new = _entries(repo)[before:]
    assert [(e["action"], e["user_name"], e["status"]) for e in new] == [
        ("ingest", "wang", 0),
        ("ingest", getpass.getuser(), 3),
        ("delete_request", "li", 0),
        ("reidentify", getpass.getuser(), 0),
    ]
    assert all(e["client"] == CLIENT for e in new)
    assert new[0]["aip_id"] == aip and new[0]["detail"]["source"] == str(folder)
    assert new[1]["detail"]["error"] == "ING002"
    assert new[2]["aip_id"] == aip and new[2]["detail"]["request"] == request
    assert new[3]["aip_id"] == aip
    # and the periodic review lists them as changes
    r = runner.invoke(
        cli, ["--repo", root, "--json", "access-log", "review", "--since", "2000-01-01"]
    )
    assert r.exit_code == 0, r.output
    changes = json.loads(r.output)["changes"]
    assert [c["action"] for c in changes][-4:] == [
        "ingest",
        "ingest",
        "delete_request",
        "reidentify",
    ]


def test_cli_change_logs_failures_and_exit_statuses(fresh_env: AccessEnv) -> None:
    repo = fresh_env.repo
    before = len(_entries(repo))
    try:
        with cli_change(repo, "repair", detail={"all": True}):
            raise UsageError("give INCIDENT numbers or --all")
    except UsageError:
        pass
    try:
        with cli_change(repo, "resync", user="zhao") as logged:
            logged["ok"] = False
            raise SystemExit(1)
    except SystemExit:
        pass
    new = _entries(repo)[before:]
    assert [(e["action"], e["user_name"], e["status"]) for e in new] == [
        ("repair", getpass.getuser(), 2),
        ("resync", "zhao", 1),
    ]
    assert new[0]["detail"] == {"all": True, "error": "USE001"}
    assert new[1]["detail"] == {"ok": False}
