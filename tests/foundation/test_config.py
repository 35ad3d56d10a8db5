"""Configuration: validation messages name the key; init writes a valid default."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from preservation import config as cfg
from preservation.errors import ConfigError, RepositoryNotFound


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / cfg.CONFIG_NAME).write_text(text, encoding="utf-8")
    return tmp_path


BASE = """
[stores.primary]
type = "local"
path = "stores/primary"
site = "site-a"
role = "primary"
"""


def test_default_toml_is_valid(tmp_path: Path) -> None:
    settings = cfg.parse_settings(tomllib.loads(cfg.default_toml()), "x")
    assert set(settings.stores) == {"primary", "offsite"}
    assert settings.stores["primary"].site == "site-a"
    assert settings.stores["offsite"].site == "site-b"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    write(tmp_path, BASE + "\n[policy]\ncopies = 2\ncopys = 3\n")
    with pytest.raises(ConfigError) as e:
        cfg.load(tmp_path)
    assert any("policy.copys: unknown key" in p for p in e.value.problems)
    assert e.value.exit_status == 2


def test_missing_bucket_is_named(tmp_path: Path) -> None:
    write(tmp_path, BASE + '\n[stores.remote]\ntype = "s3"\nsite = "site-b"\n')
    with pytest.raises(ConfigError) as e:
        cfg.load(tmp_path)
    assert any("stores.remote.bucket: required key is missing" in p for p in e.value.problems)


def test_bad_url_and_bad_number_each_reported(tmp_path: Path) -> None:
    write(
        tmp_path,
        BASE
        + '\n[stores.remote]\ntype = "s3"\nsite = "b"\nbucket = "ok-bucket"\n'
        + 'endpoint_url = "ftp//nowhere"\n\n[policy]\ncopies = "many"\n',
    )
    with pytest.raises(ConfigError) as e:
        cfg.load(tmp_path)
    text = "\n".join(e.value.problems)
    assert "stores.remote.endpoint_url: must be an http:// or https:// URL" in text
    assert "policy.copies:" in text
    assert len(e.value.problems) == 2


def test_exactly_one_primary(tmp_path: Path) -> None:
    write(tmp_path, BASE.replace('role = "primary"', 'role = "replica"'))
    with pytest.raises(ConfigError, match="exactly one store must have role = 'primary'"):
        cfg.load(tmp_path)


def test_not_toml(tmp_path: Path) -> None:
    write(tmp_path, "[stores\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        cfg.load(tmp_path)


def test_no_repository(tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFound) as e:
        cfg.load(tmp_path / "nothing")
    assert e.value.code == "CFG002"


def test_find_root_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cfg.find_root(None) == Path.cwd()
    monkeypatch.setenv(cfg.ENV_HOME, str(tmp_path / "env"))
    assert cfg.find_root(None) == tmp_path / "env"
    assert cfg.find_root(tmp_path / "explicit") == tmp_path / "explicit"


def test_secrets_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        tmp_path,
        BASE
        + '\n[stores.remote]\ntype = "s3"\nsite = "b"\nbucket = "ok-bucket"\n'
        + 'access_key_env = "MY_KEY"\nsecret_key_env = "MY_SECRET"\n'
        + '\n[catalog]\nurl = "postgresql://u:hunter2@127.0.0.1/db"\n',
    )
    monkeypatch.setenv("MY_KEY", "AKIAEXAMPLE")
    monkeypatch.setenv("MY_SECRET", "s3cr3t-value")
    shown = str(cfg.load(tmp_path).effective())
    assert "hunter2" not in shown and "s3cr3t-value" not in shown and "AKIAEXAMPLE" not in shown
    assert "$MY_SECRET = ***" in shown


def test_catalog_url_relative_to_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = cfg.load(write(tmp_path, BASE))
    assert c.catalog_url == f"sqlite:///{tmp_path.resolve() / 'catalog.sqlite'}"
    monkeypatch.setenv(cfg.ENV_CATALOG_URL, "postgresql://127.0.0.1/x")
    assert c.catalog_url == "postgresql://127.0.0.1/x"
