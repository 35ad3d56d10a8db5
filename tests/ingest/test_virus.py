"""Virus check: a fake scanner on PATH for the parsing, and real ClamAV when installed.

No public signature database can be fetched here (freshclam needs the network), so the
real-ClamAV tests give clamscan/clamd a one-line hash database of the EICAR test file
made in the test.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from preservation.errors import ToolMissing
from preservation.ingest.findings import Finding
from preservation.ingest.virus import scan

# Built from two halves so that this test file is not itself the test virus.
EICAR = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*").encode()

FAKE_SCANNER = """\
import os, sys
from pathlib import Path

args = sys.argv[1:]
log = os.environ.get("FAKE_SCANNER_LOG")
if log:
    with open(log, "a", encoding="utf-8") as f:
        f.write(" ".join(args) + "\\n")
if args == ["--version"]:
    print("ClamAV 0.0-fake/1/Thu Jan  1 00:00:00 2026")
    sys.exit(0)
mode = os.environ.get("FAKE_SCANNER_MODE", "")
if mode == "error":
    print("LibClamAV Error: cli_loaddbdir: No supported database files found", file=sys.stderr)
    sys.exit(2)
root = Path(args[-1])
needle = bytes.fromhex(os.environ["FAKE_SCANNER_NEEDLE"])
found = 0
for p in sorted(root.rglob("*")):
    if p.is_file() and needle in p.read_bytes():
        print(f"{p}: Eicar-Test-Signature FOUND", flush=True)
        found += 1
if mode == "liar":
    sys.exit(1 - min(found, 1))
