"""Mixed load on one host (loopback), for a bounded time, then a full audit: nothing lost.

    scripts/bench/load [--duration 60] [--ingesters 4] [--clients 50] [--workdir DIR]
        [--keep] [--json]

1. A repository is created (``preservation init``: SQLite catalogue, the local stores
   ``primary`` and ``offsite``) and a pool of digitised-records transfers is generated
   (TIFF pages and their catalogue sheet, scripts/bench/datasets.py), one per ingest.
   Users ``load-reader`` and ``load-auditor`` get API tokens; ``preservation serve``
   (uvicorn) starts on a free loopback port in its own process.
2. For ``--duration`` seconds, all at once:

   - ``--ingesters`` workers, each running ``preservation ingest TRANSFER --metadata
     SHEET --no-replicate`` (the real command, one process per ingest) one after the
     other, each on a new transfer;
   - one worker running ``preservation replicate --pending`` again and again;
   - one worker running ``preservation audit run --mode full --ahead`` again and again;
   - ``--clients`` API clients (httpx, asyncio, keep-alive) each looping over a search
     (``GET /api/aips?q=...``, reader token), an AIP's detail (``GET /api/aips/{id}`` of
     an AIP ingested so far, auditor token) and ``GET /api/me``. A GET that meets the
     keep-alive race (the server closed the idle connection as the request went out) is
     sent once more and counted under "retried", not as an error.

   Nothing new starts after the deadline; what is running finishes.
3. Afterwards: ``replicate --pending`` until the queue is empty, then ``audit run --mode
   full --ahead --all-digests`` on every store, then the checks that nothing was lost:
   every AIP whose ingest succeeded is in ``aip list`` and on both stores, its stored bag
   validates (``bag validate``) on both stores, ``audit incidents`` has none open and
   ``health --all`` exits 0.

Printed: per kind of operation the count, errors, throughput (per second of the
loaded period) and p50/p99/max latency; the verification's result. Exit status 0 only
with zero errors and zero lost data. The server, the workers and this script share the
machine, so the figures are of the whole mix on one host.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import httpx  # noqa: E402
from api_load import free_port, start_server  # noqa: E402
from datasets import make_scans  # noqa: E402

from preservation.access.auth import add_user  # noqa: E402
from preservation.repository import init_repository  # noqa: E402

EXE = str(Path(sys.executable).with_name("preservation"))
SEARCH_WORDS = ["通知", "报告", "会议", "规划", "关于", "Z109", "2011"]


@dataclass
class Kind:
    """Latencies (seconds) and errors of one kind of operation."""

    name: str
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def retried(self) -> None:
        with self.lock:
            self.retries += 1

    def ok(self, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)

    def fail(self, why: str) -> None:
        with self.lock:
            self.errors.append(why)

    def summary(self, wall: float) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, round(p / 100 * (len(lat) - 1)))] * 1000 if lat else 0.0

        return {
            "kind": self.name,
            "ops": len(lat) + len(self.errors),
            "errors": len(self.errors),
            "retried": self.retries,
            "per_s": round(len(lat) / wall, 2) if wall else 0.0,
            "p50_ms": round(pct(50), 1),
            "p99_ms": round(pct(99), 1),
            "max_ms": round(lat[-1] * 1000, 1) if lat else 0.0,
            "first_errors": self.errors[:3],
        }


def cli(repo: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")}
    return subprocess.run([EXE, "--repo", str(repo), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)  # fmt: skip


def timed(kind: Kind, repo: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    start = time.perf_counter()
    try:
        done = cli(repo, *args)
    except subprocess.TimeoutExpired:
        kind.fail(f"{' '.join(args[:2])}: timed out")
        return None
    if done.returncode != 0:
        kind.fail(f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}")
        return None
    kind.ok(time.perf_counter() - start)
    return done


class Load:
    def __init__(self, work: Path, duration: float, ingesters: int, clients: int) -> None:
        self.work = work
        self.repo = work / "repo"
        self.duration = duration
        self.ingesters = ingesters
        self.clients = clients
        self.kinds = {n: Kind(n) for n in ("ingest", "replicate", "audit", "api")}
        self.aips: list[str] = []
        self.aips_lock = threading.Lock()
        self.transfers: list[tuple[Path, Path]] = []
        self.deadline = 0.0

    # ------------------------------------------------------------------ set-up
    def prepare(self, pool: int) -> dict[str, str]:
        repo = init_repository(self.repo, organization="Load Archive")
        tokens = {
            "reader": add_user(repo, "load-reader", "reader")[1],
            "auditor": add_user(repo, "load-auditor", "auditor")[1],
        }
        for i in range(pool):
            folder = self.work / "transfers" / f"t{i:03d}"
            scans = make_scans(folder, items=3, pages_per_item=2, size=(300, 420),
                               seed=1000 + i, year=1990 + i)  # fmt: skip
            self.transfers.append(scans)
        return tokens

    # ------------------------------------------------------------------ workers
    def ingester(self, n: int) -> None:
        kind = self.kinds["ingest"]
        while time.monotonic() < self.deadline:
            with self.aips_lock:
                if not self.transfers:
                    return
                folder, sheet = self.transfers.pop()
            done = timed(kind, self.repo, "--json", "ingest", str(folder), "--metadata",
                         str(sheet), "--no-replicate")  # fmt: skip
            if done is not None:
                with self.aips_lock:
                    self.aips.append(json.loads(done.stdout)["aip"])

    def looper(self, name: str, *args: str) -> None:
        kind = self.kinds[name]
        while time.monotonic() < self.deadline:
            timed(kind, self.repo, *args)
            time.sleep(0.5)

    async def api_clients(self, base: str, tokens: dict[str, str]) -> None:
        kind = self.kinds["api"]
        limits = httpx.Limits(max_connections=self.clients, max_keepalive_connections=self.clients)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60.0) as client:

            async def one(seed: int) -> None:
                rng = random.Random(seed)
                while time.monotonic() < self.deadline:
                    choice = rng.random()
                    with self.aips_lock:
                        known = list(self.aips)
                    if choice < 0.5 or not known:
                        path, token = f"/api/aips?q={rng.choice(SEARCH_WORDS)}&limit=20", "reader"
                    elif choice < 0.9:
                        path, token = f"/api/aips/{rng.choice(known)}", "auditor"
                    else:
                        path, token = "/api/me", "reader"
                    start = time.perf_counter()
                    auth = {"Authorization": f"Bearer {tokens[token]}"}
                    try:
                        try:
                            r = await client.get(path, headers=auth)
                        except (httpx.ReadError, httpx.RemoteProtocolError):
                            # the keep-alive race: the server closed an idle connection
                            # (uvicorn: after 5 s) as this GET went out on it. A GET is
                            # idempotent: sent once more on a new connection, and counted.
                            kind.retried()
                            r = await client.get(path, headers=auth)
                        await r.aread()
                    except httpx.HTTPError as e:
                        kind.fail(f"{path}: {type(e).__name__}: {e}")
                        continue
                    if r.status_code == 200:
                        kind.ok(time.perf_counter() - start)
                    else:
                        kind.fail(f"{path}: HTTP {r.status_code} {r.text[:200]}")

            await asyncio.gather(*(one(i) for i in range(self.clients)))

    def run(self, tokens: dict[str, str], base: str) -> float:
        self.deadline = time.monotonic() + self.duration
        started = time.perf_counter()
        threads = [threading.Thread(target=self.ingester, args=(i,)) for i in range(self.ingesters)]
        loops = [("replicate", "replicate", "--pending"),
                 ("audit", "audit", "run", "--mode", "full", "--ahead")]  # fmt: skip
        threads += [threading.Thread(target=self.looper, args=args) for args in loops]
        for t in threads:
            t.start()
        asyncio.run(self.api_clients(base, tokens))
        for t in threads:
            t.join()
        return time.perf_counter() - started

    # ------------------------------------------------------------------ afterwards
    def verify(self) -> dict[str, Any]:
        problems: list[str] = []
        for _ in range(5):
            cli(self.repo, "replicate", "--pending")
        audit = cli(self.repo, "--json", "audit", "run", "--mode", "full", "--ahead",
                    "--all-digests")  # fmt: skip
        if audit.returncode != 0:
            problems.append(f"final audit exit {audit.returncode}: {audit.stderr.strip()[-300:]}")
        listed = cli(self.repo, "--json", "aip", "list")
        text = listed.stdout
        cfg = local_store_roots(self.repo)
        for aip in self.aips:
            if aip not in text:
                problems.append(f"{aip}: ingested but not in 'aip list'")
            for store, root in cfg.items():
                bag = root / aip / "v1"
                if not (bag / "bagit.txt").is_file():
                    problems.append(f"{aip}: no complete copy on {store}")
                    continue
                v = cli(self.repo, "--json", "bag", "validate", "--processes", "1", str(bag))
                if v.returncode != 0:
                    problems.append(f"{aip} on {store}: bag validate exit {v.returncode}")
        incidents = cli(self.repo, "--json", "audit", "incidents")
        try:
            open_incidents = len(json.loads(incidents.stdout or "[]"))
        except (json.JSONDecodeError, TypeError):
            open_incidents = -1
        if open_incidents != 0:
            problems.append(f"open incidents: {open_incidents} ({incidents.stdout[-300:]})")
        health = cli(self.repo, "--json", "health", "--all")
        if health.returncode != 0:
            problems.append(f"health --all exit {health.returncode}")
        return {"aips": len(self.aips), "problems": problems, "lost": len(problems)}


def local_store_roots(repo: Path) -> dict[str, Path]:
    """Store name -> root folder of the repository's local stores."""
    from preservation.repository import open_repository

    r = open_repository(repo)
    return {
        name: Path(getattr(store, "root"))  # noqa: B009 - only local stores have a root
        for name, store in r.stores().items()
        if hasattr(store, "root")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="loaded seconds")
    parser.add_argument("--ingesters", type=int, default=4)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--pool", type=int, default=40, help="transfers generated beforehand")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.ingesters < 1 or args.clients < 1:
        parser.error("--duration, --ingesters and --clients must be positive")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="preservation-load-"))
    work.mkdir(parents=True, exist_ok=True)
    load = Load(work, args.duration, args.ingesters, args.clients)
    server = None
    try:
        print(f"preparing {args.pool} transfers in {work} ...", file=sys.stderr)
        tokens = load.prepare(args.pool)
        port = free_port()
        server = start_server(load.repo, port, work / "server.log")
        print(f"loading for {args.duration:g} s ...", file=sys.stderr)
        wall = load.run(tokens, f"http://127.0.0.1:{port}")
        server.terminate()
        server.wait(timeout=30)
        server = None
        print("verifying: replication catch-up, full audit, bag validation ...", file=sys.stderr)
        verdict = load.verify()
        out = {
            "duration_s": round(wall, 1),
            "ingesters": args.ingesters,
            "api_clients": args.clients,
            "kinds": [k.summary(wall) for k in load.kinds.values()],
            "verification": verdict,
        }
        errors = sum(k["errors"] for k in out["kinds"])
        if args.json:
            print(json.dumps(out, ensure_ascii=False, indent=2))
        else:
            print(f"{wall:.1f} s loaded: {args.ingesters} ingesters, 1 replicator, 1 auditor,"
                  f" {args.clients} API clients on loopback")  # fmt: skip
            print(f"{'kind':<10} {'ops':>6} {'errors':>6} {'retried':>7} {'per s':>8} {'p50 ms':>9}"
                  f" {'p99 ms':>9} {'max ms':>9}")  # fmt: skip
            for k in out["kinds"]:
                counts = f"{k['kind']:<10} {k['ops']:>6} {k['errors']:>6} {k['retried']:>7}"
                times = f"{k['per_s']:>8} {k['p50_ms']:>9} {k['p99_ms']:>9} {k['max_ms']:>9}"
                print(counts, times)
                for e in k["first_errors"]:
                    print(f"    error: {e}")
            print(f"verification: {verdict['aips']} AIPs ingested;"
                  f" {'nothing lost' if not verdict['problems'] else 'PROBLEMS:'}")  # fmt: skip
            for p in verdict["problems"]:
                print(f"    {p}")
        return 0 if errors == 0 and not verdict["problems"] else 1
    finally:
        if server is not None:
            server.terminate()
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
