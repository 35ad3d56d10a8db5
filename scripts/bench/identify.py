"""Format identification benchmark: our identification path beside Siegfried run
through pygfried one file at a time, on the same files.

    .venv/bin/python scripts/bench/identify.py DIR [DIR ...]

- ours: ``preservation.ingest.identify.identify_files`` (what ingest runs): one
  shared ``pygfried.Scanner``, ``identify_many`` over chunks of paths with the
  configured number of Go workers (``identify_workers``, default 2), the OFD
  refinement and the FormatInfo records; with ``GOGC`` in its environment as the
  ingest's identification worker starts with (``examine.SIEGFRIED_GOGC``);
- peer: ``pygfried.identify(path)`` called once per file (a fresh scan each time,
  the first format identifier only).

Each runs in a fresh process (wall time and peak RSS of the process tree).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Measure, measure, tree_stats

from preservation.ingest.examine import SIEGFRIED_GOGC

# Both walk the tree in sorted order without listing it whole first (ingest reads its
# files a page at a time from a table on disk; a list of 200,000 Paths would add
# about 50 MB to either side).
_WALK = r"""
import os, sys
from pathlib import Path

def walk(top):
    with os.scandir(top) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            yield from walk(e.path)
        elif e.is_file(follow_symlinks=False):
            yield Path(e.path)
"""

_OURS = _WALK + r"""
from preservation.ingest.identify import CHUNK, identify_files
workers = int(sys.argv[2])
seen = files = 0
chunk = []
for p in walk(sys.argv[1]):
    chunk.append(p)
    files += 1
    if len(chunk) == CHUNK:
        seen += len(identify_files(chunk, workers))
        chunk = []
if chunk:
    seen += len(identify_files(chunk, workers))
assert seen == files > 0, (seen, files)
"""

_PEER = _WALK + r"""
import pygfried
n = 0
for p in walk(sys.argv[1]):
    pygfried.identify(str(p))
    n += 1
assert n > 0
"""


def compare(data: Path, workers: int = 2) -> tuple[Measure, Measure, int, int]:
    """(ours, peer, files, bytes) for the files under ``data``."""
    files, nbytes = tree_stats(data)
    env = {**os.environ, "GOGC": SIEGFRIED_GOGC}
    ours = measure([sys.executable, "-c", _OURS, str(data), str(workers)], env=env)
    peer = measure([sys.executable, "-c", _PEER, str(data)])
    return ours, peer, files, nbytes


def main(argv: list[str] | None = None) -> None:
    import argparse

    from common import HEADER, row

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    print(HEADER)
    for folder in args.folders:
        ours, peer, files, nbytes = compare(folder, args.workers)
        print(row(folder.name, "identify vs pygfried", ours, peer, files, nbytes), flush=True)


if __name__ == "__main__":
    main()
