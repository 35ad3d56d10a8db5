"""A store in an S3-compatible bucket (AWS, MinIO, Ceph, SeaweedFS), through boto3.

Keys live under the configured prefix (``<prefix>/<key>``). Every request goes through
:func:`preservation.storage.retry.retry` (botocore's own retries are off) and every
vendor error is translated in one place, :func:`translate_error`.

Writes:

- Up to ``multipart_threshold`` bytes the body is read into memory, hashed, compared
  with the expected digests (a mismatch raises DigestMismatch before anything is sent)
  and sent with ``ChecksumSHA256`` so that the server verifies it too.
- Larger bodies go up as a multipart upload, one part in memory at a time, each part
  with its own ``ChecksumSHA256``; the whole-object digests are computed on the way and
  compared at the end. On a mismatch, any error or an interrupt the upload is aborted
  (or the completed object deleted) so nothing remains.
- Every object records its full-object digests as user metadata (``x-amz-meta-sha256``
  and friends). A multipart upload knows them up front only when the caller gave them;
  otherwise they are recorded as object tags after completion, and :meth:`head` reads
  them back from there.
- ``verify_mode``: ``server`` when the server checks ``ChecksumSHA256`` itself, else
  ``readback`` (every written object is read back and its sha256 compared). ``auto``
  finds out once per store by sending one part with a deliberately wrong checksum
  inside a multipart upload that is then aborted (no object is ever created).

Multipart objects carry a *composite* checksum (a hash of the part hashes); it is never
reported as the object's sha256.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import io
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Literal, TypeVar

import boto3
import urllib3.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ChecksumError,
    ClientError,
    ConnectionError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSLError,
)

from preservation.config import S3StoreSettings
from preservation.errors import (
    AccessDenied,
    ConfigError,
    DigestMismatch,
    ObjectExists,
    ObjectNotFound,
    PreservationError,
    RetentionLocked,
    StorageError,
    StoreUnavailable,
    UsageError,
)
from preservation.hashing import (
    BLOCK_SIZE,
    SUPPORTED,
    MultiHasher,
    check_algorithms,
    verify_digests,
)
from preservation.paths import join_key, validate_key
from preservation.storage.base import (
    DEFAULT_ALGORITHMS,
    Capabilities,
    ObjectInfo,
    ProbeResult,
    Store,
)
from preservation.storage.retry import retry

log = logging.getLogger(__name__)

T = TypeVar("T")
VerifyMode = Literal["auto", "server", "readback"]

PROBE_PREFIX = ".probe/"
MAX_PARTS = 10_000
MAX_PART_SIZE = 512 * 1024 * 1024
COPY_MULTIPART_THRESHOLD = 5 * 1024**3  # CopyObject's limit; larger copies go in parts
COPY_PART_SIZE = 256 * 1024 * 1024
_HEX = re.compile(r"^[0-9a-f]+$")
_HEX_LEN = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}

# -- error translation: the one place ----------------------------------------------

_NOT_FOUND = {"NoSuchKey", "NotFound", "404", "NoSuchVersion"}
_NO_BUCKET = {"NoSuchBucket"}
_DENIED = {
    "AccessDenied",
    "403",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
    "AccountProblem",
    "InvalidToken",
    "ExpiredToken",
    "InvalidSecurity",
}
_TRANSIENT = {
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "InternalServerError",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestLimitExceeded",
    "TooManyRequests",
    "BandwidthLimitExceeded",
    "OperationAborted",
    "500",
    "502",
    "503",
    "504",
}
_TRANSIENT_STATUS = {429, 500, 502, 503, 504}
_DIGEST = {"BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest", "InvalidChecksum"}
_EXISTS = {"PreconditionFailed"}  # we only ever send If-None-Match: *
_NOT_IMPLEMENTED = {"NotImplemented", "501", "MethodNotAllowed", "XNotImplemented"}
_BUCKET_OPS = {"head_bucket", "list_objects_v2", "list_object_versions", "list_multipart_uploads"}


def _vendor(e: ClientError) -> tuple[str, int, str]:
    err = e.response.get("Error") or {}
    status = int((e.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    code = str(err.get("Code") or status or "Unknown")
    return code, status, str(err.get("Message") or "")


def vendor_code(e: PreservationError) -> str | None:
    """The S3 error code a translated error came from, if any."""
    code = e.fields.get("vendor_code")
    return str(code) if code is not None else None


def translate_error(
    e: BaseException,
    *,
    store: str,
    bucket: str | None = None,
    key: str | None = None,
    op: str = "",
) -> PreservationError:
    """Map a botocore/urllib3 error to the preservation error tree.

    Unknown S3 codes become a permanent StorageError that names the vendor code; no
    error is ever dropped.
    """
    if isinstance(e, PreservationError):
        return e
    where = f"{op} {key}" if key else op or "request"
    if isinstance(e, ClientError):
        code, status, message = _vendor(e)
        detail = f"{where}: {code}" + (f" ({message})" if message else "")
        fields: dict[str, Any] = {"vendor_code": code, "status": status}
        if code in _NO_BUCKET or (op in _BUCKET_OPS and (code in _NOT_FOUND or status == 404)):
            return StorageError(
                f"{store}: bucket {bucket!r} does not exist on this endpoint ({detail})", **fields
            )
        if code in _NOT_FOUND:
            return ObjectNotFound(store=store, key=key or "?", **fields)
        if code == "InvalidObjectState":  # AWS sends it with 403
            return StorageError(
                f"{store}: {where}: the object is archived in a cold storage class"
                f" and must be restored first ({code})",
                **fields,
            )
        if code in _DENIED or status == 403:
            return AccessDenied(store=store, reason=detail, **fields)
        if code in _DIGEST:
            return DigestMismatch(
                f"{store}: {where}: the server refused the content: {code}"
                + (f" ({message})" if message else ""),
                path=key or "?",
                **fields,
            )
        if code in _EXISTS or status == 412:
            return ObjectExists(store=store, key=key or "?", **fields)
        if code in _TRANSIENT or status in _TRANSIENT_STATUS:
            return StoreUnavailable(store=store, reason=detail, **fields)
        return StorageError(f"{store}: {detail} [HTTP {status}]", **fields)
    if isinstance(e, FlexibleChecksumError | ChecksumError):
        return DigestMismatch(f"{store}: {where}: checksum of the response differs: {e}", path=key)
    if isinstance(e, NoCredentialsError | PartialCredentialsError):
        return AccessDenied(store=store, reason=f"{where}: {e}")
    if isinstance(e, SSLError):
        return StorageError(f"{store}: {where}: TLS failure: {e}")
    if isinstance(e, ConnectionError | HTTPClientError | IncompleteReadError):
        return StoreUnavailable(store=store, reason=f"{where}: {e}")
    if isinstance(e, urllib3.exceptions.HTTPError | OSError):
        return StoreUnavailable(store=store, reason=f"{where}: {type(e).__name__}: {e}")
    if isinstance(e, BotoCoreError):
        return StorageError(f"{store}: {where}: {type(e).__name__}: {e}")
    return StorageError(f"{store}: {where}: {type(e).__name__}: {e}")


_VENDOR_ERRORS = (ClientError, BotoCoreError, urllib3.exceptions.HTTPError)

# -- client construction ------------------------------------------------------------


def _session(name: str, settings: S3StoreSettings) -> boto3.session.Session:
    if settings.access_key_env or settings.secret_key_env:
        if not (settings.access_key_env and settings.secret_key_env):
            raise ConfigError(
                f"stores.{name}: access_key_env and secret_key_env must be given together"
            )
        missing = [
            v for v in (settings.access_key_env, settings.secret_key_env) if not os.environ.get(v)
        ]
        if missing:
            raise ConfigError(
                f"stores.{name}: environment variable(s) {', '.join(missing)} not set"
                " (they hold this store's credentials)"
            )
        return boto3.session.Session(
            aws_access_key_id=os.environ[settings.access_key_env],
            aws_secret_access_key=os.environ[settings.secret_key_env],
            profile_name=settings.profile,
        )
    try:
        return boto3.session.Session(profile_name=settings.profile)
    except ProfileNotFound as e:
        raise ConfigError(f"stores.{name}: AWS profile {settings.profile!r} not found") from e


def make_client(name: str, settings: S3StoreSettings) -> Any:
    """A boto3 S3 client for the store: botocore retries off, our timeouts."""
    session = _session(name, settings)
    region = settings.region or session.region_name or "us-east-1"
    config = BotoConfig(
        region_name=region,
        signature_version="s3v4",
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        s3={"addressing_style": settings.addressing_style},
        # We send ChecksumSHA256 ourselves; no automatic CRC trailers that some
        # S3-compatible servers reject.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=32,
        user_agent_extra="preservation",
    )
    return session.client("s3", endpoint_url=settings.endpoint_url, config=config)


# -- helpers ------------------------------------------------------------------------


def _b64(hexdigest: str) -> str:
    return base64.b64encode(bytes.fromhex(hexdigest)).decode("ascii")


def _sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _b64_to_hex(value: str) -> str | None:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def full_object_sha256(response: Mapping[str, Any]) -> str | None:
    """The sha256 of the whole object from a head/get answer, if the server gave one.

    Composite multipart checksums (a hash of the part hashes, shown as ``…=-N`` or with
    ``ChecksumType: COMPOSITE``, or unmarked by servers that copy the multipart ETag
    convention) are not the object's sha256 and give None.
    """
    value = response.get("ChecksumSHA256")
    if not value:
        return None
    kind = response.get("ChecksumType")
    if kind == "COMPOSITE":
        return None
    if kind != "FULL_OBJECT" and ("-" in value or "-" in str(response.get("ETag", ""))):
        return None
    return _b64_to_hex(value)


def _digests_from(mapping: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for alg in SUPPORTED:
        v = str(mapping.get(alg, "")).lower()
        if len(v) == _HEX_LEN[alg] and _HEX.match(v):
            out[alg] = v
    return out


def _utc(value: Any) -> datetime | None:
    return value.astimezone(UTC) if isinstance(value, datetime) else None


def _read_up_to(stream: IO[bytes], n: int, hasher: MultiHasher) -> bytearray:
    """Read up to ``n`` bytes (fewer only at end of stream), hashing every block.

    The bytes are gathered in one growing buffer, so a part costs its own size in
    memory and not twice that.
    """
    buf = bytearray()
    while len(buf) < n:
        block = stream.read(min(BLOCK_SIZE, n - len(buf)))
        if not block:
            break
        hasher.update(block)
        buf += block
    return buf


class _Source:
    """The stream being stored: read once, hashed on the way, with one read-ahead buffer.

    The buffer is handed over (not copied) by :meth:`take`, so no caller keeps a
    second part alive.
    """

    def __init__(self, stream: IO[bytes], hasher: MultiHasher) -> None:
        self._stream = stream
        self.hasher = hasher
        self._ahead: bytearray | None = None

    def read_ahead(self, n: int) -> int:
        self._ahead = _read_up_to(self._stream, n, self.hasher)
        return len(self._ahead)

    def take(self, n: int) -> tuple[bytearray, bool]:
        """The read-ahead buffer if there is one, else up to ``n`` fresh bytes; and
        whether the stream ended."""
        if self._ahead is not None:
            buf, self._ahead = self._ahead, None
            return buf, False
        buf = _read_up_to(self._stream, n, self.hasher)
        return buf, len(buf) < n


class _BodyReader(io.RawIOBase):
    """A raw reader over a botocore StreamingBody that translates read errors."""

    def __init__(self, body: Any, store: str, key: str) -> None:
        super().__init__()
        self._body = body
        self._store = store
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        try:
            data = self._body.read(len(view))
        except (*_VENDOR_ERRORS, OSError) as e:
            raise translate_error(e, store=self._store, key=self._key, op="read") from e
        n = len(data)
        view[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                self._body.close()
            finally:
                super().close()


class S3Store(Store):
    """Objects in one bucket, under one prefix.

    ``list`` yields objects in the server's listing order: UTF-8 byte order on AWS S3
    and moto. SeaweedFS 4.x lists folder by folder instead, so there a folder ``a/``
    comes before a sibling such as ``a-c`` or ``a.txt``.
    """

    def __init__(
        self,
        name: str,
        settings: S3StoreSettings,
        *,
        client: Any = None,
        verify_mode: VerifyMode = "auto",
        page_size: int = 1000,
        retry_base_delay: float = 0.2,
        retry_max_delay: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if verify_mode not in ("auto", "server", "readback"):
            raise UsageError(f"verify_mode must be auto, server or readback (got {verify_mode!r})")
        if not 1 <= page_size <= 1000:
            raise UsageError(f"page_size must be between 1 and 1000 (got {page_size})")
        self.name = name
        self.site = settings.site
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix.strip("/")
        self.client = client if client is not None else make_client(name, settings)
        self.page_size = page_size
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self._sleep = sleep
        self._server_checksum: bool | None = {"server": True, "readback": False}.get(verify_mode)
        self._versioning: bool | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = self.settings.endpoint_url or "aws"
        return (
            f"S3Store({self.name!r}, bucket={self.bucket!r}, prefix={self.prefix!r},"
            f" endpoint={where!r})"
        )

    # -- plumbing ----------------------------------------------------------------

    def _full(self, key: str) -> str:
        validate_key(key)
        return join_key(self.prefix, key) if self.prefix else key

    def _full_prefix(self, prefix: str) -> str:
        if prefix:
            validate_key(prefix.rstrip("/"))
        return f"{self.prefix}/{prefix}" if self.prefix else prefix

    def _rel(self, full: str) -> str | None:
        if not self.prefix:
            return full
        lead = self.prefix + "/"
        return full[len(lead) :] if full.startswith(lead) else None

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        def on_retry(attempt: int, err: PreservationError, delay: float) -> None:
            log.warning(
                "%s: %s failed (attempt %d of %d): %s; retrying in %.2fs",
                self.name,
                what,
                attempt,
                self.settings.max_attempts,
                err,
                delay,
            )

        return retry(
            fn,
            attempts=self.settings.max_attempts,
            base_delay=self.retry_base_delay,
            max_delay=self.retry_max_delay,
            on_retry=on_retry,
            sleep=self._sleep,
        )

    def _call(self, op: str, key: str | None = None, **kwargs: Any) -> Any:
        """One S3 request, translated and retried (its body must be in memory)."""
        method = getattr(self.client, op)

        def attempt() -> Any:
            try:
                return method(**kwargs)
            except _VENDOR_ERRORS as e:
                raise translate_error(e, store=self.name, bucket=self.bucket, key=key, op=op) from e

        return self._retry(attempt, f"{op} {key}" if key else op)

    def _write_args(self, *, retention: bool = True) -> dict[str, Any]:
        s = self.settings
        args: dict[str, Any] = {}
        if s.storage_class:
            args["StorageClass"] = s.storage_class
        if s.sse:
            args["ServerSideEncryption"] = s.sse
            if s.sse == "aws:kms" and s.sse_kms_key_id:
                args["SSEKMSKeyId"] = s.sse_kms_key_id
        if retention and s.object_lock_mode and s.object_lock_days:
            args["ObjectLockMode"] = s.object_lock_mode
            args["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(
                days=s.object_lock_days
            )
        return args

    def _head_raw(self, key: str, full: str, version: str | None = None) -> Any:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": full, "ChecksumMode": "ENABLED"}
        if version:
            args["VersionId"] = version
        return self._call("head_object", key, **args)

    def _exists(self, key: str, full: str) -> bool:
        try:
            self._head_raw(key, full)
        except ObjectNotFound:
            return False
        return True

    # -- verification ------------------------------------------------------------

    @property
    def verify_mode(self) -> Literal["server", "readback"]:
        """How writes are verified: by the server's checksum check or by reading back.

        With ``verify_mode="auto"`` this is found out on first use (one multipart
        upload with a deliberately wrong part checksum, then aborted)."""
        return "server" if self._uses_server_checksum() else "readback"

    def _uses_server_checksum(self) -> bool:
        if self._server_checksum is None:
            with self._lock:
                if self._server_checksum is None:
                    self._server_checksum = self._detect_server_checksum()
                    log.info(
                        "%s: write verification by %s",
                        self.name,
                        "server checksum" if self._server_checksum else "read-back",
                    )
        return self._server_checksum

    def _detect_server_checksum(self) -> bool:
        """Send one part with a wrong ChecksumSHA256 in an upload that is then aborted."""
        key = f"{PROBE_PREFIX}checksum-{uuid.uuid4().hex}"
        full = self._full(key)
        created = self._call(
            "create_multipart_upload", key, Bucket=self.bucket, Key=full, ChecksumAlgorithm="SHA256"
        )
        upload_id = created["UploadId"]
        try:
            self._call(
                "upload_part",
                key,
                Bucket=self.bucket,
                Key=full,
                UploadId=upload_id,
                PartNumber=1,
                Body=b"preservation checksum probe",
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_sha256_b64(b"not the body that was sent"),
            )
        except DigestMismatch:
            return True
        finally:
            self._abort(key, full, upload_id)
        return False

    def _hash_object(
        self, key: str, full: str, version: str | None, etag: str | None
    ) -> str | None:
        """The sha256 of what is stored, or None when another writer has replaced the
        object meanwhile (its ETag no longer matches the one our write got)."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
        if version and version != "null":
            args["VersionId"] = version
        elif etag:
            args["IfMatch"] = etag

        def attempt() -> str | None:
            try:
                body = self.client.get_object(**args)["Body"]
            except _VENDOR_ERRORS as e:
                err = translate_error(
                    e, store=self.name, bucket=self.bucket, key=key, op="get_object"
                )
                if isinstance(err, ObjectExists):  # 412: If-Match failed
                    return None
                raise err from e
            h = hashlib.sha256()
            with io.BufferedReader(_BodyReader(body, self.name, key), BLOCK_SIZE) as r:
                while block := r.read(BLOCK_SIZE):
                    h.update(block)
            return h.hexdigest()

        return self._retry(attempt, f"read back {key}")

    def _after_write(
        self,
        key: str,
        full: str,
        found: Mapping[str, str],
        version: str | None,
        etag: str | None,
    ) -> None:
        """Read back when the server does not check checksums itself."""
        if self._uses_server_checksum():
            return
        got = self._hash_object(key, full, version, etag)
        if got is None:
            # Replaced by a concurrent overwrite: ours is gone, the newer one is not
            # ours to judge (and must not be discarded).
            log.warning("%s: %s was overwritten while being read back", self.name, key)
            return
        if got != found["sha256"]:
            raise DigestMismatch(
                path=f"{self.name}:{key} (read back)",
                algorithm="sha256",
                expected=found["sha256"],
                found=got,
            )

    def _discard(self, key: str, full: str, version: str | None) -> None:
        """Remove an object this put created (best effort; the original error wins)."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
        if version and version != "null":
            args["VersionId"] = version
        try:
            self._call("delete_object", key, **args)
        except PreservationError as e:
            log.error("%s: could not remove failed upload %s: %s", self.name, key, e)

    def _abort(self, key: str, full: str, upload_id: str) -> None:
        try:
            self._call(
                "abort_multipart_upload", key, Bucket=self.bucket, Key=full, UploadId=upload_id
            )
        except PreservationError as e:
            log.error(
                "%s: could not abort multipart upload %s of %s: %s", self.name, upload_id, key, e
            )

    # -- the interface -------------------------------------------------------------

    def put(
        self,
        key: str,
        stream: IO[bytes],
        *,
        digests: Mapping[str, str] | None = None,
        algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS,
        size: int | None = None,
        overwrite: bool = False,
        sync: bool = True,  # S3 writes are durable when acknowledged
    ) -> ObjectInfo:
        return self._put(
            key, stream, digests=digests, algorithms=algorithms, size=size, overwrite=overwrite
        )

    def _put(
        self,
        key: str,
        stream: IO[bytes],
        *,
        digests: Mapping[str, str] | None,
        algorithms: tuple[str, ...],
        size: int | None,
        overwrite: bool,
        retention: bool = True,
    ) -> ObjectInfo:
        full = self._full(key)
        expected = {a.lower(): v.lower() for a, v in (digests or {}).items()}
        algs = check_algorithms(("sha256", *algorithms, *expected))
        if size is not None and size < 0:
            raise UsageError(f"size must not be negative (got {size})")
        if not overwrite and self._exists(key, full):
            raise ObjectExists(store=self.name, key=key)
        source = _Source(stream, MultiHasher(algs))
        threshold = self.settings.multipart_threshold
        if (size is None or size <= threshold) and source.read_ahead(threshold + 1) <= threshold:
            body, _ = source.take(threshold)
            return self._put_single(
                key, full, body, source.hasher, expected, size, overwrite, retention
            )
        return self._put_multipart(key, full, source, expected, size, overwrite, retention)

    def _check_found(
        self, key: str, hasher: MultiHasher, expected: Mapping[str, str], size: int | None
    ) -> dict[str, str]:
        label = f"{self.name}:{key}"
        if size is not None and hasher.size != size:
            raise DigestMismatch(
                path=label, algorithm="size", expected=str(size), found=str(hasher.size)
            )
        found = hasher.hexdigests()
        verify_digests(label, expected, found)
        return found

    def _put_single(
        self,
        key: str,
        full: str,
        body: bytearray,
        hasher: MultiHasher,
        expected: Mapping[str, str],
        size: int | None,
        overwrite: bool,
        retention: bool,
    ) -> ObjectInfo:
        found = self._check_found(key, hasher, expected, size)
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": full,
            "Body": body,
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": _b64(found["sha256"]),
            "Metadata": dict(found),
            **self._write_args(retention=retention),
        }
        if not overwrite:
            args["IfNoneMatch"] = "*"
        try:
            resp = self._call("put_object", key, **args)
        except ObjectExists:
            # An earlier attempt whose answer was lost (reset, timeout) may have stored
            # these very bytes; the If-None-Match retry then meets our own object.
            resp = self._same_object(key, full, found, len(body))
        version = resp.get("VersionId")
        try:
            self._after_write(key, full, found, version, resp.get("ETag"))
        except BaseException:
            self._discard(key, full, version)
            raise
        return ObjectInfo(
            key=key,
            size=len(body),
            digests=found,
            storage_class=self.settings.storage_class,
            version_id=version,
        )

    def _same_object(
        self,
        key: str,
        full: str,
        found: Mapping[str, str],
        size: int,
        composite: str | None = None,
    ) -> Mapping[str, Any]:
        """The head of ``key`` when it holds exactly ``found`` (size and sha256, or for a
        multipart upload whose sha256 the server does not know yet, the ``composite``
        checksum of its parts ``<base64>-<parts>``), else ObjectExists: a conditional
        write refused because of an identical object is a write already done."""
        resp = self._head_raw(key, full)
        info = self._info(key, full, resp)
        same = info.sha256 == found["sha256"] or (
            info.sha256 is None
            and composite is not None
            and resp.get("ChecksumSHA256") == composite
        )
        if info.size != size or not same:
            raise ObjectExists(store=self.name, key=key)
        log.warning("%s: %s was already stored by an earlier attempt", self.name, key)
        return {"VersionId": resp.get("VersionId"), "ETag": resp.get("ETag")}

    def _part_size(self, part_number: int, size: int | None) -> int:
        base = self.settings.part_size
        if size is not None:
            needed = -(-size // (MAX_PARTS - 1))
            return max(base, min(MAX_PART_SIZE, -(-needed // BLOCK_SIZE) * BLOCK_SIZE))
        # Unknown size: grow the parts every 2,000 so that ~1 TB still fits.
        return min(MAX_PART_SIZE, base << ((part_number - 1) // 2000))

    def _put_multipart(
        self,
        key: str,
        full: str,
        source: _Source,
        expected: Mapping[str, str],
        size: int | None,
        overwrite: bool,
        retention: bool,
    ) -> ObjectInfo:
        known = _digests_from(expected)
        write_args = self._write_args(retention=retention)
        created = self._call(
            "create_multipart_upload",
            key,
            Bucket=self.bucket,
            Key=full,
            ChecksumAlgorithm="SHA256",
            Metadata=known,
            **write_args,
        )
        upload_id: str = created["UploadId"]
        completed = False
        version: str | None = None
        try:
            parts: builtins.list[dict[str, Any]] = []
            part_hashes: builtins.list[bytes] = []
            data: bytearray | None = None
            while True:
                number = len(parts) + 1
                if number > MAX_PARTS:
                    raise StorageError(
                        f"{self.name}: {key}: more than {MAX_PARTS} parts; raise part_size"
                    )
                data, last = source.take(self._part_size(number, size))
                if not data and parts:
                    break
                digest = hashlib.sha256(data).digest()
                checksum = base64.b64encode(digest).decode("ascii")
                resp = self._call(
                    "upload_part",
                    key,
                    Bucket=self.bucket,
                    Key=full,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=checksum,
                )
                data = None
                echoed = resp.get("ChecksumSHA256")
                if echoed and echoed != checksum:
                    raise DigestMismatch(
                        path=f"{self.name}:{key} part {number}",
                        algorithm="sha256",
                        expected=checksum,
                        found=echoed,
                    )
                parts.append(
                    {"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": checksum}
                )
                part_hashes.append(digest)
                if last:
                    break
            found = self._check_found(key, source.hasher, expected, size)
            complete: dict[str, Any] = {
                "Bucket": self.bucket,
                "Key": full,
                "UploadId": upload_id,
                "MultipartUpload": {"Parts": parts},
            }
            if not overwrite:
                complete["IfNoneMatch"] = "*"
            try:
                resp = self._call("complete_multipart_upload", key, **complete)
            except ObjectExists:
                # The answer to an earlier attempt was lost; SeaweedFS refuses the
                # repeated completion with 412 (AWS and moto answer it again).
                of_parts = base64.b64encode(hashlib.sha256(b"".join(part_hashes)).digest())
                resp = self._same_object(
                    key, full, found, source.hasher.size, f"{of_parts.decode()}-{len(parts)}"
                )
            completed = True
            version = resp.get("VersionId")
            composite = resp.get("ChecksumSHA256")
            if composite and resp.get("ChecksumType") != "FULL_OBJECT":
                ours = base64.b64encode(hashlib.sha256(b"".join(part_hashes)).digest()).decode()
                if composite.split("-", 1)[0] != ours:
                    raise DigestMismatch(
                        path=f"{self.name}:{key} (composite of {len(parts)} parts)",
                        algorithm="sha256",
                        expected=ours,
                        found=composite,
                    )
            if "ObjectLockMode" in write_args:
                self._ensure_retention(key, full, version, write_args)
            if "sha256" not in known:
                self._tag_digests(key, full, found, version)
            self._after_write(key, full, found, version, resp.get("ETag"))
        except BaseException:
            if completed:
                self._discard(key, full, version)
            else:
                self._abort(key, full, upload_id)
            raise
        return ObjectInfo(
            key=key,
            size=source.hasher.size,
            digests=found,
            storage_class=self.settings.storage_class,
            version_id=version,
        )

    def _ensure_retention(
        self, key: str, full: str, version: str | None, write_args: Mapping[str, Any]
    ) -> None:
        """Some servers drop Object Lock headers on CreateMultipartUpload: set the
        retention on the completed version when it is missing."""
        resp = self._head_raw(key, full, version if version != "null" else None)
        if resp.get("ObjectLockMode"):
            return
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": full,
            "Retention": {
                "Mode": write_args["ObjectLockMode"],
                "RetainUntilDate": write_args["ObjectLockRetainUntilDate"],
            },
            "ChecksumAlgorithm": "SHA256",
        }
        if version and version != "null":
            args["VersionId"] = version
        self._call("put_object_retention", key, **args)

    def _tag_digests(
        self, key: str, full: str, found: Mapping[str, str], version: str | None
    ) -> None:
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": full,
            "Tagging": {"TagSet": [{"Key": a, "Value": v} for a, v in sorted(found.items())]},
        }
        if version and version != "null":
            args["VersionId"] = version
        self._call("put_object_tagging", key, **args)

    def open(self, key: str) -> io.BufferedReader:
        full = self._full(key)
        resp = self._call("get_object", key, Bucket=self.bucket, Key=full)
        return io.BufferedReader(_BodyReader(resp["Body"], self.name, key), BLOCK_SIZE)

    def head(self, key: str) -> ObjectInfo:
        full = self._full(key)
        resp = self._head_raw(key, full)
        return self._info(key, full, resp)

    def _info(self, key: str, full: str, resp: Mapping[str, Any]) -> ObjectInfo:
        digests = _digests_from(resp.get("Metadata") or {})
        server = full_object_sha256(resp)
        if server:
            if digests.get("sha256", server) != server:
                log.warning(
                    "%s: %s: recorded sha256 %s differs from the server's checksum %s",
                    self.name,
                    key,
                    digests["sha256"],
                    server,
                )
            digests["sha256"] = server
        elif "sha256" not in digests and "-" in str(resp.get("ETag", "")):
            args: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
            if resp.get("VersionId") and resp.get("VersionId") != "null":
                args["VersionId"] = resp["VersionId"]
            tags = self._call("get_object_tagging", key, **args).get("TagSet") or []
            digests.update(_digests_from({t["Key"]: t["Value"] for t in tags}))
        return ObjectInfo(
            key=key,
            size=int(resp.get("ContentLength", 0)),
            digests=digests,
            last_modified=_utc(resp.get("LastModified")),
            storage_class=resp.get("StorageClass") or "STANDARD",
            version_id=resp.get("VersionId"),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self._list(self._full_prefix(prefix))

    def _list(self, full_prefix: str) -> Iterator[ObjectInfo]:
        token: str | None = None
        while True:
            args: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": full_prefix,
                "MaxKeys": self.page_size,
            }
            if token:
                args["ContinuationToken"] = token
            page = self._call("list_objects_v2", None, **args)
            for obj in page.get("Contents") or []:
                rel = self._rel(obj["Key"])
                if rel is None:
                    continue
                try:
                    validate_key(rel)
                except PreservationError:
                    log.warning(
                        "%s: skipping object with an unusable key %r", self.name, obj["Key"]
                    )
                    continue
                yield ObjectInfo(
                    key=rel,
                    size=int(obj.get("Size", 0)),
                    last_modified=_utc(obj.get("LastModified")),
                    storage_class=obj.get("StorageClass"),
                )
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")
            if not token:
                raise StorageError(f"{self.name}: truncated listing without a continuation token")

    def _bucket_versioned(self) -> bool:
        if self._versioning is None:
            try:
                resp = self._call("get_bucket_versioning", None, Bucket=self.bucket)
            except StorageError as e:
                if vendor_code(e) not in _NOT_IMPLEMENTED:
                    raise
                resp = {}
            self._versioning = resp.get("Status") in ("Enabled", "Suspended")
        return self._versioning

    def _check_retention(self, key: str, resp: Mapping[str, Any]) -> None:
        if resp.get("ObjectLockLegalHoldStatus") == "ON":
            raise RetentionLocked(store=self.name, key=key, until="a legal hold is lifted")
        until = resp.get("ObjectLockRetainUntilDate")
        if isinstance(until, datetime) and until > datetime.now(UTC):
            raise RetentionLocked(store=self.name, key=key, until=until.astimezone(UTC).isoformat())

    def _versions_of(self, key: str, full: str) -> builtins.list[str]:
        """Every version id and delete marker of exactly ``full``, newest first."""
        out: builtins.list[str] = []
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
        while True:
            page = self._call("list_object_versions", key, **args)
            entries = [*(page.get("Versions") or []), *(page.get("DeleteMarkers") or [])]
            out.extend(
                v["VersionId"] for v in entries if v.get("Key") == full and v.get("VersionId")
            )
            if not page.get("IsTruncated") or any(v.get("Key", "") > full for v in entries):
                return out
            args["KeyMarker"] = page.get("NextKeyMarker")
            args["VersionIdMarker"] = page.get("NextVersionIdMarker")

    def _delete_version(self, key: str, full: str, version: str) -> None:
        try:
            self._call("delete_object", key, Bucket=self.bucket, Key=full, VersionId=version)
        except AccessDenied as e:
            try:
                resp = self._head_raw(key, full, version)
            except PreservationError:
                raise e from None
            self._check_retention(key, resp)
            raise

    def delete(self, key: str) -> None:
        full = self._full(key)
        resp = self._head_raw(key, full)
        self._check_retention(key, resp)
        if not self._bucket_versioned():
            self._call("delete_object", key, Bucket=self.bucket, Key=full)
            return
        current = resp.get("VersionId")
        versions = self._versions_of(key, full)
        if current and current in versions:
            versions.remove(current)
            versions.insert(0, current)
        for version in versions:
            self._delete_version(key, full, version)

    def move(self, src: str, dst: str) -> ObjectInfo:
        src_full = self._full(src)
        dst_full = self._full(dst)
        resp = self._head_raw(src, src_full)
        self._check_retention(src, resp)  # the source could not be removed afterwards
        if self._exists(dst, dst_full):
            raise ObjectExists(store=self.name, key=dst)
        extra = {"ChecksumAlgorithm": "SHA256", **self._write_args()}
        source: dict[str, Any] = {"Bucket": self.bucket, "Key": src_full}
        if resp.get("VersionId") and resp.get("VersionId") != "null":
            source["VersionId"] = resp["VersionId"]
        config = TransferConfig(
            multipart_threshold=COPY_MULTIPART_THRESHOLD,
            multipart_chunksize=COPY_PART_SIZE,
            max_concurrency=4,
        )

        def attempt() -> None:
            try:
                self.client.copy(source, self.bucket, dst_full, ExtraArgs=extra, Config=config)
            except _VENDOR_ERRORS as e:
                raise translate_error(
                    e, store=self.name, bucket=self.bucket, key=dst, op="copy"
                ) from e

        self._retry(attempt, f"copy {src} to {dst}")
        self.delete(src)
        return self.head(dst)

    # -- capabilities and probe ----------------------------------------------------

    def _optional(self, op: str, absent: set[str], notes: builtins.list[str]) -> tuple[bool, Any]:
        """``(known, answer)``: answer None when the bucket has no such configuration."""
        try:
            return True, self._call(op, None, Bucket=self.bucket)
        except StorageError as e:  # AccessDenied included
            code = vendor_code(e)
            if code in absent:
                return True, None
            if code in _NOT_IMPLEMENTED or isinstance(e, AccessDenied):
                notes.append(f"{op}: not available ({code}: {e.message})")
                return False, None
            raise

    def capabilities(self) -> Capabilities:
        s = self.settings
        notes: builtins.list[str] = []
        versioning: bool | None = None
        known, resp = self._optional("get_bucket_versioning", set(), notes)
        if known:
            status = (resp or {}).get("Status")
            versioning = status == "Enabled"
            if status == "Suspended":
                notes.append("bucket versioning is suspended")
            self._versioning = status in ("Enabled", "Suspended")
        lock: bool | None = None
        lock_mode, lock_days = s.object_lock_mode, s.object_lock_days
        known, resp = self._optional(
            "get_object_lock_configuration", {"ObjectLockConfigurationNotFoundError"}, notes
        )
        if known:
            conf = (resp or {}).get("ObjectLockConfiguration") or {}
            lock = conf.get("ObjectLockEnabled") == "Enabled"
            default = (conf.get("Rule") or {}).get("DefaultRetention") or {}
            if default:
                days = default.get("Days") or (365 * int(default.get("Years", 0))) or None
                notes.append(f"bucket default retention: {default.get('Mode')} {days} days")
                if lock_mode is None:
                    lock_mode, lock_days = default.get("Mode"), days
        encryption: str | None = s.sse
        known, resp = self._optional(
            "get_bucket_encryption", {"ServerSideEncryptionConfigurationNotFoundError"}, notes
        )
        rules = ((resp or {}).get("ServerSideEncryptionConfiguration") or {}).get("Rules") or []
        if rules:
            bucket_sse = (rules[0].get("ApplyServerSideEncryptionByDefault") or {}).get(
                "SSEAlgorithm"
            )
            notes.append(f"bucket default encryption: {bucket_sse}")
            encryption = encryption or bucket_sse
        try:
            server_checksum = self._uses_server_checksum()
            notes.append(
                f"write verification: {'server checksum' if server_checksum else 'read-back'}"
            )
        except PreservationError as e:  # e.g. read-only credentials; put will say so
            server_checksum = False
            notes.append(f"server checksum support unknown ({e.code}: {e.message})")
        if s.endpoint_url:
            notes.append(f"endpoint {s.endpoint_url}")
        return Capabilities(
            kind="s3",
            versioning=versioning,
            object_lock=lock,
            object_lock_mode=lock_mode,
            object_lock_days=lock_days,
            storage_class=s.storage_class or "STANDARD",
            encryption=encryption,
            server_side_checksum=server_checksum,
            notes=tuple(notes),
        )

    def probe(self) -> ProbeResult:
        try:
            self._call("head_bucket", None, Bucket=self.bucket)
        except PreservationError as e:
            return ProbeResult(self.name, False, False, None, [f"{e.code}: {e.message}"])
        problems: builtins.list[str] = []
        caps: Capabilities | None = None
        try:
            caps = self.capabilities()
        except PreservationError as e:
            problems.append(f"{e.code}: {e.message}")
        bucket_retention = caps is not None and any(
            n.startswith("bucket default retention") for n in caps.notes
        )
        try:
            if bucket_retention:
                # A probe object would be locked by the bucket's default retention:
                # prove writability with an upload that is aborted instead.
                self._probe_by_aborted_upload()
            else:
                self._probe_object(problems)
            writable = True
        except PreservationError as e:
            writable = False
            problems.append(f"{e.code}: {e.message}")
        return ProbeResult(self.name, True, writable, caps, problems)

    def _probe_object(self, problems: builtins.list[str]) -> None:
        data = os.urandom(4096)
        key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
        sha = hashlib.sha256(data).hexdigest()
        self._put(
            key,
            io.BytesIO(data),
            digests={"sha256": sha},
            algorithms=DEFAULT_ALGORITHMS,
            size=len(data),
            overwrite=False,
            retention=False,
        )
        try:
            with self.open(key) as f:
                back = f.read(len(data) + 1)
            if back != data:
                problems.append("probe object read back differs from what was written")
        finally:
            self.delete(key)

    def _probe_by_aborted_upload(self) -> None:
        key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
        full = self._full(key)
        created = self._call("create_multipart_upload", key, Bucket=self.bucket, Key=full)
        try:
            self._call(
                "upload_part",
                key,
                Bucket=self.bucket,
                Key=full,
                UploadId=created["UploadId"],
                PartNumber=1,
                Body=b"preservation probe",
            )
        finally:
            self._abort(key, full, created["UploadId"])
