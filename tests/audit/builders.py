"""Repositories, AIPs, second copies and damage for the audit tests.

``build_aip`` writes a real bag (payload, manifests, tag manifests, bagit.txt,
bag-info.txt) straight into a store and records it in the catalogue with
``record_ingest``: the same rows a real ingest makes, in milliseconds, so that tests
can have thousands of files. ``place_replica`` makes the second copy with the
replication module (issue 4) when it is there, else by copying objects through the
store interface and marking the copy verified. Damage: ``flip_byte``, ``truncate``,
``delete``; on S3 they rewrite the object keeping its recorded checksum metadata,
as bit rot would.
"""

from __future__ import annotations

import hashlib
import io
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from preservation.catalog.record import record_ingest
from preservation.config import LocalStoreSettings, S3StoreSettings, load
from preservation.model import FileEntry, new_uuid, utcnow
from preservation.repository import Repository, upgrade_catalog
from preservation.storage.local import LocalStore
from tests.support.seaweedfs import SeaweedFS

ACCESS_ENV = "AUDIT_TEST_ACCESS_KEY"
SECRET_ENV = "AUDIT_TEST_SECRET_KEY"

LOCAL_STORES = """
[stores.primary]
type = "local"
path = "stores/primary"
site = "site-a"
role = "primary"
fixity_interval_days = 90

[stores.offsite]
type = "local"
path = "stores/offsite"
site = "site-b"
role = "replica"
fixity_interval_days = 180
"""


def s3_store_toml(name: str, server: SeaweedFS, bucket: str, *, site: str = "site-s3",
                  extra: str = "") -> str:  # fmt: skip
    return f"""
[stores.{name}]
type = "s3"
bucket = "{bucket}"
prefix = "repo"
endpoint_url = "{server.endpoint_url}"
region = "us-east-1"
addressing_style = "path"
site = "{site}"
role = "replica"
access_key_env = "{ACCESS_ENV}"
secret_key_env = "{SECRET_ENV}"
max_attempts = 2
connect_timeout = 5
read_timeout = 30
{extra}
"""


def make_repo(
    root: Path, stores: str = LOCAL_STORES, extra: str = "", catalog_url: str | None = None
) -> Repository:
    """A repository with the given ``[stores.*]`` tables and extra TOML, migrated."""
    root.mkdir(parents=True, exist_ok=True)
    text = f"""
[repository]
name = "audit-test"
organization = "Test Archive"

[catalog]
url = "{catalog_url or "sqlite:///catalog.sqlite"}"

{extra}
{stores}
"""
    (root / "preservation.toml").write_text(text, encoding="utf-8")
    repo = Repository(load(root))
    for settings in repo.config.settings.stores.values():
        if isinstance(settings, LocalStoreSettings):
            repo.config.resolve(settings.path).mkdir(parents=True, exist_ok=True)
    upgrade_catalog(repo)
    return repo


def content(n: int, size: int) -> bytes:
    seed = hashlib.sha256(str(n).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def _digests(data: bytes) -> dict[str, str]:
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "sha512": hashlib.sha512(data).hexdigest(),
    }


def _write(repo: Repository, store_name: str, key: str, data: bytes) -> None:
    store = repo.store(store_name)
    if isinstance(store, LocalStore):  # fast path for bulk data: no fsync per object
        target = store.root.joinpath(*key.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o444)
    else:
        store.put(key, io.BytesIO(data), size=len(data))


