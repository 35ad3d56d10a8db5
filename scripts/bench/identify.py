"""Format identification benchmark: our identification path beside Siegfried run
through pygfried one file at a time, on the same files.

    .venv/bin/python scripts/bench/identify.py DIR [DIR ...]

- ours: ``preservation.ingest.identify.identify_files`` (what ingest runs): one
  shared ``pygfried.Scanner``, ``identify_many`` over chunks of paths with the
  configured number of Go workers (``identify_workers``, default 2), the OFD
  refinement and the FormatInfo records; with ``GOGC=25`` in its environment, as the
  ingest's identification workers start with (``examine.SIEGFRIED_GOGC``);
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

_OURS = r"""
import sys
from pathlib import Path
from preservation.ingest.identify import CHUNK, identify_files
paths = sorted(p for p in Path(sys.argv[1]).rglob("*") if p.is_file())
workers = int(sys.argv[2])
seen = 0
for start in range(0, len(paths), CHUNK):
    seen += len(identify_files(paths[start:start + CHUNK], workers))
assert seen == len(paths), (seen, len(paths))
"""

_PEER = r"""
import sys
from pathlib import Path
import pygfried
n = 0
for p in sorted(p for p in Path(sys.argv[1]).rglob("*") if p.is_file()):
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
