"""Build stores from the configuration: the one place that knows every backend."""

from __future__ import annotations

from pathlib import Path

from preservation.config import Config, LocalStoreSettings
from preservation.storage.base import Store
from preservation.storage.local import LocalStore


def open_store(config: Config, name: str) -> Store:
    """The store called ``name``; local paths are resolved against the repository root.

    Unknown names raise ConfigError (CFG001) listing the configured ones; missing
    credential variables of an S3 store raise ConfigError too. Nothing is contacted.
    """
    settings = config.store_settings(name)
    if isinstance(settings, LocalStoreSettings):
        return LocalStore(name, settings.site, config.resolve(Path(settings.path)))
    from preservation.storage.s3 import S3Store  # boto3 is only loaded when needed

    return S3Store(name, settings)


def open_stores(config: Config) -> dict[str, Store]:
    """Every configured store, in configuration order."""
    return {name: open_store(config, name) for name in config.settings.stores}
