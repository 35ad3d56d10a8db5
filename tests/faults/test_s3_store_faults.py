"""S3 faults at the store interface, through the fault proxy (moto and SeaweedFS).

Every operation either completes correctly after retries, or fails with a clear
transient error (StoreUnavailable, STO003) and leaves no object visible. What an
upload cut off by a dead server leaves (an unfinished multipart upload that cannot be
aborted while the server is down) is cleared by the next replication of the copy
(tests/faults/test_s3_operations.py).
"""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from preservation.errors import DigestMismatch, StoreUnavailable
from preservation.storage.s3 import S3Store
from tests.faults.conftest import BOTH, MIB, SEAWEEDFS, Proxied
from tests.faults.proxy import Rule, is_object_get

SMALL = os.urandom(64 * 1024)
BIG = os.urandom(11 * MIB)  # three parts of 5 MiB


def put(store: S3Store, key: str, data: bytes) -> None:
    store.put(
        key,
        io.BytesIO(data),
        digests={"sha256": hashlib.sha256(data).hexdigest()},
        size=len(data),
    )


def read(store: S3Store, key: str) -> bytes:
    with store.open(key) as f:
        return bytes(f.read())


# ---------------------------------------------------------------- put, single part

RECOVERABLE_PUT = {
    "500 once": Rule("status", method="PUT", status=500, code="InternalError"),
    "503 SlowDown twice": Rule("status", method="PUT", status=503, code="SlowDown", times=2),
    "429 throttled three times": Rule(
        "status", method="PUT", status=429, code="TooManyRequests", times=3
    ),
    "connection reset": Rule("reset", method="PUT"),
    "response lost after the write": Rule("lose", method="PUT"),
    "answer slower than the read timeout": Rule("delay", method="PUT", delay=2.0),
}


@pytest.mark.parametrize("fault", list(RECOVERABLE_PUT), ids=list(RECOVERABLE_PUT))
def test_put_recovers(proxied: Proxied, fault: str) -> None:
    template = RECOVERABLE_PUT[fault]
    # a short read timeout only where the proxy holds the answer back (2 s)
    store = proxied.store(verify_mode="readback", read_timeout=1 if template.delay else 5)
    rule = proxied.proxy.add(
        Rule(
            template.action,
            method="PUT",
            where=lambda r: "/.probe/" not in r.target,
            times=template.times,
            status=template.status,
            code=template.code,
            delay=template.delay,
        )
    )
    put(store, "aip/v1/data/a.bin", SMALL)
    assert rule.fired == (template.times or 1)
    assert proxied.raw(store, "aip/v1/data/a.bin") == SMALL
    assert store.head("aip/v1/data/a.bin").sha256 == hashlib.sha256(SMALL).hexdigest()


@pytest.mark.parametrize(
    "rule",
    [
        Rule("status", method="PUT", status=503, code="SlowDown", times=None),
        Rule("status", method="PUT", status=429, code="TooManyRequests", times=None),
        Rule("reset", method="PUT", times=None),
        Rule("kill", method="PUT"),
    ],
    ids=["SlowDown forever", "throttled forever", "reset forever", "server killed"],
)
def test_put_gives_up_with_a_transient_error_and_leaves_nothing(
    proxied: Proxied, rule: Rule
) -> None:
    store = proxied.store(verify_mode="readback")
    proxied.proxy.add(rule)
    with pytest.raises(StoreUnavailable) as err:
        put(store, "aip/v1/data/a.bin", SMALL)
    assert err.value.transient and err.value.code == "STO003"
    proxied.proxy.clear()  # the server is back
    assert proxied.absent(store, "aip/v1/data/a.bin")
    assert proxied.keys(store) == []


@BOTH
def test_wrong_bytes_on_the_way_in_are_refused(proxied: Proxied) -> None:
    """The proxy flips a byte of the request body: the server's checksum check
    (SeaweedFS) or the read-back (moto stores anything) refuses it; nothing remains."""
    store = proxied.store()
    proxied.proxy.add(
        Rule("corrupt_request", method="PUT", where=lambda r: "/.probe/" not in r.target)
    )
    with pytest.raises(DigestMismatch):
        put(store, "aip/v1/data/a.bin", SMALL)
    assert proxied.keys(store) == []
    assert proxied.uploads(store) == []


# ---------------------------------------------------------------- put, multipart


def test_multipart_put_recovers(proxied: Proxied) -> None:
    """SlowDown on part 2, a reset on part 3, a 500 on the completion: one upload."""
    store = proxied.store(verify_mode="readback")
    rules = [
        proxied.proxy.add(Rule("status", method="PUT", contains="partNumber=2", code="SlowDown")),
        proxied.proxy.add(Rule("reset", method="PUT", contains="partNumber=3")),
        proxied.proxy.add(
            Rule("status", method="POST", contains="uploadId=", status=500, code="InternalError")
        ),
    ]
    put(store, "aip/v1/data/big.bin", BIG)
    assert [r.fired for r in rules] == [1, 1, 1]
    assert proxied.raw(store, "aip/v1/data/big.bin") == BIG
    assert proxied.uploads(store) == []


@SEAWEEDFS
@pytest.mark.parametrize("action", ["status", "kill"])
def test_multipart_put_cut_off_leaves_no_object(proxied: Proxied, action: str) -> None:
    """The server fails for good (or dies) at part 2: a transient error, no object
    visible; a failed upload is aborted, one cut off by a dead server cannot be and is
    left for the next replication of the copy to clear."""
    store = proxied.store(verify_mode="readback")
    if action == "status":
        proxied.proxy.add(
            Rule("status", method="PUT", contains="partNumber=2", status=503, times=None)
        )
    else:
        proxied.proxy.add(Rule("kill", method="PUT", contains="partNumber=2"))
    with pytest.raises(StoreUnavailable):
        put(store, "aip/v1/data/big.bin", BIG)
    proxied.proxy.clear()
    assert proxied.absent(store, "aip/v1/data/big.bin")
    assert proxied.keys(store) == []
    if action == "status":
        assert proxied.uploads(store) == []
    else:
        assert proxied.uploads(store) == [f"{store.prefix}/aip/v1/data/big.bin"]


