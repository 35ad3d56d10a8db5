"""Builders for the replication tests: repositories with chosen stores, AIPs, and
looks behind the stores (keys, uploads, events)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select

from preservation.catalog.models import AipVersion, Copy, EventRow, File, Job
from preservation.ingest.pipeline import IngestRequest, run_ingest
from preservation.repository import Repository, open_repository, upgrade_catalog
from preservation.storage.base import Store
from preservation.storage.s3 import S3Store
from tests.support import transfers as tr


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def write_repo(
    root: Path,
    stores: Mapping[str, Mapping[str, Any]],
    *,
    copies: int = 2,
    sites: int = 2,
    readback: str = "head",
    workers: int = 4,
    catalog_url: str | None = None,
) -> Repository:
    """A repository whose configuration has exactly ``stores`` (local paths relative to
    ``root``); catalogue migrated, stores recorded, local folders made."""
    lines = [
        "[repository]",
        'name = "test"',
        'organization = "Test Archive"',
        "[policy]",
        f"copies = {copies}",
        f"sites = {sites}",
        f'replication_readback = "{readback}"',
        f"replication_workers = {workers}",
    ]
    if catalog_url is not None:
        lines += ["[catalog]", f"url = {_toml_value(catalog_url)}"]
    for name, settings in stores.items():
        lines.append(f"[stores.{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in settings.items()]
    root.mkdir(parents=True, exist_ok=True)
    (root / "preservation.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for settings in stores.values():
        if settings["type"] == "local":
            (root / str(settings["path"])).mkdir(parents=True, exist_ok=True)
    repo = open_repository(root)
    upgrade_catalog(repo)
    return repo


def local_store(path: str, site: str, role: str = "replica", **extra: Any) -> dict[str, Any]:
    return {"type": "local", "path": path, "site": site, "role": role, **extra}


def ingest_aip(repo: Repository, parent: Path, name: str, files: Mapping[str, bytes]) -> str:
    source = tr.write_files(parent / name, files)
    receipt = run_ingest(repo, IngestRequest(source=source, submitter="tester"))
    assert receipt.aip is not None
    return receipt.aip


def small_files(tag: str, n: int = 4, size: int = 300) -> dict[str, bytes]:
    return {f"doc-{i}.txt": (f"{tag} file {i} ".encode() * size)[:size] for i in range(n)}


def expected_keys(repo: Repository, aip_id: str) -> set[str]:
    """The object keys the catalogue says the AIP's versions occupy."""
    with repo.catalog.session() as s:
        rows = s.execute(
            select(File.origin_version, File.path)
            .join(AipVersion, AipVersion.id == File.version_id)
            .where(AipVersion.aip_id == aip_id)
        ).all()
    return {f"{aip_id}/v{origin}/{path}" for origin, path in rows}


def aip_keys(store: Store, aip_id: str, *, events: bool = False) -> set[str]:
    keys = {i.key for i in store.list(f"{aip_id}/")}
    if not events:
        keys = {k for k in keys if not k.startswith(f"{aip_id}/events/")}
    return keys


def uploads(store: S3Store) -> list[str]:
    """Unfinished multipart uploads in the store's bucket (any prefix)."""
    resp = store.client.list_multipart_uploads(Bucket=store.bucket)
    return [u["Key"] for u in resp.get("Uploads") or []]


def copy_states(repo: Repository, aip_id: str) -> dict[tuple[int, str], str]:
    with repo.catalog.session() as s:
        rows = s.execute(
            select(AipVersion.number, Copy.store_name, Copy.state)
            .join(AipVersion, AipVersion.id == Copy.version_id)
            .where(AipVersion.aip_id == aip_id)
        ).all()
    return {(v, store): state for v, store, state in rows}


def events_of(repo: Repository, aip_id: str, etype: str) -> list[EventRow]:
    with repo.catalog.session() as s:
        return list(
            s.execute(
                select(EventRow)
                .where(EventRow.aip_id == aip_id, EventRow.type == etype)
                .order_by(EventRow.seq)
            ).scalars()
        )


def replication_jobs(repo: Repository) -> list[Job]:
    with repo.catalog.session() as s:
        return list(
            s.execute(
                select(Job).where(Job.kind == "replication").order_by(Job.created_at)
            ).scalars()
        )
