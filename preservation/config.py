"""The repository's configuration: one TOML file, validated by pydantic.

A repository is a folder holding ``preservation.toml``. Commands find it by
``--repo DIR``, then ``PRESERVATION_HOME``, then the current folder. Secrets never
live in the file: S3 credentials come from the standard AWS chain or from the
environment variables a store names (``access_key_env``/``secret_key_env``).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from preservation.errors import ConfigError, RepositoryNotFound

CONFIG_NAME = "preservation.toml"
ENV_HOME = "PRESERVATION_HOME"
ENV_CATALOG_URL = "PRESERVATION_CATALOG_URL"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RepositorySettings(_Strict):
    name: str = "preservation"
    organization: str = ""  # Source-Organization written into every bag
    organization_address: str = ""
    contact_email: str = ""


class CatalogSettings(_Strict):
    url: str = "sqlite:///catalog.sqlite"
    batch_size: Annotated[int, Field(gt=0, le=100_000)] = 1000

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        scheme = v.split(":", 1)[0]
        if not re.fullmatch(r"(sqlite|postgresql)(\+\w+)?", scheme):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return v


class _StoreBase(_Strict):
    site: str = Field(min_length=1)
    role: Literal["primary", "replica"] = "replica"
    cold: bool = False
    fixity_interval_days: Annotated[int, Field(gt=0)] = 180
    audit_mode: Literal["full", "inventory", "sample"] = "full"
    description: str = ""


class LocalStoreSettings(_StoreBase):
    type: Literal["local"]
    path: Path


class S3StoreSettings(_StoreBase):
    type: Literal["s3"]
    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    storage_class: str | None = None
    sse: Literal["AES256", "aws:kms"] | None = None
    sse_kms_key_id: str | None = None
    object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] | None = None
    object_lock_days: Annotated[int, Field(gt=0)] | None = None
    profile: str | None = None
    access_key_env: str | None = None
    secret_key_env: str | None = None
    multipart_threshold: Annotated[int, Field(ge=5 * 1024 * 1024)] = 16 * 1024 * 1024
    part_size: Annotated[int, Field(ge=5 * 1024 * 1024, le=512 * 1024 * 1024)] = 16 * 1024 * 1024
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    connect_timeout: Annotated[float, Field(gt=0)] = 10.0
    read_timeout: Annotated[float, Field(gt=0)] = 60.0

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", v):
            raise ValueError("not a valid bucket name (3-63 lower-case letters, digits, '.', '-')")
        return v

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is None:
            return v
        u = urlparse(v)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise ValueError("must be an http:// or https:// URL with a host")
        return v

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return v.strip("/")

    @model_validator(mode="after")
    def _lock(self) -> S3StoreSettings:
        if (self.object_lock_mode is None) != (self.object_lock_days is None):
            raise ValueError("object_lock_mode and object_lock_days go together")
        if self.sse == "aws:kms" and not self.sse_kms_key_id:
            raise ValueError("sse = 'aws:kms' needs sse_kms_key_id")
        return self


StoreSettings = Annotated[LocalStoreSettings | S3StoreSettings, Field(discriminator="type")]


class PolicySettings(_Strict):
    copies: Annotated[int, Field(ge=1, le=20)] = 2
    sites: Annotated[int, Field(ge=1, le=20)] = 2
    replication_readback: Literal["head", "full"] = "head"
    replication_workers: Annotated[int, Field(ge=1, le=64)] = 4


class IngestSettings(_Strict):
    digests: tuple[str, ...] = ("sha256", "sha512")
    staging: Path = Path("staging")
    blocking: tuple[Literal["authenticity", "integrity", "usability", "security"], ...] = (
        "authenticity",
        "integrity",
    )
    exclude_junk: bool = True
    virus_scanner: Literal["none", "clamscan", "clamdscan"] = "none"
    max_archive_bytes: Annotated[int, Field(gt=0)] = 2 * 1024**4
    max_archive_files: Annotated[int, Field(gt=0)] = 1_000_000
    max_compression_ratio: Annotated[float, Field(gt=1)] = 200.0
    max_path_bytes: Annotated[int, Field(gt=0, le=4096)] = 1024
    reference_code_pattern: str = (
        r"^(?P<fonds>[A-Z0-9]+)-(?P<category>[A-Z]{1,4})·(?P<year>\d{4})"
        r"-(?P<retention>Y|D30|D10|永久|定期30年|定期10年)(?:-(?P<unit>[A-Z0-9]+))?-(?P<item>\d{4,})$"
    )
    reference_code_patterns: dict[str, str] = Field(
        default_factory=dict, description="per-fonds overrides, keyed by 全宗号"
    )
    identify_workers: Annotated[int, Field(ge=1, le=64)] = 2

    @field_validator("digests")
    @classmethod
    def _digests(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from preservation.hashing import SUPPORTED

        bad = [d for d in v if d not in SUPPORTED]
        if bad:
            raise ValueError(f"unsupported digest algorithm(s): {', '.join(bad)}")
        if "sha256" not in v:
            raise ValueError("sha256 is required (it is the audit digest and the S3 checksum)")
        return v

    @field_validator("reference_code_pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from e
        return v


class LoggingSettings(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class Settings(_Strict):
    repository: RepositorySettings = RepositorySettings()
    catalog: CatalogSettings = CatalogSettings()
    stores: dict[str, StoreSettings]
    policy: PolicySettings = PolicySettings()
    ingest: IngestSettings = IngestSettings()
    logging: LoggingSettings = LoggingSettings()
    # Sections owned by later parts (audit, alerts, scheduler, formats, access) are
    # free-form tables here until their parts give them a model.
    audit: dict[str, Any] = Field(default_factory=dict)
    alerts: dict[str, Any] = Field(default_factory=dict)
    scheduler: dict[str, Any] = Field(default_factory=dict)
    formats: dict[str, Any] = Field(default_factory=dict)
    access: dict[str, Any] = Field(default_factory=dict)

    @field_validator("stores")
    @classmethod
    def _stores(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not v:
            raise ValueError("at least one store is required")
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,62}", name):
                raise ValueError(f"store name {name!r}: letters, digits, '-' and '_' only")
        return v

    @model_validator(mode="after")
    def _one_primary(self) -> Settings:
        primaries = [n for n, s in self.stores.items() if s.role == "primary"]
        if len(primaries) != 1:
            raise ValueError(
                f"exactly one store must have role = 'primary' (found {len(primaries)})"
            )
        return self


class Config:
    """A loaded repository: its folder and its validated settings."""

    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.settings = settings

    @property
    def path(self) -> Path:
        return self.root / CONFIG_NAME

    def resolve(self, p: Path) -> Path:
        return p if p.is_absolute() else self.root / p

    @property
    def catalog_url(self) -> str:
        url = os.environ.get(ENV_CATALOG_URL) or self.settings.catalog.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith("sqlite:////"):
            rel = url[len(prefix) :]
            if rel and rel != ":memory:":
                url = prefix + str(self.resolve(Path(rel)))
        return url

    @property
    def staging_dir(self) -> Path:
        return self.resolve(self.settings.ingest.staging)

    @property
    def primary_store_name(self) -> str:
        return next(n for n, s in self.settings.stores.items() if s.role == "primary")

    def store_settings(self, name: str) -> LocalStoreSettings | S3StoreSettings:
        try:
            return self.settings.stores[name]
        except KeyError:
            known = ", ".join(sorted(self.settings.stores))
            raise ConfigError(f"no store named {name!r} (configured: {known})") from None

    def effective(self, mask_secrets: bool = True) -> dict[str, Any]:
        """The effective configuration as plain data, secrets masked."""
        data = self.settings.model_dump(mode="json")
        data["catalog"]["url"] = _mask_url(self.catalog_url) if mask_secrets else self.catalog_url
        for name, store in data["stores"].items():
            if store["type"] == "local":
                store["path"] = str(self.resolve(Path(store["path"])))
            else:
                store["credentials"] = _credential_source(self.settings.stores[name], mask_secrets)
        data["root"] = str(self.root)
        return data


def _mask_url(url: str) -> str:
    u = urlparse(url)
    if u.password:
        return url.replace(f":{u.password}@", ":***@", 1)
    return url


def _credential_source(store: Any, mask: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for label, env in (("access_key", store.access_key_env), ("secret_key", store.secret_key_env)):
        if env:
            val = os.environ.get(env)
            shown = ("***" if mask else val) if val else "(not set)"
            out[label] = f"${env} = {shown}"
    if store.profile:
        out["profile"] = store.profile
    if not out:
        out["source"] = "default AWS credential chain (environment, shared files, instance role)"
    return out


def _format_error(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    # Drop the discriminator tag pydantic puts in the path of tagged unions.
    loc = re.sub(r"\.(local|s3)(?=\.|$)", "", loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{loc}: unknown key"
    if kind == "missing":
        return f"{loc}: required key is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def parse_settings(data: dict[str, Any], source: str) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        problems = [f"{source}: {_format_error(err)}" for err in e.errors()]
        raise ConfigError(problems=problems) from e


def load(root: Path) -> Config:
    path = root / CONFIG_NAME
    if not path.is_file():
        raise RepositoryNotFound(path=root)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    return Config(root.resolve(), parse_settings(data, str(path)))


def find_root(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env)
    return Path.cwd()


def default_toml(organization: str = "Municipal Archive") -> str:
    """The configuration ``preservation init`` writes: the embedded default."""
    return f"""# preservation repository configuration.
# Paths are relative to this file's folder. Secrets never go here: S3 credentials
# come from the AWS credential chain or from the variables named by access_key_env /
# secret_key_env.

[repository]
name = "demo"
organization = "{organization}"

[catalog]
url = "sqlite:///catalog.sqlite"

[policy]
copies = 2
sites = 2
replication_readback = "head"

[ingest]
digests = ["sha256", "sha512"]
staging = "staging"
blocking = ["authenticity", "integrity"]
exclude_junk = true
virus_scanner = "none"

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

# An off-site S3-compatible store (AWS, MinIO, Ceph, SeaweedFS):
# [stores.s3-offsite]
# type = "s3"
# bucket = "archive-replica"
# endpoint_url = "https://s3.example.org"
# region = "us-east-1"
# site = "site-c"
# role = "replica"
# access_key_env = "REPLICA_ACCESS_KEY"
# secret_key_env = "REPLICA_SECRET_KEY"
"""