# ---------------------------------------------------------------- open (download)


@pytest.fixture
def stored(proxied: Proxied) -> S3Store:
    store = proxied.store(verify_mode="readback")
    put(store, "aip/v1/data/a.bin", SMALL)
    proxied.proxy.clear()
    return store


@pytest.mark.parametrize(
    "rule",
    [
        Rule("status", where=is_object_get, status=500, code="InternalError"),
        Rule("status", where=is_object_get, status=503, code="SlowDown", times=3),
        Rule("reset", where=is_object_get),
        Rule("delay", where=is_object_get, delay=2.0),
    ],
    ids=["500", "SlowDown x3", "reset", "timeout"],
)
def test_open_recovers(proxied: Proxied, rule: Rule) -> None:
    store = proxied.store(verify_mode="readback", read_timeout=1 if rule.delay else 5)
    put(store, "aip/v1/data/a.bin", SMALL)
    rule = proxied.proxy.add(rule)
    assert read(store, "aip/v1/data/a.bin") == SMALL
    assert rule.fired == (rule.times or 1)


@pytest.mark.parametrize(
    "rule",
    [
        Rule("truncate", where=is_object_get),
        Rule("kill", where=is_object_get, kill_after_bytes=20_000),
        Rule("status", where=is_object_get, status=503, times=None),
    ],
    ids=["truncated body", "server killed mid-download", "SlowDown forever"],
)
def test_open_fails_with_a_transient_error(proxied: Proxied, stored: S3Store, rule: Rule) -> None:
    """A body cut short is never handed over as if complete."""
    proxied.proxy.add(rule)
    with pytest.raises(StoreUnavailable):
        read(stored, "aip/v1/data/a.bin")
    proxied.proxy.clear()
    assert read(stored, "aip/v1/data/a.bin") == SMALL  # nothing changed on the server


def test_wrong_bytes_on_the_way_out_reach_the_reader(proxied: Proxied, stored: S3Store) -> None:
    """open() passes bytes through unverified (its consumers verify: audit, repair,
    replication; see test_s3_operations.py); this pins that the proxy really corrupts."""
    proxied.proxy.add(Rule("corrupt", where=is_object_get))
    data = read(stored, "aip/v1/data/a.bin")
    assert len(data) == len(SMALL) and data != SMALL


# ---------------------------------------------------------------- list


def test_list_recovers_mid_listing(proxied: Proxied) -> None:
    store = proxied.store(page_size=3)
    client = proxied.client()
    for i in range(10):
        client.put_object(Bucket=proxied.bucket, Key=f"{store.prefix}/aip/v1/data/{i:02}.bin")
    rules = [
        proxied.proxy.add(Rule("status", method="GET", contains="list-type", skip=1, status=503)),
        proxied.proxy.add(Rule("reset", method="GET", contains="list-type", skip=3)),
    ]
    keys = [i.key for i in store.list("aip/")]
    assert sorted(keys) == [f"aip/v1/data/{i:02}.bin" for i in range(10)]
    assert len(keys) == len(set(keys)) and all(r.fired == 1 for r in rules)


def test_list_fails_with_a_transient_error(proxied: Proxied) -> None:
    store = proxied.store(page_size=3)
    client = proxied.client()
    for i in range(5):
        client.put_object(Bucket=proxied.bucket, Key=f"{store.prefix}/aip/v1/data/{i:02}.bin")
    proxied.proxy.add(Rule("status", method="GET", contains="list-type", skip=1, times=None))
    with pytest.raises(StoreUnavailable):
        list(store.list("aip/"))


@SEAWEEDFS
def test_lost_answers_and_cut_downloads(proxied: Proxied) -> None:
    """The cases a real server answers differently from moto, in one run: a put and a
    multipart completion whose answers are lost after the server acted, a part whose
    answer is lost, a download cut short and one killed midway."""
    store = proxied.store(verify_mode="readback")
    proxied.proxy.add(Rule("lose", method="PUT", where=lambda r: "/.probe/" not in r.target))
    put(store, "aip/v1/data/a.bin", SMALL)
    proxied.proxy.add(Rule("lose", method="PUT", contains="partNumber=2"))
    proxied.proxy.add(Rule("lose", method="POST", contains="uploadId="))
    put(store, "aip/v1/data/big.bin", BIG)
    # without digests given, the server knows only the parts' composite checksum
    proxied.proxy.add(Rule("lose", method="POST", contains="uploadId="))
    store.put("aip/v1/data/big-2.bin", io.BytesIO(BIG))
    assert len(proxied.proxy.events("lost")) == 4
    assert proxied.raw(store, "aip/v1/data/big-2.bin") == BIG
    assert store.head("aip/v1/data/big-2.bin").sha256 == hashlib.sha256(BIG).hexdigest()
    assert proxied.raw(store, "aip/v1/data/a.bin") == SMALL
    assert proxied.raw(store, "aip/v1/data/big.bin") == BIG
    assert proxied.uploads(store) == []
    for rule in (
        Rule("truncate", where=is_object_get),
        Rule("kill", where=is_object_get, kill_after_bytes=1_000_000),
    ):
        proxied.proxy.add(rule)
        with pytest.raises(StoreUnavailable):
            read(store, "aip/v1/data/big.bin")
        proxied.proxy.clear()
    assert read(store, "aip/v1/data/big.bin") == BIG
