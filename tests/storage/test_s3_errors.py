"""Vendor errors become errors of the preservation tree in one place, and the S3
store retries only the transient ones (botocore Stubber and a closed port)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import boto3
import pytest
import urllib3.exceptions
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
)
from botocore.stub import Stubber

from preservation.config import S3StoreSettings
from preservation.errors import (
    AccessDenied,
    DigestMismatch,
    ObjectExists,
    ObjectNotFound,
    PreservationError,
    StorageError,
    StoreUnavailable,
)
from preservation.storage.s3 import S3Store, full_object_sha256, translate_error, vendor_code
from tests.storage.conftest import free_port


def client_error(code: str, status: int, message: str = "vendor says no") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "HeadObject",
    )


TABLE: list[tuple[str, int, type[PreservationError], bool]] = [
    ("NoSuchKey", 404, ObjectNotFound, False),
    ("404", 404, ObjectNotFound, False),
    ("NotFound", 404, ObjectNotFound, False),
    ("NoSuchVersion", 404, ObjectNotFound, False),
    ("AccessDenied", 403, AccessDenied, False),
    ("403", 403, AccessDenied, False),
    ("InvalidAccessKeyId", 403, AccessDenied, False),
    ("SignatureDoesNotMatch", 403, AccessDenied, False),
    ("SlowDown", 503, StoreUnavailable, True),
    ("ServiceUnavailable", 503, StoreUnavailable, True),
    ("503", 503, StoreUnavailable, True),
    ("InternalError", 500, StoreUnavailable, True),
    ("RequestTimeout", 400, StoreUnavailable, True),
    ("Throttling", 400, StoreUnavailable, True),
    ("ThrottlingException", 400, StoreUnavailable, True),
    ("RequestLimitExceeded", 400, StoreUnavailable, True),
    ("TooManyRequests", 429, StoreUnavailable, True),
    ("OperationAborted", 409, StoreUnavailable, True),
    ("SomethingNew", 502, StoreUnavailable, True),
    ("BadDigest", 400, DigestMismatch, False),
    ("XAmzContentSHA256Mismatch", 400, DigestMismatch, False),
    ("InvalidDigest", 400, DigestMismatch, False),
    ("PreconditionFailed", 412, ObjectExists, False),
]


@pytest.mark.parametrize(("code", "status", "expected", "transient"), TABLE, ids=lambda v: str(v))
def test_client_error_table(
    code: str, status: int, expected: type[PreservationError], transient: bool
) -> None:
    err = translate_error(
        client_error(code, status), store="s3-a", bucket="bkt", key="a/b", op="head_object"
    )
    assert type(err) is expected
    assert err.transient is transient
    assert vendor_code(err) == code


def test_no_such_bucket_is_permanent_and_clear() -> None:
    err = translate_error(
        client_error("NoSuchBucket", 404), store="s3-a", bucket="archive-x", op="list_objects_v2"
    )
    assert type(err) is StorageError
    assert not err.transient
    assert "archive-x" in err.message and "does not exist" in err.message
    # A HEAD on a bucket has no body, so its 404 carries no code: still the bucket.
    err = translate_error(client_error("404", 404), store="s", bucket="b", op="head_bucket")
    assert type(err) is StorageError and "does not exist" in err.message


@pytest.mark.parametrize(
    ("code", "status"), [("WeirdVendorThing", 400), ("InvalidObjectState", 403)]
)
def test_unknown_codes_are_permanent_storage_errors_naming_the_code(code: str, status: int) -> None:
    err = translate_error(client_error(code, status), store="s", key="k", op="get_object")
    assert type(err) is StorageError
    assert err.code == "STO000"
    assert not err.transient
    assert code in err.message and "k" in err.message


NON_CLIENT: list[tuple[BaseException, type[PreservationError], bool]] = [
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), StoreUnavailable, True),
    (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), StoreUnavailable, True),
    (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), StoreUnavailable, True),
    (ConnectionClosedError(endpoint_url="http://127.0.0.1:1"), StoreUnavailable, True),
    (ResponseStreamingError(error="reset"), StoreUnavailable, True),
    (IncompleteReadError(actual_bytes=1, expected_bytes=2), StoreUnavailable, True),
    (urllib3.exceptions.ProtocolError("connection broken"), StoreUnavailable, True),
    (NoCredentialsError(), AccessDenied, False),
    (SSLError(endpoint_url="https://127.0.0.1:1", error="bad cert"), StorageError, False),
    (ParamValidationError(report="Bucket is required"), StorageError, False),
]


@pytest.mark.parametrize(
    ("exc", "expected", "transient"), NON_CLIENT, ids=lambda v: type(v).__name__
)
def test_transport_errors(
    exc: BaseException, expected: type[PreservationError], transient: bool
) -> None:
    err = translate_error(exc, store="s", key="k", op="get_object")
    assert type(err) is expected
    assert err.transient is transient


def test_full_object_sha256_never_reports_composite_checksums() -> None:
    digest = hashlib.sha256(b"x").digest()
    b64 = base64.b64encode(digest).decode()
    assert full_object_sha256({"ChecksumSHA256": b64, "ETag": '"abc"'}) == digest.hex()
    assert (
        full_object_sha256({"ChecksumSHA256": b64, "ChecksumType": "FULL_OBJECT"}) == digest.hex()
    )
    assert full_object_sha256({"ChecksumSHA256": b64 + "-3", "ETag": '"abc-3"'}) is None
    assert full_object_sha256({"ChecksumSHA256": b64, "ChecksumType": "COMPOSITE"}) is None
    # moto: composite value without the -N suffix, but the ETag shows the parts
    assert full_object_sha256({"ChecksumSHA256": b64, "ETag": '"abc-2"'}) is None
    assert full_object_sha256({"ChecksumSHA256": "not base64!"}) is None
    assert full_object_sha256({}) is None


# -- the store's retries, with a stubbed client ------------------------------------


def stubbed_store(max_attempts: int = 4) -> tuple[S3Store, Stubber, list[float]]:
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
        config=BotoConfig(retries={"total_max_attempts": 1}),
    )
    settings = S3StoreSettings(
        type="s3", site="x", bucket="bkt", prefix="pre", max_attempts=max_attempts
    )
    sleeps: list[float] = []
    store = S3Store(
        "stubbed",
        settings,
        client=client,
        sleep=sleeps.append,
        retry_base_delay=0.1,
        retry_max_delay=0.4,
    )
    return store, Stubber(client), sleeps


HEAD_OK: dict[str, Any] = {
    "ContentLength": 5,
    "ETag": '"5d41402abc4b2a76b9719d911017c592"',
    "Metadata": {"sha256": hashlib.sha256(b"hello").hexdigest()},
}


def test_transient_errors_are_retried_then_succeed() -> None:
    store, stub, sleeps = stubbed_store()
    stub.add_client_error("head_object", "SlowDown", http_status_code=503)
    stub.add_client_error("head_object", "InternalError", http_status_code=500)
    stub.add_response(
        "head_object", HEAD_OK, {"Bucket": "bkt", "Key": "pre/a/b", "ChecksumMode": "ENABLED"}
    )
    with stub:
        info = store.head("a/b")
    stub.assert_no_pending_responses()
    assert info.size == 5 and info.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert len(sleeps) == 2
    assert sleeps[0] <= 0.1 and sleeps[1] <= 0.2


def test_transient_errors_give_up_after_max_attempts() -> None:
    store, stub, sleeps = stubbed_store(max_attempts=3)
    for _ in range(3):
        stub.add_client_error("get_object", "SlowDown", http_status_code=503)
    with stub, pytest.raises(StoreUnavailable) as info:
        store.open("k")
    stub.assert_no_pending_responses()
    assert len(sleeps) == 2
    assert isinstance(info.value.__cause__, ClientError)  # raised "from" the vendor error


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("AccessDenied", 403, AccessDenied),
        ("NoSuchKey", 404, ObjectNotFound),
        ("WeirdVendorThing", 400, StorageError),
    ],
)
def test_permanent_errors_are_not_retried(
    code: str, status: int, expected: type[PreservationError]
) -> None:
    store, stub, sleeps = stubbed_store()
    stub.add_client_error("get_object", code, http_status_code=status)
    with stub, pytest.raises(expected) as info:
        store.open("k")
    assert type(info.value) is expected
    assert sleeps == []
    if expected is StorageError:
        assert code in str(info.value)


def test_missing_bucket_on_list_is_clear() -> None:
    store, stub, _ = stubbed_store()
    stub.add_client_error("list_objects_v2", "NoSuchBucket", http_status_code=404)
    with stub, pytest.raises(StorageError, match="bucket 'bkt' does not exist"):
        list(store.list())


def test_unreachable_endpoint_is_transient_and_retried() -> None:
    port = free_port()  # nothing listens there once the probe socket is closed
    settings = S3StoreSettings(
        type="s3",
        site="x",
        bucket="bkt",
        endpoint_url=f"http://127.0.0.1:{port}",
        region="us-east-1",
        max_attempts=2,
        connect_timeout=1,
        read_timeout=1,
    )
    sleeps: list[float] = []
    client = boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
        config=BotoConfig(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=1),
    )
    store = S3Store("down", settings, client=client, sleep=sleeps.append)
    with pytest.raises(StoreUnavailable) as info:
        store.head("k")
    assert info.value.transient
    assert len(sleeps) == 1
