"""Fixtures of the replication tests: two real SeaweedFS servers as two sites, and
moto's S3 server (for Object Lock)."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig

from tests.support.seaweedfs import (
    SeaweedFS,
    _command,
    _wait_ready,
    find_weed,
    require_weed,
    start_seaweedfs,
)

SITE_ENV = {
    "a": ("SITE_A_ACCESS_KEY", "SITE_A_SECRET_KEY"),
    "b": ("SITE_B_ACCESS_KEY", "SITE_B_SECRET_KEY"),
}
MOTO_ENV = ("MOTO_ACCESS_KEY", "MOTO_SECRET_KEY")


@dataclass
class Site:
    """One SeaweedFS server standing for one site."""

    label: str
    server: SeaweedFS
    access_env: str
    secret_env: str

    def store(self, bucket: str, role: str = "replica", **extra: Any) -> dict[str, Any]:
        """Store settings (for ``write_repo``) of a bucket on this server."""
        return {
            "type": "s3",
            "bucket": bucket,
            "endpoint_url": self.server.endpoint_url,
            "region": "us-east-1",
            "addressing_style": "path",
            "site": f"site-{self.label}",
            "role": role,
            "access_key_env": self.access_env,
            "secret_key_env": self.secret_env,
            "max_attempts": 2,
            "connect_timeout": 2,
            "read_timeout": 30,
            "multipart_threshold": 5 * 1024 * 1024,
            "part_size": 5 * 1024 * 1024,
            **extra,
        }

    def bucket(self, stem: str) -> str:
        name = f"{stem}-{uuid.uuid4().hex[:10]}"
        self.server.make_bucket(name)
        return name

    def stop(self) -> None:
        """A hard stop (the server vanishes, as in a crash or a network cut)."""
        self.server.stop(timeout=0.5)

    def restart(self) -> None:
        """Start the server again on the same data folder, ports and credentials."""
        weed = find_weed()
        assert weed is not None
        server = self.server
        command = _command(weed, server.workdir, server.ports, server.workdir / "s3.json")
        # A restarted master holds a leader election first; keep it short.
        command.append("-master.electionTimeout=1s")
        with server.log_path.open("ab") as log:
            server.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=server.workdir,
                start_new_session=True,
            )
        _wait_ready(server, 90)


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Site]]:
    """Two SeaweedFS servers, ``a`` and ``b``, with their credentials in the
    environment variables the store settings name."""
    weed = require_weed()
    started: dict[str, Site] = {}
    saved = {v: os.environ.get(v) for pair in SITE_ENV.values() for v in pair}
    try:
        for label in ("a", "b"):
            server = start_seaweedfs(weed, tmp_path_factory.mktemp(f"site-{label}"))
            access, secret = SITE_ENV[label]
            started[label] = Site(label, server, access, secret)
            os.environ[access] = server.access_key
            os.environ[secret] = server.secret_key
        yield started
    finally:
        for site in started.values():
            site.server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class Moto:
    endpoint_url: str

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
            config=BotoConfig(s3={"addressing_style": "path"}),
        )

    def bucket(self, stem: str, object_lock: bool = False) -> str:
        name = f"{stem}-{uuid.uuid4().hex[:10]}"
        args: dict[str, Any] = {"Bucket": name}
        if object_lock:
            args["ObjectLockEnabledForBucket"] = True
        self.client().create_bucket(**args)
        return name

    def store(self, bucket: str, site: str = "site-m", **extra: Any) -> dict[str, Any]:
        return {
            "type": "s3",
            "bucket": bucket,
            "endpoint_url": self.endpoint_url,
            "region": "us-east-1",
            "addressing_style": "path",
            "site": site,
            "role": "replica",
            "access_key_env": MOTO_ENV[0],
            "secret_key_env": MOTO_ENV[1],
            "max_attempts": 2,
            **extra,
        }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    """moto's S3 server in a thread on a loopback port (it supports Object Lock)."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {v: os.environ.get(v) for v in MOTO_ENV}
    os.environ[MOTO_ENV[0]] = "testing"
    os.environ[MOTO_ENV[1]] = "testing"
    try:
        yield Moto(f"http://127.0.0.1:{port}")
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
