"""Build stores from the configuration: the one place that knows every backend."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from preservation.config import Config, LocalStoreSettings
from preservation.storage.base import Store
from preservation.storage.local import LocalStore

if TYPE_CHECKING:
    from preservation.storage.s3 import S3Store


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


def as_s3(store: Store) -> S3Store | None:
    """``store`` when it is an S3 store, else None, without loading boto3 (about 25 MB
    of memory) in a process that opened no S3 store: until one is opened, the module
    that defines S3 stores is not loaded, and no store can be one."""
    module = sys.modules.get("preservation.storage.s3")
    if module is None:
        return None
    s3_store: type[S3Store] = module.S3Store
    return store if isinstance(store, s3_store) else None
