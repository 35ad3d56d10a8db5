"""The single-pass hashing ceiling: hashlib over bytes already in memory, on all cores.

    .venv/bin/python scripts/bench/hashing_ceiling.py DIR [--algorithm sha256]

The files under DIR are read into memory first (not timed), then every file is
digested once with the algorithm (the audit digest, sha256 by default) by as many
threads as the machine has cores (hashlib releases the GIL while it digests), each
file in one ``update`` call. The time is the best of three. No audit, however
written, can digest the same bytes faster on this machine: an audit's MB/s divided
by this figure is how close it comes.

Memory: the files are held in memory at once, so give it a folder that fits (the
``large`` dataset is 2 GiB); files are read in groups of at most ``--max-bytes``
(default 2 GiB) and the timings of the groups added up.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def ceiling(
    folder: Path, algorithm: str = "sha256", threads: int | None = None, max_bytes: int = 2**31
) -> tuple[float, int, int]:
    """(seconds, files, bytes): the best-of-three time to digest every file under
    ``folder`` from memory with ``threads`` threads (default: all cores)."""
    threads = threads or os.cpu_count() or 1
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    total = 0.0
    nbytes = 0
    i = 0

    def digest(data: bytes) -> str:
        return hashlib.new(algorithm, data).hexdigest()

    with ThreadPoolExecutor(threads) as pool:
        while i < len(paths):
            group: list[bytes] = []
            size = 0
            while i < len(paths) and (not group or size + paths[i].stat().st_size <= max_bytes):
                group.append(paths[i].read_bytes())
                size += len(group[-1])
                i += 1
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                list(pool.map(digest, group))
                best = min(best, time.perf_counter() - t)
            total += best
            nbytes += size
            del group
    return total, len(paths), nbytes


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--algorithm", default="sha256")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    seconds, files, nbytes = ceiling(args.folder, args.algorithm, args.threads)
    print(
        f"{args.algorithm} on {args.threads or os.cpu_count()} threads: {files} files,"
        f" {nbytes / 1e6:.1f} MB in {seconds:.3f} s = {nbytes / 1e6 / seconds:.1f} MB/s"
    )


if __name__ == "__main__":
    main()
