"""Object Lock and versioning on S3 stores (moto and SeaweedFS): every put sets the
configured retention, a locked object cannot be deleted or moved, and delete on a
versioned bucket removes every version of the key."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from preservation.errors import RetentionLocked
from preservation.storage.s3 import S3Store
from tests.storage.conftest import ACCESS_ENV, SECRET_ENV, Backend, S3Endpoint
from tests.storage.streams import pattern

MiB = 1024 * 1024


def versions(store: S3Store, key: str) -> list[str]:
    full = f"{store.prefix}/{key}"
    resp = store.client.list_object_versions(Bucket=store.bucket, Prefix=full)
    return [
        v["VersionId"]
        for v in [*resp.get("Versions", []), *resp.get("DeleteMarkers", [])]
        if v["Key"] == full
    ]


def test_object_lock_put_sets_retention_and_delete_is_refused(s3_backend: Backend) -> None:
    assert s3_backend.endpoint is not None
    bucket = s3_backend.endpoint.make_bucket(f"lock-{uuid.uuid4().hex[:10]}", object_lock=True)
    store = s3_backend.store(
        bucket=bucket,
        object_lock_mode="GOVERNANCE",
        object_lock_days=1,
        **{"multipart_threshold": 5 * MiB, "part_size": 5 * MiB},
    )
    assert isinstance(store, S3Store)
    before = datetime.now(UTC)
    store.put("locked/small", io.BytesIO(b"kept for a day"))
    store.put("locked/large", pattern(11 * MiB))
    for key in ("locked/small", "locked/large"):
        raw = store.client.head_object(Bucket=bucket, Key=f"{store.prefix}/{key}")
        assert raw["ObjectLockMode"] == "GOVERNANCE"
        until = raw["ObjectLockRetainUntilDate"]
        assert before + timedelta(days=1) - timedelta(minutes=5) < until
        assert until < datetime.now(UTC) + timedelta(days=1, minutes=5)

        with pytest.raises(RetentionLocked) as info:
            store.delete(key)
        assert info.value.code == "STO007"
        assert key in info.value.message
        assert store.exists(key)
        with pytest.raises(RetentionLocked):
            store.move(key, "moved/elsewhere")
    assert not store.exists("moved/elsewhere")

    caps = store.capabilities()
    assert caps.object_lock is True
    assert caps.versioning is True
    assert (caps.object_lock_mode, caps.object_lock_days) == ("GOVERNANCE", 1)
    result = store.probe()  # the probe object is written without retention, then removed
    assert result.ok, result.problems
    leftovers = store.client.list_object_versions(Bucket=bucket, Prefix=f"{store.prefix}/.probe/")
    assert not leftovers.get("Versions") and not leftovers.get("DeleteMarkers")


def test_delete_on_a_versioned_bucket_removes_every_version(s3_backend: Backend) -> None:
    assert s3_backend.endpoint is not None
    bucket = s3_backend.endpoint.make_bucket(f"ver-{uuid.uuid4().hex[:10]}")
    s3_backend.endpoint.client().put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    store = s3_backend.store(bucket=bucket)
    assert isinstance(store, S3Store)
    store.put("doc", io.BytesIO(b"one"))
    store.put("doc", io.BytesIO(b"two"), overwrite=True)
    store.put("doc-other", io.BytesIO(b"neighbour"))
    assert len(versions(store, "doc")) == 2
    store.delete("doc")
    assert versions(store, "doc") == []
    assert not store.exists("doc")
    assert store.exists("doc-other")  # same prefix, different key: untouched
    store.move("doc-other", "renamed")
    assert versions(store, "doc-other") == []
    assert store.capabilities().versioning is True


def test_storage_class_and_encryption_headers_are_sent(
    moto_endpoint: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto only: SeaweedFS answers SSE requests with 500 unless a KEK is configured."""
    monkeypatch.setenv(ACCESS_ENV, moto_endpoint.access_key)
    monkeypatch.setenv(SECRET_ENV, moto_endpoint.secret_key)
    store = Backend("moto", tmp_path, moto_endpoint).store(
        sse="AES256", storage_class="STANDARD_IA"
    )
    assert isinstance(store, S3Store)
    store.put("enc", io.BytesIO(b"secret"))
    raw = store.client.head_object(Bucket=store.bucket, Key=f"{store.prefix}/enc")
    assert raw["ServerSideEncryption"] == "AES256"
    assert raw["StorageClass"] == "STANDARD_IA"
    assert store.head("enc").storage_class == "STANDARD_IA"
    caps = store.capabilities()
    assert (caps.encryption, caps.storage_class) == ("AES256", "STANDARD_IA")
    store.delete("enc")
