"""The format policy: preservation status, risk and migration target of each format.

The registry is ``schemas/format-policy.json`` (validated by
``format-policy.schema.json`` when jsonschema is installed, and always parsed strictly),
keyed by PRONOM PUID; formats PRONOM has no PUID for (OFD, Kingsoft WPS) are
``local_formats`` recognised inside container PUIDs by MIME type or file extension
and addressed as ``local/<name>``. A site replaces the file with ``[formats] policy``
and changes single entries with ``[formats.overrides."<PUID>"]``.

Statuses: ``preservation`` (a target format), ``acceptable`` (kept; migrated only when
asked for by format), ``at-risk`` (migrated by ``migrate --all-at-risk`` when an action
is given), ``obsolete`` (the same, more urgent), ``unknown`` (not assessed: unlisted or
unidentified formats).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from preservation.errors import ConfigError

if TYPE_CHECKING:
    from preservation.config import FormatsSettings
    from preservation.repository import Repository

POLICY_NAME = "format-policy.json"
POLICY_SCHEMA_NAME = "format-policy.schema.json"
STATUSES = ("preservation", "acceptable", "at-risk", "obsolete", "unknown")
AT_RISK = frozenset({"at-risk", "obsolete"})
LOCAL_PREFIX = "local/"
Status = Literal["preservation", "acceptable", "at-risk", "obsolete", "unknown"]


class _EntryModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    category: str = Field(min_length=1)
    status: Status
    rationale: str = Field(min_length=1)
    target: str | None = None
    action: str | None = None


class _LocalModel(_EntryModel):
    container: list[str] = Field(min_length=1)
    mime: str | None = None
    extension: str | None = None


class _PolicyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str | None = Field(default=None, alias="$schema")
    title: str
    version: str
    sources: list[str] = Field(default_factory=list)
    unlisted: Status
    formats: dict[str, _EntryModel]
    local_formats: dict[str, _LocalModel] = Field(default_factory=dict)


@dataclass(frozen=True)
class PolicyEntry:
    key: str  # PUID, or local/<name>
    name: str
    category: str
    status: str
    rationale: str
    target: str | None = None
    action: str | None = None
    overridden: bool = False
    container: tuple[str, ...] = ()
    mime: str | None = None
    extension: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "key": self.key,
            "name": self.name,
            "category": self.category,
            "status": self.status,
            "rationale": self.rationale,
            "target": self.target,
            "action": self.action,
            "overridden": self.overridden,
        }
        if self.container:
            d.update(container=list(self.container), mime=self.mime, extension=self.extension)
        return d


@dataclass(frozen=True)
class FormatPolicy:
    title: str
    version: str
    unlisted: str
    entries: Mapping[str, PolicyEntry]  # by PUID or local/<name>
    source: str

    @property
    def digest(self) -> str:
        """sha256 of the effective policy (changes when the file or an override does)."""
        doc = json.dumps(
            {k: e.to_dict() for k, e in sorted(self.entries.items())},
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(f"{self.unlisted}\n{doc}".encode()).hexdigest()

    def lookup(
        self, puid: str | None, mime: str | None = None, path: str | None = None
    ) -> PolicyEntry | None:
        """The entry for a file: a local format when its container, MIME type or
        extension match, else its PUID's entry; None when unlisted or unidentified."""
        if puid is None:
            return None
        suffix = Path(path).suffix.lower().lstrip(".") if path else ""
        for e in self.entries.values():
            if not e.container or puid not in e.container:
                continue
            if (e.mime and mime == e.mime) or (e.extension and suffix == e.extension):
                return e
        return self.entries.get(puid)

    def status_of(self, puid: str | None, mime: str | None = None, path: str | None = None) -> str:
        if puid is None:
            return "unknown"
        entry = self.lookup(puid, mime, path)
        return entry.status if entry is not None else self.unlisted

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "version": self.version,
            "source": self.source,
            "digest": self.digest,
            "unlisted": self.unlisted,
            "formats": [e.to_dict() for _, e in sorted(self.entries.items())],
        }


def _schema_problems(data: Any, schema_path: Path) -> list[str]:
    try:
        import jsonschema
    except ImportError:  # optional: pydantic still parses strictly
        return []
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '(top)'}: {err.message}"
        for err in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    ]


def _read(path: Path) -> _PolicyModel:
    from preservation.ingest.identify import find_schema_file

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON: {e}") from e
    problems = _schema_problems(data, find_schema_file(POLICY_SCHEMA_NAME))
    if problems:
        raise ConfigError(problems=[f"{path}: {p}" for p in problems])
    try:
        return _PolicyModel.model_validate(data)
    except ValidationError as e:
        raise ConfigError(
            problems=[
                f"{path}: {'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
                for err in e.errors()
            ]
        ) from e


def load_policy(settings: FormatsSettings | None = None, root: Path | None = None) -> FormatPolicy:
    """The effective policy: the file (the project's or ``settings.policy``) with the
    site's overrides applied. Raises ConfigError listing every problem (an unknown
    action, an override of an unlisted PUID without name, category and status...)."""
    from preservation.formats.tools import ACTIONS
    from preservation.ingest.identify import find_schema_file

    path = find_schema_file(POLICY_NAME)
    if settings is not None and settings.policy is not None:
        path = (
            settings.policy
            if settings.policy.is_absolute() or root is None
            else root / settings.policy
        )
    model = _read(path)
    entries: dict[str, PolicyEntry] = {}
    for puid, m in model.formats.items():
        entries[puid] = PolicyEntry(
            puid, m.name, m.category, m.status, m.rationale, m.target, m.action
        )
    for name, lm in model.local_formats.items():
        key = LOCAL_PREFIX + name
        entries[key] = PolicyEntry(
            key,
            lm.name,
            lm.category,
            lm.status,
            lm.rationale,
            lm.target,
            lm.action,
            container=tuple(lm.container),
            mime=lm.mime,
            extension=lm.extension,
        )
    problems: list[str] = []
    for key, o in (settings.overrides if settings is not None else {}).items():
        old = entries.get(key)
        if old is None:
            if o.name is None or o.category is None or o.status is None:
                problems.append(
                    f"formats.overrides.{key}: not in the policy; give name, category and status"
                )
                continue
            old = PolicyEntry(key, o.name, o.category, o.status, o.rationale or "site policy")
        entries[key] = PolicyEntry(
            key,
            o.name or old.name,
            o.category or old.category,
            o.status or old.status,
            o.rationale or old.rationale,
            (o.target or None) if o.target is not None else old.target,
            (o.action or None) if o.action is not None else old.action,
            True,
            old.container,
            old.mime,
            old.extension,
        )
    for key, e in sorted(entries.items()):
        if e.action is not None and e.action not in ACTIONS:
            problems.append(
                f"{key}: unknown action {e.action!r} (known: {', '.join(sorted(ACTIONS))})"
            )
        elif (
            e.action is not None
            and e.target is not None
            and e.target not in ACTIONS[e.action].outputs
        ):
            problems.append(f"{key}: action {e.action} does not produce {e.target}")
    if problems:
        raise ConfigError(problems=[f"{path}: {p}" for p in problems])
    return FormatPolicy(model.title, model.version, model.unlisted, entries, str(path))


def policy_for(repo: Repository) -> FormatPolicy:
    return load_policy(repo.config.settings.formats, repo.config.root)
