"""Virus check of a transfer's payload with ClamAV (DA/T 70 security, NDSA integrity L1).

``scan(root, scanner)`` runs ``clamscan`` or ``clamdscan`` over the payload folder as a
subprocess and turns its output into findings:

- ``VIR-001`` the check itself: *not performed* when no scanner is configured (never a
  pass), *fail* when the scanner reported an error (exit status 2, for example no
  signature database or no clamd to talk to), *pass* when it ran to the end;
- ``VIR-002`` the outcome: one *fail* per infected file, naming the file and the
  signature, or one *pass* when the scan ran cleanly and found nothing.

The scanner's output is read line by line as it comes (``--infected`` prints only the
infected files), so memory does not grow with the number of files scanned.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

from preservation.errors import ToolMissing
from preservation.ingest.findings import Finding, define

Scanner = Literal["none", "clamscan", "clamdscan"]

VIR_PERFORMED = define("VIR-001", "security", "Virus check performed", "已进行病毒检测", cost=90)
VIR_CLEAN = define("VIR-002", "security", "No virus found", "未发现病毒", cost=91)

PACKAGES = {
    "clamscan": "clamav",
    "clamdscan": "clamdscan (and clamav-daemon for the clamd service)",
}
ARGS = {
    "clamscan": ["-r", "--no-summary", "--infected"],
    # --fdpass lets clamd (running as its own user) read files it has no permission for.
    "clamdscan": ["--multiscan", "--fdpass", "--no-summary", "--infected"],
}
_FOUND = re.compile(r"^(?P<path>.+): (?P<signature>\S+) FOUND$")
STDERR_KEEP = 4000  # characters of the scanner's error output kept in a finding


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except (ValueError, OSError):
        return path


def scanner_version(executable: str) -> str:
    """The scanner's ``--version`` line, e.g. ``ClamAV 1.4.6/27500/Tue Jan 6 2026``."""
    try:
        done = subprocess.run(
            [executable, "--version"],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown version"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "unknown version"


def scan(
    paths_root: Path,
    scanner: Scanner | str,
    *,
    database: Path | None = None,
    config_file: Path | None = None,
    timeout: float | None = None,
) -> list[Finding]:
    """Scan every file under ``paths_root``; returns the VIR findings.

    ``database`` (clamscan ``--database``) and ``config_file`` (clamdscan
    ``--config-file``) point the scanner at a signature folder or a clamd other than
    the system's. Raises ToolMissing (TOOL001) when the scanner is not installed.
    """
    if scanner == "none":
        return [
            Finding(
                VIR_PERFORMED.code,
                "not performed",
                "no virus scanner configured (ingest.virus_scanner = 'none'):"
                " the payload was not checked for viruses",
            )
        ]
    if scanner not in ARGS:
        raise ValueError(f"unknown virus scanner {scanner!r}")
    executable = shutil.which(scanner)
    if executable is None:
        raise ToolMissing(tool=scanner, package=PACKAGES[scanner])
    version = scanner_version(executable)
    cmd = [executable, *ARGS[scanner]]
    if database is not None and scanner == "clamscan":
        cmd.append(f"--database={database}")
    if config_file is not None and scanner == "clamdscan":
        cmd.append(f"--config-file={config_file}")
    cmd.append(str(paths_root))

    findings: list[Finding] = []
    other_lines: list[str] = []
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="surrogateescape",
                env={**os.environ, "LC_ALL": "C"},
            )
        except OSError as e:
            raise ToolMissing(
                f"{scanner} could not be started ({e.strerror or e})",
                tool=scanner,
                package=PACKAGES[scanner],
            ) from e
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            m = _FOUND.match(line)
            if m:
                rel = _relative(m.group("path"), paths_root)
                findings.append(
                    Finding(
                        VIR_CLEAN.code,
                        "fail",
                        f"{rel}: infected ({m.group('signature')})",
                        file=rel,
                        details={"signature": m.group("signature"), "scanner": version},
                    )
                )
            elif line.strip() and len(other_lines) < 20:
                other_lines.append(line)
        try:
            status = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            status = -1
        err.seek(0)
        stderr = err.read(STDERR_KEEP).decode("utf-8", "replace").strip()

    infected = len(findings)
    details = {"scanner": scanner, "version": version, "exit_status": status}
    if status in (0, 1) and (status == 1) == (infected > 0):
        findings.append(
            Finding(
                VIR_PERFORMED.code,
                "pass",
                f"{version}: scanned {paths_root.name or paths_root}; {infected} infected file(s)",
                details=details,
            )
        )
        if not infected:
            findings.append(
                Finding(VIR_CLEAN.code, "pass", f"{version}: no virus found", details=details)
            )
        return findings
    if status == -1:
        problem = f"did not finish within {timeout:g} s" if timeout else "was stopped"
    elif status in (0, 1):
        problem = f"exit status {status} disagrees with {infected} FOUND line(s)"
    else:
        problem = f"exit status {status}"
    text = "; ".join(x for x in (stderr, *other_lines) if x)
    findings.append(
        Finding(
            VIR_PERFORMED.code,
            "fail",
            f"{scanner} ({version}) failed: {problem}" + (f": {text}" if text else ""),
            details={**details, "stderr": stderr},
        )
    )
    return findings
