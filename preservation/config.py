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


def _http_url(v: str | None) -> str | None:
    """An optional http(s) URL with a host (endpoints, webhooks)."""
    if v is None:
        return v
    u = urlparse(v)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ValueError("must be an http:// or https:// URL with a host")
    return v


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
        return _http_url(v)

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


def _check_duration(value: str | None, what: str) -> str | None:
    if value is None:
        return value
    from preservation.audit.budget import parse_duration
    from preservation.errors import UsageError

    try:
        parse_duration(value)
    except UsageError as e:
        raise ValueError(f"{what}: {e.message}") from e
    return value


class AuditSettings(_Strict):
    """``[audit]``: fixity audits, the Parquet audit log and the repair policy."""

    algorithm: str = "sha256"  # the audit digest; --all-digests adds every manifest's
    workers: Annotated[int, Field(ge=1, le=256)] = 4
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000  # checks per commit
    budget: str = "auto"  # budget of scheduled runs (see preservation.audit.budget)
    sample_fraction: Annotated[float, Field(gt=0, le=1)] = 0.05
    log_dir: Path = Path("audit-log")
    log_store: str | None = None  # also write each Parquet file to this store
    log_prefix: str = "audit-log"
    auto_repair: bool = False
    lease_seconds: Annotated[int, Field(ge=5, le=86_400)] = 600

    @field_validator("algorithm")
    @classmethod
    def _algorithm(cls, v: str) -> str:
        from preservation.hashing import SUPPORTED

        v = v.lower()
        if v not in SUPPORTED:
            raise ValueError(f"unsupported digest algorithm {v!r}")
        return v

    @field_validator("budget")
    @classmethod
    def _budget(cls, v: str) -> str:
        from preservation.audit.budget import parse_budget
        from preservation.errors import UsageError

        try:
            parse_budget(v)
        except UsageError as e:
            raise ValueError(e.message) from e
        return v

    @field_validator("log_prefix")
    @classmethod
    def _log_prefix(cls, v: str) -> str:
        v = v.strip("/")
        if not v:
            raise ValueError("must not be empty")
        return v


class AlertSettings(_Strict):
    """``[alerts]``: a log line always; a webhook (JSON POST) and e-mail when set."""

    webhook_url: str | None = None
    webhook_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    webhook_token_env: str | None = None  # sent as 'Authorization: Bearer <token>'
    smtp_host: str | None = None
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    smtp_security: Literal["none", "starttls", "ssl"] = "none"
    smtp_timeout: Annotated[float, Field(gt=0, le=300)] = 30.0
    smtp_user_env: str | None = None
    smtp_password_env: str | None = None
    mail_from: str = "preservation@localhost"
    mail_to: tuple[str, ...] = ()
    repeat_after: str | None = None  # re-send an unchanged situation after this long

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        return _http_url(v)

    @field_validator("repeat_after")
    @classmethod
    def _repeat(cls, v: str | None) -> str | None:
        return _check_duration(v, "repeat_after")

    @model_validator(mode="after")
    def _mail(self) -> AlertSettings:
        if self.smtp_host and not self.mail_to:
            raise ValueError("smtp_host is set but mail_to lists no recipient")
        return self


