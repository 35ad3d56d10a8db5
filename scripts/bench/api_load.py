"""HTTP load benchmark of the REST API and the dashboard with 10,000 AIPs.

    scripts/bench/api_load [--aips 10000] [--concurrency 16] [--requests 2000]
        [--workdir DIR] [--keep] [--json]

1. A repository is created (``preservation init``: SQLite catalogue, two local
   stores) and filled with ``--aips`` AIPs straight through the catalogue's own
   functions (``preservation.catalog.record_ingest``, the rows a real ingest writes,
   no payload on the stores): three payload files and two tag files each, varied
   fonds, years, titles, creators and formats; one AIP in five restricted (秘密 or
   控制), so that a reader's queries go through the visibility filter; every AIP
   verified on the primary, pending on the off-site store. Users ``bench-reader``
   and ``bench-auditor`` get tokens.
2. ``preservation serve`` (uvicorn) starts on a free loopback port in its own process.
3. For each kind of request, a bounded loop: ``--requests`` requests (the dashboard
   overview a tenth as many) issued by ``--concurrency`` clients at once (httpx,
   asyncio, keep-alive), none started after the count is reached:

   - ``search``: ``GET /api/aips`` with a text query, a fonds and year, or a title
     word (reader token: public records only), 20 per page;
   - ``detail``: ``GET /api/aips/{id}`` of a random public AIP (reader token);
   - ``detail (staff)``: the same of any AIP with the auditor's token (restricted
     ones included: each such read is written to the access log);
   - ``overview``: the dashboard's overview page (auditor), every figure recomputed
     over the 10,000 AIPs.

Printed per kind: requests, errors, requests/s, and p50, p90, p99 and max latency
(ms, measured in the client from send to the last byte). The server shares the
machine with the clients, so the figures are of the whole loop on one host.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from preservation.access.auth import add_user  # noqa: E402
from preservation.catalog.record import record_ingest  # noqa: E402
from preservation.model import FileEntry, FormatInfo, new_uuid  # noqa: E402
from preservation.repository import Repository, init_repository  # noqa: E402

FONDS = [f"Z{n:03d}" for n in range(100, 140)]
CREATORS = ["办公室", "档案馆", "财务处", "人事处", "城建局", "教育局", "卫生局", "统计局"]
SUBJECTS = ["通知", "报告", "会议纪要", "批复", "规划", "合同", "年度总结", "请示"]
FORMATS = [
    ("fmt/353", "image/tiff", "Tagged Image File Format", "tif"),
    ("fmt/95", "application/pdf", "PDF/A-1a", "pdf"),
    ("x-fmt/111", "text/plain", "Plain Text File", "txt"),
    ("fmt/412", "application/vnd.openxmlformats", "Microsoft Word for Windows", "docx"),
]
COMMIT_EVERY = 500


@dataclass
class Dataset:
    repo: Repository
    public: list[str]
    everything: list[str]
    tokens: dict[str, str]
    seconds: float


def _digest(text: str) -> dict[str, str]:
    data = text.encode()
    return {"sha256": hashlib.sha256(data).hexdigest(), "sha512": hashlib.sha512(data).hexdigest()}


def build(root: Path, aips: int, seed: int = 7) -> Dataset:
    """A repository with ``aips`` AIPs recorded through the catalogue functions."""
    rng = random.Random(seed)
    started = time.perf_counter()
    repo = init_repository(root / "repo", organization="Bench Archive")
    primary = repo.config.primary_store_name
    replicas = [n for n, s in repo.config.settings.stores.items() if s.role == "replica"]
    public: list[str] = []
    everything: list[str] = []
    session_cm = repo.catalog.session()
    s = session_cm.__enter__()
    try:
        for i in range(aips):
            aip_id = new_uuid()
            fonds = rng.choice(FONDS)
            year = rng.randint(1990, 2025)
            restricted = i % 5 == 4
            level, status = ("秘密", "控制") if restricted else ("公开", "开放")
            code = f"{fonds}-WS·{year}-Y-BGS-{i % 10000:04d}"
            title = f"关于{rng.choice(SUBJECTS)}第{i}号的{rng.choice(SUBJECTS)}"
            entries = []
            for n in range(3):
                puid, mime, name, ext = rng.choice(FORMATS)
                entries.append(
                    FileEntry(
                        path=f"{code}/{code}-{n + 1:04d}.{ext}",
                        size=rng.randint(10_000, 5_000_000),
                        digests=_digest(f"{aip_id}/{n}"),
                        format=FormatInfo(
                            puid=puid, mime=mime, name=name, version="", basis="bench"
                        ),
                    )
                )
            descriptive = {
                "reference_code": code,
                "title": title,
                "fonds": fonds,
                "year": str(year),
                "creator": rng.choice(CREATORS),
                "date": f"{year}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
                "security_level": level,
                "open_status": status,
                "retention": "永久",
            }
            record_ingest(
                s,
                aip_id=aip_id,
                job_id=None,
                reference_code=code,
                transfer_name=f"transfer-{i}",
                descriptive=descriptive,
                payload_key=hashlib.sha256(aip_id.encode()).hexdigest(),
                entries=entries,
                tag_files={
                    "bagit.txt": (_digest(f"{aip_id}/bagit"), 55),
                    "metadata/mets.xml": (_digest(f"{aip_id}/mets"), 20_000),
                },
                primary_store=primary,
                replica_stores=replicas,
            )
            everything.append(aip_id)
            if not restricted:
                public.append(aip_id)
            if (i + 1) % COMMIT_EVERY == 0:
                s.commit()
        s.commit()
    finally:
        session_cm.__exit__(None, None, None)
    tokens = {
        "reader": add_user(repo, "bench-reader", "reader")[1],
        "auditor": add_user(repo, "bench-auditor", "auditor")[1],
    }
    return Dataset(repo, public, everything, tokens, time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(repo_root: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("preservation")
    command = [str(exe), "--repo", str(repo_root), "serve", "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}); see {log}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2)
            return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"the server did not answer within 60 s; see {log}")


@dataclass
class Result:
    kind: str
    latencies: list[float] = field(default_factory=list)  # seconds
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    wall: float = 0.0

    def summary(self) -> dict[str, float | int | str]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float:
            if not lat:
                return 0.0
            return lat[min(len(lat) - 1, round(p / 100 * (len(lat) - 1)))] * 1000

        return {
            "kind": self.kind,
            "requests": len(lat) + self.errors,
            "errors": self.errors,
            "rps": round(len(lat) / self.wall, 1) if self.wall else 0.0,
            "p50_ms": round(pct(50), 1),
            "p90_ms": round(pct(90), 1),
            "p99_ms": round(pct(99), 1),
            "max_ms": round(lat[-1] * 1000, 1) if lat else 0.0,
            "mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else 0.0,
        }


async def run_kind(
    base: str,
    kind: str,
    make: Callable[[random.Random], str],
    token: str,
    total: int,
    concurrency: int,
    seed: int,
) -> Result:
    """``total`` requests made by ``concurrency`` clients, none after the count."""
    result = Result(kind)
    rng = random.Random(seed)
    paths = [make(rng) for _ in range(total)]
    next_index = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}

    async with httpx.AsyncClient(
        base_url=base, limits=limits, timeout=60.0, headers=headers
    ) as client:
        # one warm-up request per connection, not counted
        await asyncio.gather(*(client.get(paths[0]) for _ in range(concurrency)))

        async def worker() -> None:
            nonlocal next_index
            while next_index < total:
                path = paths[next_index]
                next_index += 1
                t = time.perf_counter()
                try:
                    r = await client.get(path)
                    await r.aread()
                except httpx.HTTPError:
                    result.errors += 1
                    continue
                elapsed = time.perf_counter() - t
                result.statuses[r.status_code] = result.statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    result.latencies.append(elapsed)
                else:
                    result.errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.wall = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aips", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000, help="per kind of request")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the repository")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.aips < 10 or args.concurrency < 1 or args.requests < 1:
        parser.error("--aips must be at least 10, --concurrency and --requests at least 1")

    work = Path(tempfile.mkdtemp(prefix="bench-api-", dir=args.workdir))
    proc: subprocess.Popen[bytes] | None = None
    try:
        print(f"building {args.aips:,} AIPs in {work} ...", file=sys.stderr)
        data = build(work, args.aips)
        print(f"  built in {data.seconds:.1f} s", file=sys.stderr)
        port = free_port()
        proc = start_server(data.repo.root, port, work / "server.log")
        base = f"http://127.0.0.1:{port}"
        public, everything = data.public, data.everything

        def search(rng: random.Random) -> str:
            choice = rng.randrange(3)
            if choice == 0:
                return f"/api/aips?q={rng.choice(SUBJECTS)}&limit=20"
            if choice == 1:
                return (
                    f"/api/aips?fonds={rng.choice(FONDS)}&year={rng.randint(1990, 2025)}&limit=20"
                )
            return f"/api/aips?title=第{rng.randrange(len(everything))}号&limit=20"

        kinds: list[tuple[str, Callable[[random.Random], str], str, int]] = [
            ("search", search, "reader", args.requests),
            ("detail", lambda rng: f"/api/aips/{rng.choice(public)}", "reader", args.requests),
            ("detail (staff)", lambda rng: f"/api/aips/{rng.choice(everything)}", "auditor",
             args.requests),
            ("overview page", lambda rng: "/dashboard/", "auditor", max(20, args.requests // 10)),
        ]  # fmt: skip
        results = []
        for n, (kind, make, role, total) in enumerate(kinds):
            print(f"  {kind}: {total} requests, {args.concurrency} clients", file=sys.stderr)
            res = asyncio.run(
                run_kind(base, kind, make, data.tokens[role], total, args.concurrency, n)
            )
            results.append(res.summary())
        meta = {
            "aips": args.aips,
            "concurrency": args.concurrency,
            "build_seconds": round(data.seconds, 1),
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
        }
        if args.json:
            print(json.dumps({"meta": meta, "results": results}, ensure_ascii=False, indent=1))
        else:
            print(
                f"{args.aips:,} AIPs, {args.concurrency} concurrent clients, one host"
                f" ({os.cpu_count()} CPUs)"
            )
            print(f"{'kind':<16}{'requests':>9}{'errors':>8}{'req/s':>9}{'p50 ms':>9}"
                  f"{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")  # fmt: skip
            for r in results:
                cells = [r[k] for k in ("requests", "errors", "rps", "p50_ms", "p90_ms",
                                        "p99_ms", "max_ms")]  # fmt: skip
                print(f"{r['kind']:<16}" + "".join(f"{c:>9}" for c in cells))
        return 1 if any(r["errors"] for r in results) else 0
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
