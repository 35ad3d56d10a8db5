"""Backends for the storage contract suite: a local folder, moto's S3 server and a
real SeaweedFS server, each behind the same :class:`Backend` helper."""

from __future__ import annotations

import http.client
import socket
import threading
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from botocore.config import Config as BotoConfig

from preservation.config import S3StoreSettings
from preservation.storage.base import Store
from preservation.storage.local import LocalStore
from preservation.storage.s3 import S3Store
from tests.support.seaweedfs import SeaweedFS

ACCESS_ENV = "TEST_STORE_ACCESS_KEY"
SECRET_ENV = "TEST_STORE_SECRET_KEY"
MOTO_KEY, MOTO_SECRET = "testing", "testing"
SEAWEED_SERVER = pytest.StashKey[SeaweedFS]()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def raw_client(endpoint_url: str, access_key: str, secret_key: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=BotoConfig(
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 3, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=32,
        ),
    )


@dataclass
class S3Endpoint:
    kind: str
    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str  # shared by the session; every store gets its own prefix
    seaweedfs: SeaweedFS | None = None

    def client(self) -> Any:
        return raw_client(self.endpoint_url, self.access_key, self.secret_key)

    def make_bucket(self, name: str, object_lock: bool = False) -> str:
        args: dict[str, Any] = {"Bucket": name}
        if object_lock:
            args["ObjectLockEnabledForBucket"] = True
        self.client().create_bucket(**args)
        return name


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[S3Endpoint]:
    """moto's S3 server in a thread, on a free loopback port."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = S3Endpoint("moto", f"http://127.0.0.1:{port}", MOTO_KEY, MOTO_SECRET, "contract")
    endpoint.make_bucket(endpoint.bucket)
    yield endpoint
    server.stop()


@pytest.fixture(scope="session")
def seaweed_endpoint(seaweedfs: SeaweedFS) -> S3Endpoint:
    endpoint = S3Endpoint(
        "seaweedfs",
        seaweedfs.endpoint_url,
        seaweedfs.access_key,
        seaweedfs.secret_key,
        "contract",
        seaweedfs,
    )
    seaweedfs.make_bucket(endpoint.bucket)
    return endpoint


@dataclass
class Backend:
    """Makes stores of one kind and looks behind them (raw keys, pending uploads)."""

    kind: str
    tmp: Path
    endpoint: S3Endpoint | None = None
    stores: list[Store] = field(default_factory=list)

    @property
    def is_s3(self) -> bool:
        return self.endpoint is not None

    def store(self, *, bucket: str | None = None, **settings: Any) -> Store:
        """A fresh, empty store (its own folder or its own prefix)."""
        options: dict[str, Any] = {}
        for name in ("verify_mode", "page_size"):
            if name in settings:
                options[name] = settings.pop(name)
        if self.endpoint is None:
            store: Store = LocalStore("local", "site-local", self.tmp / f"store-{len(self.stores)}")
        else:
            s3 = S3StoreSettings(
                type="s3",
                site=f"site-{self.kind}",
                bucket=bucket or self.endpoint.bucket,
                prefix=settings.pop("prefix", f"t-{uuid.uuid4().hex[:12]}"),
                endpoint_url=self.endpoint.endpoint_url,
                region="us-east-1",
                addressing_style="path",
                access_key_env=ACCESS_ENV,
                secret_key_env=SECRET_ENV,
                max_attempts=3,
                connect_timeout=5,
                read_timeout=120,
                **settings,
            )
            store = S3Store(self.kind, s3, retry_base_delay=0.05, retry_max_delay=0.5, **options)
        self.stores.append(store)
        return store

    def client(self) -> Any:
        assert self.endpoint is not None
        return self.endpoint.client()

    def raw_keys(self, store: Store) -> list[str]:
        """Every name behind the store, including anything the store would hide."""
        if isinstance(store, LocalStore):
            if not store.root.exists():
                return []
            return sorted(
                p.relative_to(store.root).as_posix()
                for p in store.root.rglob("*")
                if not p.is_dir()
            )
        assert isinstance(store, S3Store)
        keys: list[str] = []
        pages = self.client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=store.bucket, Prefix=store.prefix + "/"):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return keys

    def pending_uploads(self, store: Store) -> list[str]:
        if not isinstance(store, S3Store):
            return []
        resp = self.client().list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix + "/")
        return [u["Key"] for u in resp.get("Uploads", [])]

    def bulk_put(self, store: Store, keys: Iterable[str], body: bytes = b"") -> None:
        """Create many small objects quickly, behind the store's back: straight into
        moto's in-process backend, through SeaweedFS's filer HTTP API (both about a
        second for 10,000 keys, where boto3 needs ~2 ms of CPU per request), or as
        plain files. The tests that use it are about reading, not writing."""
        names = list(keys)
        if isinstance(store, LocalStore):
            for key in names:
                path = store.root.joinpath(*key.split("/"))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
            return
        assert isinstance(store, S3Store) and self.endpoint is not None
        full = [f"{store.prefix}/{key}" for key in names]
        if self.kind == "moto":
            from moto.core.models import DEFAULT_ACCOUNT_ID
            from moto.s3.models import s3_backends

            backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
            for key in full:
                backend.put_object(store.bucket, key, body)
            return
        assert self.endpoint.seaweedfs is not None
        filer_port = self.endpoint.seaweedfs.ports["filer"]
        local = threading.local()

        def put(key: str) -> None:
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection("127.0.0.1", filer_port, timeout=30)
            conn.request("PUT", "/buckets/" + quote(f"{store.bucket}/{key}"), body=body)
            resp = conn.getresponse()
            resp.read()
            assert resp.status < 300, f"filer PUT {key}: HTTP {resp.status}"

        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in pool.map(put, full):
                pass

    def cleanup(self) -> None:
        """Empty the prefixes this test used (behind the stores' backs, for speed)."""
        if self.endpoint is None:
            return
        client = self.client()
        for store in self.stores:
            if not isinstance(store, S3Store) or store.bucket != self.endpoint.bucket:
                continue
            prefix = store.prefix + "/"
            uploads = client.list_multipart_uploads(Bucket=store.bucket, Prefix=prefix)
            for upload in uploads.get("Uploads", []):
                client.abort_multipart_upload(
                    Bucket=store.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
            if self.kind == "moto":
                from moto.core.models import DEFAULT_ACCOUNT_ID
                from moto.s3.models import s3_backends

                backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
                bucket = backend.get_bucket(store.bucket)
                for key in [k for k in bucket.keys if k.startswith(prefix)]:
                    backend.delete_object(store.bucket, key)
            else:
                assert self.endpoint.seaweedfs is not None
                conn = http.client.HTTPConnection(
                    "127.0.0.1", self.endpoint.seaweedfs.ports["filer"], timeout=60
                )
                path = quote(f"/buckets/{store.bucket}/{store.prefix}")
                conn.request("DELETE", f"{path}?recursive=true&ignoreRecursiveError=true")
                conn.getresponse().read()
                conn.close()


BACKENDS = [
    pytest.param("local", id="local"),
    pytest.param("moto", id="moto"),
    pytest.param("seaweedfs", id="seaweedfs", marks=pytest.mark.seaweedfs),
]
S3_BACKENDS = BACKENDS[1:]


def _make_backend(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Backend:
    endpoint: S3Endpoint | None = None
    if kind == "moto":
        endpoint = request.getfixturevalue("moto_endpoint")
    elif kind == "seaweedfs":
        endpoint = request.getfixturevalue("seaweed_endpoint")
        assert endpoint is not None and endpoint.seaweedfs is not None
        request.node.stash[SEAWEED_SERVER] = endpoint.seaweedfs
    if endpoint is not None:
        monkeypatch.setenv(ACCESS_ENV, endpoint.access_key)
        monkeypatch.setenv(SECRET_ENV, endpoint.secret_key)
    return Backend(kind, tmp_path, endpoint)


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    """Each store kind in turn: local folder, moto, SeaweedFS."""
    b = _make_backend(request.param, request, tmp_path, monkeypatch)
    yield b
    b.cleanup()


@pytest.fixture(params=S3_BACKENDS)
def s3_backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    """The S3 servers only: moto and SeaweedFS."""
    b = _make_backend(request.param, request, tmp_path, monkeypatch)
    yield b
    b.cleanup()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.store()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the end of the SeaweedFS log to the report of a failed SeaweedFS test."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    server = item.stash.get(SEAWEED_SERVER, None)
    if report.failed and server is not None:
        report.sections.append(("SeaweedFS log (last lines)", server.log_tail(80)))
