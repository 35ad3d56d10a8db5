"""Ingest benchmark: our ingest into a local store beside bagit-python ``make_bag``
(same digest algorithms, 2 processes) on the same generated data.

    .venv/bin/python scripts/bench/ingest.py [--quick] [--datasets large,small,scans]

Each dataset is generated (seeded) under a temporary folder. Ours runs the whole ingest
(checks, identification, copy into the primary store, METS/PREMIS, catalogue) as
``preservation ingest --no-replicate``: the copy to the offsite store that ingest makes
by default is replication, which has its own benchmark row (against rclone, in
``replication.py``). The peer only hashes and writes manifests in place. Printed per
dataset: wall time, ratio, files/s, MB/s and the peak RSS of each process.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import HEADER, Measure, discard, measure, row, tree_stats
from datasets import make_files, make_scans

VENV_BIN = Path(sys.executable).parent


def datasets(quick: bool) -> dict[str, dict[str, int]]:
    if quick:
        return {
            "large": {"count": 2, "size": 64 * 2**20},
            "small": {"count": 5_000},
            "scans": {"items": 50, "pages": 4},
        }
    return {
        "large": {"count": 8, "size": 256 * 2**20},
        "small": {"count": 50_000},
        "scans": {"items": 500, "pages": 4},
    }


def build(kind: str, params: dict[str, int], root: Path) -> tuple[Path, Path | None]:
    if kind == "large":
        return make_files(root / "large", params["count"], params["size"], params["size"]), None
    if kind == "small":
        return make_files(root / "small", params["count"], 1024, 16 * 1024), None
    transfer, sheet = make_scans(
        root / "scans", params["items"], params["pages"], size=(1700, 1400)
    )
    return transfer, sheet


def compare(data: Path, sheet: Path | None, repo: Path, scratch: Path) -> tuple[Measure, Measure]:
    """Ingest ``data`` into a fresh repository ``repo`` (kept) and make a bag of a copy
    of it under ``scratch`` (deleted); returns (ours, peer)."""
    measure([str(VENV_BIN / "preservation"), "init", str(repo)])
    cmd = [str(VENV_BIN / "preservation"), "--repo", str(repo), "ingest", "--no-replicate"]
    cmd.append(str(data))
    if sheet is not None:
        cmd += ["--metadata", str(sheet)]
    ours = measure(cmd)
    peer_copy = scratch / f"peer-{data.name}"
    shutil.copytree(data, peer_copy)
    try:
        peer = measure(
            [
                sys.executable,
                "-c",
                "import sys, bagit; bagit.make_bag(sys.argv[1], checksums=['sha256','sha512'],"
                " processes=2)",
                str(peer_copy),
            ]
        )
    finally:
        discard(peer_copy)
    return ours, peer


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--datasets", default="large,small,scans")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    wanted = args.datasets.split(",")
    print(HEADER)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        base = Path(tmp)
        for kind, params in datasets(args.quick).items():
            if kind not in wanted:
                continue
            data, sheet = build(kind, params, base / "data")
            files, nbytes = tree_stats(data)
            repo = base / f"repo-{kind}"
            ours, peer = compare(data, sheet, repo, base)
            print(row(kind, "ingest vs make_bag", ours, peer, files, nbytes), flush=True)
            discard(repo)
            discard(data)


if __name__ == "__main__":
    main()
