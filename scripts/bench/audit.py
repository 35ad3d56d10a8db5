"""Full-audit benchmark: ``preservation audit run --mode full`` beside
``bagit.py --validate --processes 2`` on the same bags.

    .venv/bin/python scripts/bench/audit.py [--quick] [--datasets large,small] [--workers 4]

Each dataset is generated (seeded), ingested once into a fresh repository (not timed),
and the AIP's stored copy, which on a local store is a plain BagIt bag, is then
checked three ways, each in a fresh process (wall time and peak RSS measured by
scripts/bench/common.py):

- ours, sha256: the default audit (one digest, compared with the catalogue and the
  bag manifest, every result recorded in the catalogue and the Parquet log);
- ours, --all-digests: sha256 and sha512 in one read, as bagit.py checks both;
- peer: ``bagit.py --validate --processes 2`` on the same folder (both manifests).

Printed per dataset and check: wall time, ratio to the peer, files/s, MB/s (payload and
tag bytes read) and peak RSS. The page cache is warm for every run after the ingest
(each tool reads the same bytes from memory), so the figures compare CPU and
per-file overheads rather than disks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import HEADER, Measure, discard, measure, row, tree_stats
from datasets import make_files

VENV_BIN = Path(sys.executable).parent


def datasets(quick: bool) -> dict[str, dict[str, int]]:
    if quick:
        return {
            "large": {"count": 4, "min": 64 * 2**20, "max": 64 * 2**20},
            "small": {"count": 5_000, "min": 1024, "max": 16 * 1024},
        }
    return {
        "large": {"count": 8, "min": 512 * 2**20, "max": 512 * 2**20},
        "small": {"count": 50_000, "min": 1024, "max": 16 * 1024},
    }


def _ingest(repo: Path, data: Path) -> str:
    exe = str(VENV_BIN / "preservation")
    subprocess.run([exe, "init", str(repo)], check=True, capture_output=True)
    done = subprocess.run(
        [exe, "--repo", str(repo), "ingest", str(data), "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    aip = json.loads(done.stdout)["aip"]
    assert isinstance(aip, str)
    return aip


def _in_run(audit: list[str], rss_mb: float) -> Measure:
    """The audit's own time (start to finish of its run), without interpreter start-up
    and imports, from its --json report; the RSS is the measured run's. Early reads
    (preservation.audit.early) are off here: with them the run starts with its first
    read, during the imports, and this figure would time those too."""
    env = {**os.environ, "PRESERVATION_AUDIT_EARLY_READS": "0"}
    done = subprocess.run([*audit, "--json"], capture_output=True, text=True, check=True, env=env)
    run = json.loads(done.stdout)["runs"][0]
    wall = (
        datetime.fromisoformat(run["finished"]) - datetime.fromisoformat(run["started"])
    ).total_seconds()
    return Measure(wall, rss_mb)


def compare(
    repo: Path, aip: str, workers: int, all_digests: bool = True
) -> dict[str, tuple[Measure, Measure | None]]:
    """The checks of one ingested AIP (see the module doc): operation -> (ours, peer)."""
    exe = str(VENV_BIN / "preservation")
    bag = repo / "stores" / "primary" / aip / "v1"
    audit = [exe, "--repo", str(repo), "audit", "run", "--store", "primary",
             "--mode", "full", "--aip", aip, "--workers", str(workers)]  # fmt: skip
    peer = measure(
        [str(VENV_BIN / "bagit.py"), "--validate", "--processes", "2", "--quiet", str(bag)]
    )
    ours = measure(audit)
    out: dict[str, tuple[Measure, Measure | None]] = {"audit sha256": (ours, peer)}
    if all_digests:
        out["audit sha256+sha512"] = (measure([*audit, "--all-digests"]), peer)
    out["bagit.py --validate"] = (peer, None)
    out["audit sha256 in-run"] = (_in_run(audit, ours.peak_rss_mb), None)
    return out


def ingest(repo: Path, data: Path) -> str:
    """Ingest ``data`` into a new repository (not timed); the AIP id."""
    return _ingest(repo, data)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--datasets", default="large,small")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    wanted = args.datasets.split(",")
    print(HEADER)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        base = Path(tmp)
        for kind, p in datasets(args.quick).items():
            if kind not in wanted:
                continue
            data = make_files(base / "data" / kind, p["count"], p["min"], p["max"])
            repo = base / f"repo-{kind}"
            aip = _ingest(repo, data)
            files, nbytes = tree_stats(repo / "stores" / "primary" / aip / "v1")
            for op, (ours, peer) in compare(repo, aip, args.workers).items():
                print(row(kind, op, ours, peer, files, nbytes), flush=True)
            discard(repo)
            discard(data)


if __name__ == "__main__":
    main()