sys.exit(1 if found else 0)
"""


@pytest.fixture
def fake_scanner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``clamscan`` and ``clamdscan`` on PATH that flag files holding the EICAR string."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("clamscan", "clamdscan"):
        exe = bindir / name
        exe.write_text(f"#!{sys.executable}\n{FAKE_SCANNER}", encoding="utf-8")
        exe.chmod(0o755)
    log = tmp_path / "scanner.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_SCANNER_NEEDLE", EICAR.hex())
    monkeypatch.setenv("FAKE_SCANNER_LOG", str(log))
    return log


def payload(tmp_path: Path, infected: bool = True) -> Path:
    root = tmp_path / "payload"
    (root / "中文 目录").mkdir(parents=True)
    (root / "report.txt").write_text("clean record\n", encoding="utf-8")
    (root / "中文 目录" / "clean.pdf").write_bytes(b"%PDF-1.7 not a virus")
    if infected:
        (root / "中文 目录" / "eicar file.com").write_bytes(EICAR)
        (root / "eicar2.txt").write_bytes(EICAR + b"\n")
    return root


def pairs(findings: list[Finding]) -> list[tuple[str, str, str | None]]:
    return sorted((f.code, f.result, f.file) for f in findings)


def test_no_scanner_is_not_performed_never_pass(tmp_path: Path) -> None:
    findings = scan(payload(tmp_path), "none")
    assert pairs(findings) == [("VIR-001", "not performed", None)]
    assert "no virus scanner configured" in findings[0].message
    assert findings[0].property == "security"


@pytest.mark.parametrize("scanner", ["clamscan", "clamdscan"])
def test_found_lines_fail_per_file(tmp_path: Path, fake_scanner: Path, scanner: str) -> None:
    findings = scan(payload(tmp_path), scanner)
    assert pairs(findings) == [
        ("VIR-001", "pass", None),
        ("VIR-002", "fail", "eicar2.txt"),
        ("VIR-002", "fail", "中文 目录/eicar file.com"),
    ]
    infected = next(f for f in findings if f.file == "中文 目录/eicar file.com")
    assert infected.message == "中文 目录/eicar file.com: infected (Eicar-Test-Signature)"
    assert infected.details["signature"] == "Eicar-Test-Signature"
    summary = next(f for f in findings if f.code == "VIR-001")
    assert "2 infected file(s)" in summary.message and "0.0-fake" in summary.message
    args = fake_scanner.read_text(encoding="utf-8").splitlines()
    assert "--infected" in args[-1] and "--no-summary" in args[-1]
    if scanner == "clamdscan":
        assert "--fdpass" in args[-1]


def test_clean_payload_passes(tmp_path: Path, fake_scanner: Path) -> None:
    findings = scan(payload(tmp_path, infected=False), "clamscan")
    assert pairs(findings) == [("VIR-001", "pass", None), ("VIR-002", "pass", None)]


def test_database_and_config_file_are_passed(tmp_path: Path, fake_scanner: Path) -> None:
    root = payload(tmp_path, infected=False)
    scan(root, "clamscan", database=tmp_path / "db")
    scan(root, "clamdscan", config_file=tmp_path / "clamd.conf")
    lines = fake_scanner.read_text(encoding="utf-8").splitlines()
    scans = [line for line in lines if line != "--version"]
    assert f"--database={tmp_path / 'db'}" in scans[0]
    assert f"--config-file={tmp_path / 'clamd.conf'}" in scans[1]


def test_scanner_error_fails_the_check(
    tmp_path: Path, fake_scanner: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SCANNER_MODE", "error")
    findings = scan(payload(tmp_path), "clamscan")
    assert pairs(findings) == [("VIR-001", "fail", None)]
    assert "exit status 2" in findings[0].message
    assert "No supported database files found" in findings[0].message


def test_exit_status_that_disagrees_with_output_fails(
    tmp_path: Path, fake_scanner: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SCANNER_MODE", "liar")
    findings = scan(payload(tmp_path, infected=False), "clamscan")
    assert pairs(findings) == [("VIR-001", "fail", None)]
    assert "disagrees" in findings[0].message


@pytest.mark.parametrize(
    ("scanner", "package"), [("clamscan", "clamav"), ("clamdscan", "clamav-daemon")]
)
def test_missing_scanner_names_the_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scanner: str, package: str
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolMissing) as e:
        scan(payload(tmp_path), scanner)
    assert e.value.code == "TOOL001"
    assert scanner in str(e.value) and package in str(e.value)


def test_unknown_scanner_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown virus scanner"):
        scan(tmp_path, "norton")


# ------------------------------------------------------------------ real ClamAV


def eicar_database(folder: Path) -> Path:
    """A ClamAV hash database (md5:size:name) that knows the EICAR test file."""
    folder.mkdir(parents=True, exist_ok=True)
    line = f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:Test.EICAR.Local\n"
    (folder / "eicar.hdb").write_text(line, encoding="ascii")
    return folder


def real_payload(tmp_path: Path) -> Path:
    root = tmp_path / "payload"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "eicar.com").write_bytes(EICAR)
    (root / "record.txt").write_text("clean\n", encoding="utf-8")
    return root


@pytest.mark.skipif(shutil.which("clamscan") is None, reason="clamscan (clamav) not installed")
def test_real_clamscan_with_a_local_database(tmp_path: Path) -> None:
    findings = scan(
        real_payload(tmp_path), "clamscan", database=eicar_database(tmp_path / "db"), timeout=300
    )
    assert pairs(findings) == [("VIR-001", "pass", None), ("VIR-002", "fail", "sub/eicar.com")]
    infected = next(f for f in findings if f.code == "VIR-002")
    assert "Test.EICAR.Local" in infected.message
    summary = next(f for f in findings if f.code == "VIR-001")
    assert summary.message.startswith("ClamAV ")


@pytest.mark.skipif(shutil.which("clamscan") is None, reason="clamscan (clamav) not installed")
def test_real_clamscan_without_a_database_fails_the_check(tmp_path: Path) -> None:
    findings = scan(real_payload(tmp_path), "clamscan", database=tmp_path / "no-db", timeout=300)
    assert pairs(findings) == [("VIR-001", "fail", None)]
    assert "exit status 2" in findings[0].message


@pytest.fixture
def clamd() -> Iterator[Path]:
    """A clamd of our own on a Unix socket in a temporary folder, with the EICAR database."""
    daemon = shutil.which("clamd") or (
        "/usr/sbin/clamd" if Path("/usr/sbin/clamd").exists() else None
    )
    if daemon is None or shutil.which("clamdscan") is None:
        pytest.skip("clamd/clamdscan (clamav-daemon, clamdscan) not installed")
    folder = Path(tempfile.mkdtemp(prefix="clamd-"))  # short: Unix socket paths are limited
    db = eicar_database(folder / "db")
    sock = folder / "clamd.sock"
    conf = folder / "clamd.conf"
    conf.write_text(
        f"LocalSocket {sock}\nDatabaseDirectory {db}\nForeground yes\n"
        f"LogFile {folder / 'clamd.log'}\nTemporaryDirectory {folder}\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [daemon, f"--config-file={conf}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (folder / "clamd.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"clamd did not start: {log}")
            time.sleep(0.1)
        yield conf
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def test_real_clamdscan_through_our_own_clamd(tmp_path: Path, clamd: Path) -> None:
    findings = scan(real_payload(tmp_path), "clamdscan", config_file=clamd, timeout=300)
    assert pairs(findings) == [("VIR-001", "pass", None), ("VIR-002", "fail", "sub/eicar.com")]
    assert "Test.EICAR.Local" in next(f.message for f in findings if f.code == "VIR-002")
