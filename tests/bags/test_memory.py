"""Bag validation memory does not grow with the number of files: the listed paths, the
files found, their digests and every set operation between them live in a scratch
database (see preservation.bags.validate)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

SMALL, LARGE = 5_000, 40_000
# Peak RSS growth of the validating process from SMALL to LARGE files, all in data/
# itself (one folder: the walk must not hold a folder's names either). Measured with
# every listed path, file found and digest held in dicts: 48 MB (full, 2 processes) and
# 32 MB (completeness only) with files in folders of 500, 52 MB flat. With the scratch
# database: 2-5 MB (its bounded page cache filling up).
MAX_GROWTH_MB = 12
MAX_PEAK_MB = 60  # of the validating process; was 85 at 40,000 files

SCRIPT = """
import json, sys
from pathlib import Path
from preservation.bags.validate import validate_bag

if __name__ == "__main__":
    bag, mode = Path(sys.argv[1]), sys.argv[2]
    count = 0
    def consume(entries):
        global count
        count = sum(1 for _ in entries)
    if mode == "full":
        report = validate_bag(bag, processes=2, on_entries=consume)
    else:
        report = validate_bag(bag, completeness_only=True, on_entries=consume)
    status = Path("/proc/self/status").read_text()
    hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    print(json.dumps({"hwm_kb": int(hwm.split()[1]), "valid": report.valid,
                      "checked": report.checked, "files": report.payload_files,
                      "entries": count}))
"""


def make_flat_bag(root: Path, count: int) -> Path:
    """A BagIt 1.0 bag of ``count`` tiny files, all in ``data/``."""
    data = root / "data"
    data.mkdir(parents=True)
    lines = []
    octets = 0
    for i in range(count):
        content = b"%d\n" % i
        name = f"f{i:06d}.txt"
        (data / name).write_bytes(content)
        lines.append(f"{hashlib.sha256(content).hexdigest()}  data/{name}\n")
        octets += len(content)
    (root / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    (root / "bag-info.txt").write_text(f"Payload-Oxum: {octets}.{count}\n")
    (root / "manifest-sha256.txt").write_text("".join(lines))
    return root


def peak_mb(bag: Path, mode: str, count: int, script: Path) -> float:
    done = subprocess.run(
        [sys.executable, str(script), str(bag), mode],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    want = "full" if mode == "full" else "completeness"
    assert (out["valid"], out["checked"], out["files"]) == (True, want, count), out
    assert out["entries"] == count
    return float(out["hwm_kb"]) / 1024


@pytest.mark.slow
def test_validation_memory_does_not_grow_with_file_count(tmp_path: Path) -> None:
    script = tmp_path / "measure.py"  # a file: spawned digest workers import __main__
    script.write_text(SCRIPT)
    small = make_flat_bag(tmp_path / "small", SMALL)
    large = make_flat_bag(tmp_path / "large", LARGE)
    for mode in ("full", "completeness"):
        low = peak_mb(small, mode, SMALL, script)
        high = peak_mb(large, mode, LARGE, script)
        assert high - low < MAX_GROWTH_MB, f"{mode}: {low:.1f} MB -> {high:.1f} MB"
        assert high < MAX_PEAK_MB, f"{mode}: {high:.1f} MB"
