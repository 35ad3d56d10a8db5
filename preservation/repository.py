"""A working repository: its configuration, catalogue and stores, opened once per command."""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from preservation import config as cfg
from preservation.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from preservation.catalog.db import Catalog
    from preservation.storage.base import Store


class Repository:
    """Lazily opens what a command needs: nothing is touched until it is used."""

    def __init__(self, config: cfg.Config) -> None:
        self.config = config
        self._stores: dict[str, Store] = {}

    @property
    def root(self) -> Path:
        return self.config.root

    @functools.cached_property
    def catalog(self) -> Catalog:
        from preservation.catalog.db import Catalog

        return Catalog(self.config.catalog_url)

    def store(self, name: str) -> Store:
        if name not in self._stores:
            from preservation.storage.registry import open_store

            self._stores[name] = open_store(self.config, name)
        return self._stores[name]

    @property
    def primary(self) -> Store:
        return self.store(self.config.primary_store_name)

    def stores(self) -> dict[str, Store]:
        return {name: self.store(name) for name in self.config.settings.stores}


def open_repository(root: Path | None = None) -> Repository:
    """Find and load the repository (``--repo``, then PRESERVATION_HOME, then the cwd)."""
    return Repository(cfg.load(cfg.find_root(root)))


def init_repository(root: Path, organization: str = "Municipal Archive") -> Repository:
    """Create a repository on the embedded default: local stores and SQLite.

    Refuses a folder that already holds a configuration. Creates the configuration,
    the store folders, the staging area and the catalogue (migrated to head), and
    records the stores in the catalogue.
    """
    root = root.resolve()
    path = root / cfg.CONFIG_NAME
    if path.exists():
        raise UsageError(f"{path} already exists; this folder is already a repository")
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a folder")
    text = cfg.default_toml(organization.replace('"', "'"))
    settings = cfg.parse_settings(tomllib.loads(text), str(path))
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    repo = Repository(cfg.Config(root, settings))
    repo.config.staging_dir.mkdir(parents=True, exist_ok=True)
    for store_settings in settings.stores.values():
        if isinstance(store_settings, cfg.LocalStoreSettings):
            repo.config.resolve(store_settings.path).mkdir(parents=True, exist_ok=True)
    upgrade_catalog(repo)
    return repo


def upgrade_catalog(repo: Repository) -> str:
    """Apply catalogue migrations and record the configured stores; returns the revision."""
    from preservation.catalog.db import current_revision, upgrade
    from preservation.catalog.models import sync_stores

    url = repo.config.catalog_url
    upgrade(url)
    with repo.catalog.session() as s:
        sync_stores(s, repo.config)
    rev = current_revision(url)
    if rev is None:
        raise ConfigError(f"catalogue at {url} has no revision after upgrade")
    return rev