def build_aip(
    repo: Repository,
    files: Mapping[str, bytes],
    *,
    manifest_override: Mapping[str, str] | None = None,
) -> str:
    """Store a bag of ``files`` (paths under ``data/``) on the primary and record it.

    ``manifest_override`` puts other sha256 values into manifest-sha256.txt for some
    paths (the catalogue keeps the real ones): a bag that disagrees with its catalogue.
    """
    aip_id = new_uuid()
    primary = repo.config.primary_store_name
    prefix = f"{aip_id}/v1"
    entries: list[FileEntry] = []
    lines256: list[str] = []
    lines512: list[str] = []
    for path, data in sorted(files.items()):
        d = _digests(data)
        entries.append(FileEntry(path=path, size=len(data), digests=d))
        _write(repo, primary, f"{prefix}/data/{path}", data)
        lines256.append(
            f"{(manifest_override or {}).get('data/' + path, d['sha256'])}  data/{path}\n"
        )
        lines512.append(f"{d['sha512']}  data/{path}\n")
    tags: dict[str, bytes] = {
        "bagit.txt": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
        "bag-info.txt": (
            f"Source-Organization: Test Archive\nPayload-Oxum: "
            f"{sum(e.size for e in entries)}.{len(entries)}\n"
        ).encode(),
        "manifest-sha256.txt": "".join(lines256).encode(),
        "manifest-sha512.txt": "".join(lines512).encode(),
    }
    for alg in ("sha256", "sha512"):
        tags[f"tagmanifest-{alg}.txt"] = "".join(
            f"{hashlib.new(alg, data).hexdigest()}  {name}\n"
            for name, data in sorted(tags.items())
            if not name.startswith("tagmanifest")
        ).encode()
    for name, data in tags.items():
        _write(repo, primary, f"{prefix}/{name}", data)
    replicas = [n for n, s in repo.config.settings.stores.items() if s.role == "replica"]
    with repo.catalog.session() as s:
        record_ingest(
            s,
            aip_id=aip_id,
            job_id=None,
            reference_code=None,
            transfer_name=f"t-{aip_id[:8]}",
            descriptive={"title": "audit test"},
            payload_key=hashlib.sha256(aip_id.encode()).hexdigest(),
            entries=entries,
            tag_files={name: (_digests(data), len(data)) for name, data in tags.items()},
            primary_store=primary,
            replica_stores=replicas,
        )
    return aip_id


def place_replica(repo: Repository, aip_id: str, target: str) -> None:
    """The second copy of an AIP on ``target``, verified, as replication leaves it."""
    try:
        from preservation.storage.replicate import replicate_pending
    except ImportError:  # replication not there: copy by hand through the store interface
        _copy_by_hand(repo, aip_id, target)
        return
    report = replicate_pending(repo, aip=aip_id, store=target)
    assert report.ok, report.to_dict()


def _copy_by_hand(repo: Repository, aip_id: str, target: str) -> None:
    from sqlalchemy import select, update

    from preservation.catalog.models import AipVersion, Copy, FileCopy

    source, dest = repo.primary, repo.store(target)
    for info in source.list(f"{aip_id}/v1/"):
        with source.open(info.key) as f:
            dest.put(info.key, f, size=info.size)
    now = utcnow()
    with repo.catalog.session() as s:
        copy_id = s.execute(
            select(Copy.id)
            .join(AipVersion, AipVersion.id == Copy.version_id)
            .where(AipVersion.aip_id == aip_id, Copy.store_name == target)
        ).scalar_one()
        s.execute(update(Copy).where(Copy.id == copy_id).values(state="verified", verified_at=now))
        s.execute(
            update(FileCopy)
            .where(FileCopy.copy_id == copy_id)
            .values(last_verified_at=now, outcome="pass")
        )


# ---------------------------------------------------------------- damage
def _s3(repo: Repository, store: str, server: SeaweedFS) -> tuple[Any, str, str]:
    settings = repo.config.store_settings(store)
    assert isinstance(settings, S3StoreSettings)
    return server.client(), settings.bucket, settings.prefix


def _rewrite_local(repo: Repository, store: str, key: str, data: bytes) -> None:
    s = repo.store(store)
    assert isinstance(s, LocalStore)
    path = s.root.joinpath(*key.split("/"))
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    path.write_bytes(data)
    path.chmod(0o444)


def read_object(repo: Repository, store: str, key: str) -> bytes:
    with repo.store(store).open(key) as f:
        return bytes(f.read())


def _rewrite(repo: Repository, store: str, key: str, data: bytes,
             server: SeaweedFS | None) -> None:  # fmt: skip
    if server is None:
        _rewrite_local(repo, store, key, data)
        return
    client, bucket, prefix = _s3(repo, store, server)
    full = f"{prefix}/{key}" if prefix else key
    head = client.head_object(Bucket=bucket, Key=full)
    # Same user metadata (the recorded sha256): the bytes rot, the label does not.
    client.put_object(Bucket=bucket, Key=full, Body=data, Metadata=head.get("Metadata") or {})


def flip_byte(repo: Repository, store: str, key: str, server: SeaweedFS | None = None,
              offset: int | None = None) -> None:  # fmt: skip
    data = bytearray(read_object(repo, store, key))
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    _rewrite(repo, store, key, bytes(data), server)


def truncate(repo: Repository, store: str, key: str, keep: int,
             server: SeaweedFS | None = None) -> None:  # fmt: skip
    _rewrite(repo, store, key, read_object(repo, store, key)[:keep], server)


def delete(repo: Repository, store: str, key: str) -> None:
    repo.store(store).delete(key)
