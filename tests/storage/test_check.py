"""``check_stores`` and the store registry, from a real configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from preservation.config import Config, LocalStoreSettings, S3StoreSettings, parse_settings
from preservation.errors import ConfigError
from preservation.storage.base import Capabilities
from preservation.storage.check import check_stores, contradictions
from preservation.storage.local import LocalStore
from preservation.storage.registry import open_store, open_stores
from preservation.storage.s3 import S3Store
from tests.storage.conftest import ACCESS_ENV, SECRET_ENV, S3Endpoint, free_port


def make_config(root: Path, stores: dict[str, dict[str, Any]]) -> Config:
    return Config(root, parse_settings({"stores": stores}, "test"))


def s3_store(endpoint: str, bucket: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "s3",
        "site": "site-c",
        "bucket": bucket,
        "prefix": "check",
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "addressing_style": "path",
        "access_key_env": ACCESS_ENV,
        "secret_key_env": SECRET_ENV,
        "max_attempts": 1,
        "connect_timeout": 2,
        "read_timeout": 5,
        **extra,
    }


LOCAL = {"type": "local", "path": "stores/primary", "site": "site-a", "role": "primary"}


def test_registry_resolves_local_paths_and_builds_s3(
    tmp_path: Path, moto_endpoint: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ACCESS_ENV, moto_endpoint.access_key)
    monkeypatch.setenv(SECRET_ENV, moto_endpoint.secret_key)
    config = make_config(
        tmp_path, {"primary": LOCAL, "cloud": s3_store(moto_endpoint.endpoint_url, "contract")}
    )
    stores = open_stores(config)
    assert list(stores) == ["primary", "cloud"]
    local = stores["primary"]
    assert isinstance(local, LocalStore)
    assert local.root == tmp_path / "stores" / "primary"
    assert local.site == "site-a"
    cloud = open_store(config, "cloud")
    assert isinstance(cloud, S3Store)
    assert (cloud.bucket, cloud.prefix, cloud.site) == ("contract", "check", "site-c")
    with pytest.raises(ConfigError, match="no store named 'nope'"):
        open_store(config, "nope")


def test_missing_credential_variables_are_a_config_error(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, {"primary": LOCAL, "cloud": s3_store("http://127.0.0.1:9", "bucket-x")}
    )
    with pytest.raises(ConfigError, match=ACCESS_ENV):
        open_store(config, "cloud")
    [result] = check_stores(config, ["cloud"])
    assert not result.reachable and not result.ok
    assert result.problems[0].startswith("CFG001")


def test_check_flags_object_lock_configured_on_a_bucket_without_it(
    tmp_path: Path, moto_endpoint: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ACCESS_ENV, moto_endpoint.access_key)
    monkeypatch.setenv(SECRET_ENV, moto_endpoint.secret_key)
    moto_endpoint.make_bucket("plain-bucket")
    moto_endpoint.make_bucket("locked-bucket", object_lock=True)
    lock = {"object_lock_mode": "COMPLIANCE", "object_lock_days": 30}
    config = make_config(
        tmp_path,
        {
            "primary": LOCAL,
            "wrong": s3_store(moto_endpoint.endpoint_url, "plain-bucket", **lock),
            "right": s3_store(moto_endpoint.endpoint_url, "locked-bucket", **lock),
        },
    )
    results = {r.store: r for r in check_stores(config)}
    assert list(results) == ["primary", "wrong", "right"]

    primary = results["primary"]
    assert primary.ok, primary.problems
    assert primary.capabilities is not None and primary.capabilities.free_bytes

    wrong = results["wrong"]
    assert wrong.reachable and wrong.writable
    assert not wrong.ok
    assert any("does not have Object Lock" in p for p in wrong.problems), wrong.problems
    assert wrong.to_dict()["capabilities"]["object_lock"] is False

    right = results["right"]
    assert right.ok, right.problems
    assert right.capabilities is not None and right.capabilities.object_lock is True
    assert right.capabilities.object_lock_mode == "COMPLIANCE"


def test_unreachable_store_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ACCESS_ENV, "k")
    monkeypatch.setenv(SECRET_ENV, "s")
    port = free_port()  # closed again: connections are refused
    config = make_config(
        tmp_path,
        {"primary": LOCAL, "down": s3_store(f"http://127.0.0.1:{port}", "bucket-x")},
    )
    [result] = check_stores(config, ["down"])
    assert result.store == "down"
    assert not result.reachable and not result.writable
    assert result.capabilities is None
    assert result.problems and result.problems[0].startswith("STO003")
    with pytest.raises(ConfigError):
        check_stores(config, ["down", "unknown"])


def test_missing_bucket_is_reported(
    tmp_path: Path, moto_endpoint: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ACCESS_ENV, moto_endpoint.access_key)
    monkeypatch.setenv(SECRET_ENV, moto_endpoint.secret_key)
    config = make_config(
        tmp_path,
        {"primary": LOCAL, "gone": s3_store(moto_endpoint.endpoint_url, "no-such-bucket-here")},
    )
    [result] = check_stores(config, ["gone"])
    assert not result.reachable
    assert "no-such-bucket-here" in result.problems[0]
    assert "does not exist" in result.problems[0]


@pytest.mark.parametrize(
    ("object_lock", "versioning", "expected"),
    [
        (None, None, "could not be read"),
        (False, False, "does not have Object Lock"),
        (True, False, "versioning off"),
        (True, True, None),
    ],
)
def test_contradictions_table(
    object_lock: bool | None, versioning: bool | None, expected: str | None
) -> None:
    settings = S3StoreSettings(
        type="s3", site="s", bucket="bkt", object_lock_mode="GOVERNANCE", object_lock_days=7
    )
    caps = Capabilities(kind="s3", object_lock=object_lock, versioning=versioning)
    problems = contradictions(settings, caps)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0]
    plain = S3StoreSettings(type="s3", site="s", bucket="bkt")
    assert contradictions(plain, caps) == []
    local = LocalStoreSettings(type="local", site="s", path=Path("x"))
    assert contradictions(local, Capabilities(kind="local")) == []
