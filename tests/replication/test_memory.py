"""Replication memory does not grow with the number of objects in a version: the
version's files are read from the catalogue a page at a time, the target's listing
is kept in a scratch database, at most a bounded window of objects is in flight and
only counts are kept of the objects done."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from preservation.ingest.pipeline import IngestRequest, run_ingest
from tests.replication.helpers import local_store, write_repo

SMALL, LARGE = 4_000, 16_000
# Peak RSS growth of the replicating process allowed from SMALL to LARGE objects.
# Measured (local replica store, fresh process, VmHWM): 75 -> 85 MB from 4,000 to
# 16,000 objects and 88 -> 132 MB from 20,000 to 80,000 (about 0.75 KB per object)
# when the copy held the version's file rows, the target's listing as a dict and a
# result per object; 70 -> 71 MB and 77 -> 80 MB since they stream.
MAX_GROWTH_MB = 6
MAX_PEAK_MB = 200

SCRIPT = """
import json, sys
from pathlib import Path
from preservation.repository import open_repository
from preservation.storage.replicate import replicate_pending

report = replicate_pending(open_repository(Path(sys.argv[1])))
status = Path("/proc/self/status").read_text()
hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
print(json.dumps({"hwm_kb": int(hwm.split()[1]), "report": report.to_dict()}))
"""


def make_transfer(root: Path, count: int) -> Path:
    rng = random.Random(count)
    for i in range(count):
        folder = root / f"d{i // 200:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.bin").write_bytes(rng.randbytes(rng.randint(1, 64)))
    return root


def replicate(tmp_path: Path, count: int) -> tuple[int, dict[str, object], Path]:
    root = tmp_path / f"repo{count}"
    repo = write_repo(
        root,
        {
            "primary": local_store("stores/primary", "site-a", role="primary"),
            "replica": local_store("stores/replica", "site-b"),
        },
    )
    source = make_transfer(tmp_path / f"t{count}", count)
    receipt = run_ingest(repo, IngestRequest(source=source, submitter="tester"))
    assert receipt.aip is not None
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(root)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["hwm_kb"] // 1024, out["report"], root / "stores" / "replica" / receipt.aip


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_object_count(tmp_path: Path) -> None:
    small, small_report, _ = replicate(tmp_path, SMALL)
    large, report, replica = replicate(tmp_path, LARGE)
    assert large - small < MAX_GROWTH_MB, f"peak RSS {small} MB -> {large} MB"
    assert large < MAX_PEAK_MB, f"peak RSS {large} MB"

    # Every object was copied, nothing was skipped.
    for r, count in ((small_report, SMALL), (report, LARGE)):
        assert r["ok"] is True
        assert r["copies"] == {"verified": 1, "waiting": 0, "failed": 0, "skipped": 0}
        results = r["results"]
        assert isinstance(results, list) and len(results) == 1
        assert results[0]["objects"] == results[0]["copied"] > count
    payload = [p for p in (replica / "v1" / "data").rglob("*") if p.is_file()]
    assert len(payload) == LARGE
    assert (replica / "v1" / "bagit.txt").is_file()