class JobSchedule(_Strict):
    """When one scheduler job runs: a crontab line or an interval (not both)."""

    enabled: bool = True
    cron: str | None = None  # five fields: minute hour day month day-of-week
    interval: str | None = None  # e.g. "1h", "30m", "2s"
    function: str | None = None  # 'module:function' for job slots (called with the repo)

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str | None) -> str | None:
        return _check_duration(v, "interval")

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None and len(v.split()) != 5:
            raise ValueError("a crontab line has five fields: minute hour day month day-of-week")
        return v

    @field_validator("function")
    @classmethod
    def _function(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", v):
            raise ValueError("must be 'package.module:function'")
        return v

    @model_validator(mode="after")
    def _one_trigger(self) -> JobSchedule:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of cron or interval")
        return self


class SchedulerSettings(_Strict):
    """``[scheduler]``: APScheduler 3 jobs, their job store in the catalogue database.

    ``audit`` runs once per store (job ``audit:<store>``); ``replication`` is the
    catch-up of the replication queue; ``jobs`` are slots for jobs of other parts
    (format-risk check, monthly report, ...), each registered only when its
    ``function`` can be imported. Entries given here replace the defaults by name.
    """

    timezone: str = "UTC"
    threads: Annotated[int, Field(ge=1, le=64)] = 4
    misfire_grace: str = "1d"  # a run missed by less than this runs once at start-up
    audit: JobSchedule = JobSchedule(cron="0 2 * * *")
    replication: JobSchedule = JobSchedule(interval="1h")
    jobs: dict[str, JobSchedule] = Field(default_factory=dict)

    @field_validator("misfire_grace")
    @classmethod
    def _grace(cls, v: str) -> str:
        checked = _check_duration(v, "misfire_grace")
        assert checked is not None
        return checked

    @field_validator("jobs")
    @classmethod
    def _job_names(cls, v: dict[str, JobSchedule]) -> dict[str, JobSchedule]:
        for name in v:
            if not re.fullmatch(r"[a-z][a-z0-9\-]{0,62}", name) or name in ("audit", "replication"):
                raise ValueError(f"job name {name!r}: lower-case letters, digits and '-'"
                                 " (and not 'audit' or 'replication')")
        return v


class DrillSettings(_Strict):
    """``[drill]``: the scheduler's restore drill (job ``restore-drill``): ``count``
    random AIPs exported from ``store`` alone (default: the first replica store on
    another site than the primary) and validated fully."""

    count: Annotated[int, Field(ge=1, le=10_000)] = 1
    store: str | None = None


class ExecutorSettings(_Strict):
    """``[executor]``: where audit (and replication) work runs.

    ``kind = "threads"`` (default) uses worker threads of this process; ``"dask"``
    sends work to a Dask distributed scheduler at ``address`` (the optional extra
    ``preservation[distributed]``). With ``pin_to_site`` each task asks for the Dask
    worker resource named after the site of the store it reads (start workers with
    ``--resources site-a=1``), so workers read only stores of their own site.
    """

    kind: Literal["threads", "dask"] = "threads"
    address: str | None = None
    pin_to_site: bool = False
    window: Annotated[int, Field(ge=1, le=100_000)] | None = None  # tasks in flight

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"kind": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _address(self) -> ExecutorSettings:
        if self.kind == "dask" and not self.address:
            raise ValueError("kind = 'dask' needs the scheduler address (address = 'tcp://…')")
        return self


FormatStatus = Literal["preservation", "acceptable", "at-risk", "obsolete", "unknown"]


class FormatOverride(_Strict):
    """One site override of a format policy entry; unset fields keep the policy's value."""

    name: str | None = None
    category: str | None = None
    status: FormatStatus | None = None
    rationale: str | None = None
    target: str | None = None  # preferred target PUID ("" clears it)
    action: str | None = None  # migration action name ("" clears it)


class FormatsSettings(_Strict):
    """``[formats]``: the format policy, the format-risk check and migrations.

    ``policy`` replaces the project's ``schemas/format-policy.json``; ``overrides``
    (``[formats.overrides."fmt/40"]``) change single entries (unknown PUIDs are added
    and then need name, category and status). ``state_dir`` (relative to the
    repository) keeps the risk check's last result and the trend Parquet files.
    Migration tools run with ``tool_timeout`` seconds and may write at most
    ``max_output_bytes`` (and ``max_output_ratio`` times the input size).
    """

    policy: Path | None = None
    overrides: dict[str, FormatOverride] = Field(default_factory=dict)
    state_dir: Path = Path("formats")
    tool_timeout: Annotated[float, Field(gt=0, le=86_400)] = 1800.0
    max_output_bytes: Annotated[int, Field(gt=0)] = 64 * 1024**3
    max_output_ratio: Annotated[float, Field(gt=0)] = 50.0

    @field_validator("overrides")
    @classmethod
    def _puids(cls, v: dict[str, FormatOverride]) -> dict[str, FormatOverride]:
        for key in v:
            if not re.fullmatch(r"(x-)?fmt/[0-9]+|local/[a-z0-9][a-z0-9_-]*", key):
                raise ValueError(f"{key!r} is not a PRONOM PUID (or local/<name>)")
        return v


class Settings(_Strict):
    repository: RepositorySettings = RepositorySettings()
    catalog: CatalogSettings = CatalogSettings()
    stores: dict[str, StoreSettings]
    policy: PolicySettings = PolicySettings()
    ingest: IngestSettings = IngestSettings()
    logging: LoggingSettings = LoggingSettings()
    audit: AuditSettings = AuditSettings()
    alerts: AlertSettings = AlertSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    drill: DrillSettings = DrillSettings()
    executor: ExecutorSettings = ExecutorSettings()
    formats: FormatsSettings = FormatsSettings()
    # Sections owned by later parts (access) are free-form tables here until their
    # parts give them a model.
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

    @model_validator(mode="after")
    def _drill_store(self) -> Settings:
        name = self.drill.store
        if name is not None and name not in self.stores:
            known = ", ".join(sorted(self.stores))
            raise ValueError(f"drill.store: no store named {name!r} (configured: {known})")
        return self

    @model_validator(mode="after")
    def _audit_log_store(self) -> Settings:
        name = self.audit.log_store
        if name is not None and name not in self.stores:
            known = ", ".join(sorted(self.stores))
            raise ValueError(f"audit.log_store: no store named {name!r} (configured: {known})")
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
