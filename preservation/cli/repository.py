"""Repository commands: init, config, db, stores."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from preservation.cli.app import (
    cli,
    console,
    emit,
    fail,
    human_bytes,
    json_option,
    show_json,
    state,
)


# ---------------------------------------------------------------- repository
@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--organization", default="Municipal Archive", show_default=True)
@json_option
def init(directory: Path, organization: str) -> None:
    """Create a repository in DIRECTORY (local stores + SQLite catalogue)."""
    from preservation.repository import init_repository

    repo = init_repository(directory, organization)
    data = {
        "root": str(repo.root),
        "config": str(repo.config.path),
        "catalog": repo.config.catalog_url,
        "stores": {n: s.site for n, s in repo.config.settings.stores.items()},
    }
    emit(data, lambda: console.print(f"Initialised repository in {repo.root}"))


@cli.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@json_option
def config_show() -> None:
    """Print the effective configuration, secrets masked."""
    repo = state().repository()
    data = repo.config.effective(mask_secrets=True)
    emit(data, lambda: show_json(data))


@cli.group("db")
def db_group() -> None:
    """Catalogue database."""


@db_group.command("upgrade")
@json_option
def db_upgrade() -> None:
    """Apply catalogue migrations (init does this too)."""
    from preservation.repository import upgrade_catalog

    repo = state().repository()
    rev = upgrade_catalog(repo)
    emit({"revision": rev}, lambda: console.print(f"catalogue at revision {rev}"))


# ---------------------------------------------------------------- stores
@cli.group("stores")
def stores_group() -> None:
    """Storage locations."""


@stores_group.command("check")
@click.option("--store", "names", multiple=True, help="Only this store (repeatable).")
@json_option
def stores_check(names: tuple[str, ...]) -> None:
    """Check every store: reachable, writable, versioning, lock, encryption, space."""
    from preservation.storage.check import check_stores

    repo = state().repository()
    results = check_stores(repo.config, list(names) or None)
    data = {"ok": all(r.ok for r in results), "stores": [r.to_dict() for r in results]}

    def human() -> None:
        t = Table("store", "ok", "reachable", "writable", "kind", "free", "problems")
        for r in results:
            caps = r.capabilities
            free = caps.free_bytes if caps else None
            t.add_row(
                r.store,
                Text("yes", "green") if r.ok else Text("NO", "red"),
                str(r.reachable),
                str(r.writable),
                caps.kind if caps else "?",
                human_bytes(free) if free is not None else "",
                "; ".join(r.problems),
            )
        console.print(t)

    emit(data, human)
    if not data["ok"]:
        fail(1)
