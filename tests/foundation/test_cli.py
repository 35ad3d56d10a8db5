"""The command line as a user runs it: exit statuses, CODE: message, --json, logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import transfers as tr


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    full = {k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "preservation", *args],
        capture_output=True, text=True, cwd=cwd, env=full, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "r"
    done = run("init", str(root), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stores"] == {"primary": "site-a", "offsite": "site-b"}
    return root


def test_init_then_stores_check_json(repo: Path) -> None:
    done = run("--repo", str(repo), "stores", "check", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is True
    assert {s["store"] for s in data["stores"]} == {"primary", "offsite"}
    for s in data["stores"]:
        assert s["reachable"] and s["writable"] and s["capabilities"]["free_bytes"] > 0


def test_repository_found_by_env_and_cwd(repo: Path) -> None:
    by_env = run("stores", "check", "--json", env={"PRESERVATION_HOME": str(repo)})
    assert by_env.returncode == 0, by_env.stderr
    by_cwd = run("--json", "config", "show", cwd=repo)
    assert by_cwd.returncode == 0, by_cwd.stderr
    assert json.loads(by_cwd.stdout)["root"] == str(repo.resolve())


def test_init_refuses_existing(repo: Path) -> None:
    done = run("init", str(repo))
    assert done.returncode == 2
    assert done.stderr.startswith("USE001: ")


def test_no_repository(tmp_path: Path) -> None:
    done = run("--repo", str(tmp_path / "none"), "stores", "check")
    assert done.returncode == 2
    assert done.stderr.startswith("CFG002: no repository at")


def test_bad_config_names_each_key(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    assert run("init", str(root)).returncode == 0
    cfg = root / "preservation.toml"
    text = cfg.read_text(encoding="utf-8")
    text = text.replace("copies = 2", "copies = 2\ncopys = 3")
    text += '\n[stores.remote]\ntype = "s3"\nsite = "site-c"\n'
    cfg.write_text(text, encoding="utf-8")
    done = run("--repo", str(root), "stores", "check")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert any(line.startswith("CFG001: ") and "policy.copys: unknown key" in line
               for line in lines), lines  # fmt: skip
    assert any("stores.remote.bucket: required key is missing" in line for line in lines)


def test_stores_check_fails_when_store_is_broken(tmp_path: Path) -> None:
    root = tmp_path / "broken"
    assert run("init", str(root)).returncode == 0
    offsite = root / "stores" / "offsite"
    offsite.rmdir()
    offsite.write_text("not a folder")
    done = run("--repo", str(root), "--json", "stores", "check")
    assert done.returncode == 1
    data = json.loads(done.stdout)
    bad = [s for s in data["stores"] if not s["ok"]]
    assert [s["store"] for s in bad] == ["offsite"] and bad[0]["problems"]


def test_ingest_receipt_json_and_log_format_json(repo: Path, tmp_path: Path) -> None:
    folder, sheet, _ = tr.make_scanned_transfer(tmp_path / "in")
    done = run("--repo", str(repo), "--log-format", "json", "--log-level", "INFO",
               "ingest", str(folder), "--metadata", str(sheet), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    receipt = json.loads(done.stdout)
    assert receipt["files"] == 6 and receipt["items"] == 3
    assert receipt["reference_code"] == "Z109-WS·2011-Y-BGS"
    for line in done.stderr.strip().splitlines():
        assert json.loads(line)["level"] in ("INFO", "WARNING")
    listed = json.loads(run("--repo", str(repo), "aip", "list", "--json").stdout)
    assert receipt["aip"] in [a["id"] for a in listed]
    shown = json.loads(run("--repo", str(repo), "aip", "show", receipt["aip"], "--json").stdout)
    assert shown["aip"]["id"] == receipt["aip"]
    assert shown["aip"]["title"] == "T01"  # several items: the transfer names the AIP
    copies = {c["store"]: (c["state"], c["fixity"]) for c in shown["copies"]}
    assert copies["primary"] == ("verified", {"pass": 15})  # 6 payload + 9 tag files
    # The CLI replicates a new AIP at once (--no-replicate leaves it queued).
    assert copies["offsite"] == ("verified", {"pass": 15})
    assert receipt["replication"] == {
        "ok": True,
        "verified": 1,
        "waiting": 0,
        "failed": 0,
        "stores_down": [],
    }
    verify = run("--repo", str(repo), "events", "verify", "--json")
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"] is True


def test_refused_ingest_exit_status_and_code(repo: Path, tmp_path: Path) -> None:
    folder, _, rows = tr.make_scanned_transfer(tmp_path / "in")
    rows[1]["reference_code"] = "not-a-code"
    sheet = tr.write_csv_sheet(tmp_path / "bad.csv", rows)
    done = run("--repo", str(repo), "ingest", str(folder), "--metadata", str(sheet))
    assert done.returncode == 3
    assert done.stderr.startswith("ING001: T01: ")
    assert "report:" in done.stderr


def test_bag_validate(tmp_path: Path) -> None:
    bag = tr.make_bag(tr.make_folder_transfer(tmp_path / "in"))
    ok = run("bag", "validate", str(bag), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["valid"] is True
    victim = bag / "data" / "doc-001.txt"
    victim.write_bytes(victim.read_bytes() + b"!")
    bad = run("bag", "validate", str(bag))
    assert bad.returncode == 3
    assert "doc-001.txt" in bad.stdout
    fast = run("bag", "validate", str(bag), "--fast", "--json")
    assert fast.returncode == 3 and not json.loads(fast.stdout)["valid"]  # Payload-Oxum


def test_python_dash_m_matches_console_script() -> None:
    done = run("--version")
    assert done.returncode == 0 and "preservation" in done.stdout
