"""Audit memory does not grow with the number of files of a copy: a run of every
digest of the bag manifests (``--all-digests``) keeps the manifests of big copies in a
scratch database, not in memory (preservation.audit.manifests.ManifestIndex)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from preservation.repository import Repository
from tests.audit.builders import build_aip, make_repo
from tests.audit.conftest import PRIMARY_ONLY

SMALL, LARGE = 8_000, 32_000
# Copies of more files than this go to the scratch database (the default, 50,000, is
# lowered so that the test stays quick: SMALL is kept in memory, LARGE is not).
MEMORY_ENTRIES = 10_000
# Peak RSS growth allowed from SMALL to LARGE files. Measured (VmHWM, every digest):
# 146 MB at 20,000 files and 177 MB at 80,000 (about 520 bytes a file, 12 MB from
# SMALL to LARGE) when a copy of up to 200,000 files had both manifests in dicts;
# 146 MB and 142 MB with the scratch database.
MAX_GROWTH_MB = 7
MAX_PEAK_MB = 200

SCRIPT = """
import json, sys
from pathlib import Path
from preservation.audit import manifests
from preservation.audit.runner import AuditRequest, run_audit
from preservation.repository import open_repository

manifests.MEMORY_ENTRIES = int(sys.argv[3])
repo = open_repository(Path(sys.argv[1]))
(run,) = run_audit(repo, AuditRequest(store="primary", mode="full", aip=sys.argv[2],
                                      all_digests=True))
status = Path("/proc/self/status").read_text()
hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
print(json.dumps({"hwm_kb": int(hwm.split()[1]), "run": run.to_dict()}))
"""


def audit(tmp_path: Path, count: int) -> tuple[int, dict[str, object]]:
    repo: Repository = make_repo(tmp_path / f"repo{count}", PRIMARY_ONLY)
    files = {f"d{i // 500:03d}/f{i:06d}.bin": b"%d" % i for i in range(count)}
    aip = build_aip(repo, files)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(repo.root), aip, str(MEMORY_ENTRIES)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["hwm_kb"] // 1024, out["run"]


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_file_count(tmp_path: Path) -> None:
    small, _ = audit(tmp_path, SMALL)
    large, run = audit(tmp_path, LARGE)
    assert large - small < MAX_GROWTH_MB, f"peak RSS {small} MB -> {large} MB"
    assert large < MAX_PEAK_MB
    # every file checked with both digests against the catalogue and the manifests
    assert run["algorithms"] == ["sha256", "sha512"]
    assert run["outcomes"] == {"pass": LARGE + 6}
