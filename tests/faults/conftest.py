"""Fixtures of the fault suite: the fault proxy in front of moto's S3 server (fast) and
in front of a real SeaweedFS server, and S3 stores that talk through it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from preservation.config import S3StoreSettings
from preservation.errors import ObjectNotFound
from preservation.storage.base import Store
from preservation.storage.s3 import S3Store, VerifyMode
from tests.faults.proxy import FaultProxy
from tests.storage.conftest import S3Endpoint, moto_endpoint
from tests.support.seaweedfs import SeaweedFS

__all__ = ["moto_endpoint"]

ACCESS_ENV = "FAULT_TEST_ACCESS_KEY"
SECRET_ENV = "FAULT_TEST_SECRET_KEY"
MIB = 1024 * 1024


@dataclass
class Proxied:
    """A bucket reached through the fault proxy, and directly (to look behind it)."""

    kind: str
    proxy: FaultProxy
    endpoint: S3Endpoint
    bucket: str

    def settings(self, prefix: str | None = None, **extra: Any) -> S3StoreSettings:
        options: dict[str, Any] = {
            "type": "s3",
            "site": f"site-{self.kind}",
            "bucket": self.bucket,
            "prefix": prefix or f"p-{uuid.uuid4().hex[:10]}",
            "endpoint_url": self.proxy.endpoint_url,
            "region": "us-east-1",
            "addressing_style": "path",
            "access_key_env": ACCESS_ENV,
            "secret_key_env": SECRET_ENV,
            "max_attempts": 4,
            "connect_timeout": 2,
            "read_timeout": 10,
            "multipart_threshold": 5 * MIB,
            "part_size": 5 * MIB,
        }
        options.update(extra)
        return S3StoreSettings(**options)

    def store(
        self,
        prefix: str | None = None,
        *,
        verify_mode: VerifyMode = "auto",
        page_size: int = 1000,
        **extra: Any,
    ) -> S3Store:
        return S3Store(
            f"faulty-{self.kind}",
            self.settings(prefix, **extra),
            verify_mode=verify_mode,
            page_size=page_size,
            retry_base_delay=0.01,
            retry_max_delay=0.05,
        )

    def client(self) -> Any:
        return self.endpoint.client()

    def raw(self, store: Store, key: str) -> bytes | None:
        """The object's bytes read directly from the server, or None when absent."""
        assert isinstance(store, S3Store)
        try:
            resp = self.client().get_object(Bucket=self.bucket, Key=f"{store.prefix}/{key}")
        except self.client().exceptions.NoSuchKey:
            return None
        data: bytes = resp["Body"].read()
        return data

    def keys(self, store: Store) -> list[str]:
        assert isinstance(store, S3Store)
        resp = self.client().list_objects_v2(Bucket=self.bucket, Prefix=store.prefix + "/")
        return sorted(o["Key"] for o in resp.get("Contents") or [])

    def uploads(self, store: Store) -> list[str]:
        """Unfinished multipart uploads under the store's prefix."""
        assert isinstance(store, S3Store)
        resp = self.client().list_multipart_uploads(Bucket=self.bucket, Prefix=store.prefix + "/")
        return [u["Key"] for u in resp.get("Uploads") or []]

    def absent(self, store: Store, key: str) -> bool:
        try:
            store.head(key)
        except ObjectNotFound:
            return True
        return False


@pytest.fixture(scope="session")
def faults_seaweed_endpoint(seaweedfs: SeaweedFS) -> S3Endpoint:
    """The session's SeaweedFS server with one bucket of its own (SeaweedFS gives every
    bucket its own volumes, so tests share it and use their own prefixes)."""
    endpoint = S3Endpoint(
        "seaweedfs",
        seaweedfs.endpoint_url,
        seaweedfs.access_key,
        seaweedfs.secret_key,
        f"faults-{uuid.uuid4().hex[:12]}",
        seaweedfs,
    )
    seaweedfs.make_bucket(endpoint.bucket)
    return endpoint


BOTH = pytest.mark.parametrize(
    "proxied", ["moto", pytest.param("seaweedfs", marks=pytest.mark.seaweedfs)], indirect=True
)
"""Runs a test through the proxy in front of moto and in front of SeaweedFS (the default
is moto alone: fast)."""
SEAWEEDFS = pytest.mark.parametrize(
    "proxied", [pytest.param("seaweedfs", marks=pytest.mark.seaweedfs)], indirect=True
)
"""Runs a test through the proxy in front of SeaweedFS only."""


@pytest.fixture
def proxied(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Proxied]:
    """The session's bucket on moto or SeaweedFS with the fault proxy in front of it
    (each store gets its own prefix)."""
    kind = getattr(request, "param", "moto")
    name = "faults_seaweed_endpoint" if kind == "seaweedfs" else "moto_endpoint"
    endpoint: S3Endpoint = request.getfixturevalue(name)
    bucket = endpoint.bucket  # one per session and server
    monkeypatch.setenv(ACCESS_ENV, endpoint.access_key)
    monkeypatch.setenv(SECRET_ENV, endpoint.secret_key)
    proxy = FaultProxy(endpoint.endpoint_url).start()
    try:
        yield Proxied(kind, proxy, endpoint, bucket)
    finally:
        proxy.stop()
