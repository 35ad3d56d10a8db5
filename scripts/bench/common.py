"""Helpers shared by the benchmarks: run a command in a fresh wrapper process and
measure its wall time and peak RSS (the whole process tree: the command and every
child it starts, summed), and print rows side by side with the peer tool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

# The wrapper samples the summed RSS of the command's process tree every 20 ms and
# also takes the kernel's peak of the largest single process (ru_maxrss), which
# catches a peak between two samples; the figure reported is the larger of the two.
_WRAPPER = r"""
import json, resource, subprocess, sys, time
import psutil
t = time.perf_counter()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
root = psutil.Process(p.pid)
peak = 0
import threading
err = []
reader = threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True)
reader.start()
while p.poll() is None:
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        procs = []
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    peak = max(peak, total)
    time.sleep(0.02)
wall = time.perf_counter() - t
reader.join()
rss_kib = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, peak // 1024)
print(json.dumps({"wall": wall, "rss_kib": rss_kib, "rc": p.returncode,
                  "stderr": (err[0] if err else b"").decode(errors="replace")[-2000:]}))
"""


@dataclass
class Measure:
    wall: float
    peak_rss_mb: float


def measure(cmd: list[str], env: dict[str, str] | None = None) -> Measure:
    """Run ``cmd`` in a fresh wrapper so the peak RSS is this command's tree alone."""
    out = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *cmd],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    data = json.loads(out.stdout)
    if data["rc"] != 0:
        raise SystemExit(f"benchmark command failed ({data['rc']}): {cmd}\n{data['stderr']}")
    return Measure(data["wall"], data["rss_kib"] / 1024)


MANY_FILES = 10_000  # trees with this many files are set aside, not deleted, mid-run


def discard(tree: Path) -> None:
    """Remove ``tree``, or, when it holds many files, set it aside (renamed beside
    itself; the benchmark's temporary folder removes it at the end).

    On ext4 without a journal (as here) the kernel skips inodes deleted in the last
    minutes when it allocates new ones, and the search grows costly: after deleting
    tens of thousands of files, creating one costs up to ~800 us of CPU instead of
    ~30 us for some minutes. Deleting a dataset of 50,000 files just before the next
    ingest (which creates a store object per file, where the peer only renames)
    would measure that, not the ingest.
    """
    count = 0
    pending = [tree]
    while pending and count < MANY_FILES:
        try:
            with os.scandir(pending.pop()) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
                    else:
                        count += 1
        except OSError:
            continue
    if count >= MANY_FILES:
        tree.rename(tree.with_name(f".discarded-{tree.name}-{uuid.uuid4().hex[:8]}"))
    else:
        shutil.rmtree(tree)


def tree_stats(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


HEADER = (
    f"{'dataset':<10} {'operation':<22} {'ours s':>8} {'peer s':>8} {'ratio':>6} "
    f"{'files/s':>9} {'MB/s':>8} {'our RSS MB':>10} {'peer RSS MB':>11}"
)


def row(dataset: str, op: str, ours: Measure, peer: Measure | None, files: int, nbytes: int) -> str:
    ratio = f"{ours.wall / peer.wall:6.2f}" if peer else "     -"
    peer_s = f"{peer.wall:8.2f}" if peer else "       -"
    peer_rss = f"{peer.peak_rss_mb:11.0f}" if peer else "          -"
    return (
        f"{dataset:<10} {op:<22} {ours.wall:8.2f} {peer_s} {ratio} "
        f"{files / ours.wall:9.0f} {nbytes / 1e6 / ours.wall:8.1f} {ours.peak_rss_mb:10.0f} "
        f"{peer_rss}"
    )
