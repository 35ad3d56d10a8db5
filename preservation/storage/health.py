"""Replication health: where every AIP has verified copies, and what is lagging.

``preservation health`` reports, from the catalogue plus one cheap request per store:

- per store: reachable (one listing request; a local store's folder must exist),
  objects and bytes the catalogue expects there, copies by state (pending and failed
  = replication lag), the oldest copy not yet verified, the last full audit (the
  oldest ``last_audit_at`` of its copies: every copy has been audited since then;
  None while some copy never was), stale copies, and the newest replication error;
- per site: its stores, whether all are reachable, the verified copies there;
- per AIP (those needing attention, or all with ``include_all``): verified copies of
  the current version, their sites, stale copies (a file not verified within the
  store's ``fixity_interval_days``), missing copies (state ``missing``, or no copy at
  all on a configured replica store), queued copies, its NDSA storage level;
- the repository's NDSA storage level and the AIPs that keep it from the next level.

Exit status (:attr:`HealthReport.exit_status`): 0 when every active AIP meets the
policy (``policy.copies`` verified copies of its current version on
``policy.sites`` distinct sites), 1 when some AIP is below it, 2 when a store is
unreachable (2 wins over 1).

NDSA Levels of Digital Preservation 2.0, storage, mapped onto what the configuration
and the catalogue know (a *location* is a site label; a *media type* is ``disk`` for a
local store, ``object`` for an S3 store, ``cold`` for a store marked cold, such as
S3 Glacier or Deep Archive classes). Only verified copies of the current version on
configured stores count. See ``docs/health.md``.

    level 1  two complete copies in separate locations:   >= 2 copies, >= 2 sites
    level 2  three copies, one in a separate geographic
             location:                                    >= 3 copies, >= 2 sites
    level 3  one copy where the disaster threat differs,
             one on a different storage media type:       level 2 and >= 2 media types
    level 4  three copies in locations each with a
             different disaster threat, no single point
             of failure:                                  >= 3 copies on >= 3 sites,
                                                          >= 2 media types

The repository's level is the lowest level of its active AIPs (with no AIP: the
highest level the configured stores allow, its *ceiling*). The AIPs at that level keep
it from the next one, unless the ceiling does (then more stores, sites or media types
are needed, and ``ceiling_needs`` says which).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from preservation.catalog import replication_queries as rq
from preservation.config import LocalStoreSettings, S3StoreSettings
from preservation.errors import PreservationError
from preservation.executor import bounded_map
from preservation.model import utcnow
from preservation.storage.base import Store
from preservation.storage.local import LocalStore

StoreSettings = LocalStoreSettings | S3StoreSettings

EXIT_OK = 0
EXIT_BELOW_POLICY = 1
EXIT_UNREACHABLE = 2
DEFAULT_AIP_LIMIT = 1000

LEVEL_RULES: tuple[tuple[int, int, int, int], ...] = (
    # (level, copies, sites, media types)
    (4, 3, 3, 2),
    (3, 3, 2, 2),
    (2, 3, 2, 1),
    (1, 2, 2, 1),
)


def media_type(settings: StoreSettings) -> str:
    """``cold`` for a cold store, else ``disk`` (local) or ``object`` (S3)."""
    if settings.cold:
        return "cold"
    return "disk" if settings.type == "local" else "object"


def ndsa_level(copies: int, sites: int, media: int) -> int:
    """The NDSA storage level of copies spread over ``sites`` and ``media`` types."""
    for level, need_copies, need_sites, need_media in LEVEL_RULES:
        if copies >= need_copies and sites >= need_sites and media >= need_media:
            return level
    return 0


def next_level_needs(copies: int, sites: int, media: int) -> str:
    """What copies with these counts lack for the next level ('' at level 4)."""
    level = ndsa_level(copies, sites, media)
    for rule_level, need_copies, need_sites, need_media in reversed(LEVEL_RULES):
        if rule_level != level + 1:
            continue
        lacks = []
        if copies < need_copies:
            lacks.append(f"{need_copies} verified copies (has {copies})")
        if sites < need_sites:
            lacks.append(f"{need_sites} sites (has {sites})")
        if media < need_media:
            lacks.append(f"{need_media} media types (has {media})")
        return f"level {rule_level} needs " + ", ".join(lacks)
    return ""


# --- reachability -----------------------------------------------------------------


def reachable(store: Store) -> tuple[bool, str | None]:
    """One cheap request: a listing of the (normally empty) probe prefix. A local
    store must also have its folder."""
    if isinstance(store, LocalStore) and not store.root.is_dir():
        return False, f"folder {store.root} does not exist"
    try:
        next(iter(store.list(".probe/")), None)
    except PreservationError as e:
        return False, f"{e.code}: {e.message}"
    return True, None


# --- the report -------------------------------------------------------------------


@dataclass
class AipHealth:
    id: str
    reference_code: str | None
    version: int
    verified: list[str] = field(default_factory=list)  # stores
    sites: list[str] = field(default_factory=list)
    media: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # "store vN"
    missing: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)  # "store vN state"
    damaged: list[str] = field(default_factory=list)  # "store vN": an audit found damage
    level: int = 0
    meets_policy: bool = False

    @property
    def needs_attention(self) -> bool:
        return not self.meets_policy or bool(
            self.stale or self.missing or self.queued or self.damaged
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reference_code": self.reference_code,
            "version": self.version,
            "verified_copies": len(self.verified),
            "stores": list(self.verified),
            "sites": list(self.sites),
            "media": list(self.media),
            "stale_copies": list(self.stale),
            "missing_copies": list(self.missing),
            "queued_copies": list(self.queued),
            "damaged_copies": list(self.damaged),
            "ndsa_level": self.level,
            "meets_policy": self.meets_policy,
        }


@dataclass
class HealthReport:
    generated_at: dt.datetime
    repository: str
    policy: dict[str, int]
    stores: list[dict[str, Any]]
    sites: list[dict[str, Any]]
    aip_totals: dict[str, int]
    aips: list[dict[str, Any]]
    aips_truncated: bool
    ndsa: dict[str, Any]

    @property
    def unreachable(self) -> list[str]:
        return [s["name"] for s in self.stores if not s["reachable"]]

    @property
    def exit_status(self) -> int:
        if self.unreachable:
            return EXIT_UNREACHABLE
        if self.aip_totals["below_policy"]:
            return EXIT_BELOW_POLICY
        return EXIT_OK

    @property
    def status(self) -> str:
        return {
            EXIT_OK: "ok",
            EXIT_BELOW_POLICY: "below_policy",
            EXIT_UNREACHABLE: "store_unreachable",
        }[self.exit_status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at.isoformat(),
            "repository": self.repository,
            "status": self.status,
            "exit_status": self.exit_status,
            "policy": dict(self.policy),
            "stores": self.stores,
            "sites": self.sites,
            "aip_totals": dict(self.aip_totals),
            "aips": self.aips,
            "aips_truncated": self.aips_truncated,
            "ndsa": self.ndsa,
        }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _by_aip(rows: Iterable[rq.AipCopyRow]) -> Iterator[list[rq.AipCopyRow]]:
    group: list[rq.AipCopyRow] = []
    for row in rows:
        if group and row.aip_id != group[0].aip_id:
            yield group
            group = []
        group.append(row)
    if group:
        yield group


class _Collector:
    """Folds the per-copy rows into per-AIP health, keeping only what is reported."""

    def __init__(
        self,
        settings: Mapping[str, StoreSettings],
        policy: Mapping[str, int],
        stale: Mapping[str, set[int]],
        include_all: bool,
        limit: int,
        damaged: set[int] | None = None,
    ) -> None:
        self.settings = settings
        self.damaged = damaged or set()
        self.replicas = [n for n, s in settings.items() if s.role == "replica"]
        self.policy = policy
        self.stale = stale
        self.include_all = include_all
        self.limit = limit
        self.totals = {
            "active": 0,
            "meeting_policy": 0,
            "below_policy": 0,
            "with_stale_copies": 0,
            "with_missing_copies": 0,
            "with_queued_copies": 0,
        }
        self.listed: list[dict[str, Any]] = []
        self.truncated = False
        self.levels: dict[int, int] = {}
        self.lowest: list[str] = []  # AIPs at the lowest level seen so far
        self.lowest_level = 5
        self.lowest_count = 0
        # per site: verified copies and AIPs
        self.site_copies: dict[str, int] = {}
        self.site_aips: dict[str, int] = {}

    def add(self, rows: list[rq.AipCopyRow]) -> None:
        first = rows[0]
        aip = AipHealth(first.aip_id, first.reference_code, first.current_version)
        current_stores: set[str] = set()
        for r in rows:
            if r.store is None or r.store not in self.settings or r.state is None:
                continue
            if r.version == first.current_version:
                current_stores.add(r.store)
                if r.state == "verified" and r.copy_id in self.damaged:
                    aip.damaged.append(f"{r.store} v{r.version}")
                elif r.state == "verified":
                    aip.verified.append(r.store)
            if r.state in rq.HELD_STATES and r.copy_id in self.stale.get(r.store, set()):
                aip.stale.append(f"{r.store} v{r.version}")
            if r.state == "missing":
                aip.missing.append(f"{r.store} v{r.version}")
            if r.state in rq.QUEUE_STATES:
                aip.queued.append(f"{r.store} v{r.version} {r.state}")
        aip.missing += [
            f"{n} v{first.current_version}" for n in self.replicas if n not in current_stores
        ]
        aip.sites = sorted({self.settings[n].site for n in aip.verified})
        aip.media = sorted({media_type(self.settings[n]) for n in aip.verified})
        aip.level = ndsa_level(len(aip.verified), len(aip.sites), len(aip.media))
        aip.meets_policy = (
            len(aip.verified) >= self.policy["copies"] and len(aip.sites) >= self.policy["sites"]
        )
        self._count(aip)

    def _count(self, aip: AipHealth) -> None:
        t = self.totals
        t["active"] += 1
        t["meeting_policy" if aip.meets_policy else "below_policy"] += 1
        t["with_stale_copies"] += bool(aip.stale)
        t["with_missing_copies"] += bool(aip.missing)
        t["with_queued_copies"] += bool(aip.queued)
        self.levels[aip.level] = self.levels.get(aip.level, 0) + 1
        for site in aip.sites:
            self.site_aips[site] = self.site_aips.get(site, 0) + 1
        for store in aip.verified:
            site = self.settings[store].site
            self.site_copies[site] = self.site_copies.get(site, 0) + 1
        if aip.level < self.lowest_level:
            self.lowest_level, self.lowest, self.lowest_count = aip.level, [], 0
        if aip.level == self.lowest_level:
            self.lowest_count += 1
            if len(self.lowest) < self.limit:
                self.lowest.append(aip.id)
        if self.include_all or aip.needs_attention:
            if len(self.listed) < self.limit:
                self.listed.append(aip.to_dict())
            else:
                self.truncated = True


def health(repo: Any, *, include_all: bool = False, limit: int = DEFAULT_AIP_LIMIT) -> HealthReport:
    """The replication health of the repository (read-only; one listing per store)."""
    config = repo.config
    settings: dict[str, StoreSettings] = dict(config.settings.stores)
    policy = {"copies": config.settings.policy.copies, "sites": config.settings.policy.sites}
    now = utcnow()

    def probe(name: str) -> tuple[bool, str | None]:
        try:
            store = repo.store(name)
        except PreservationError as e:
            return False, f"{e.code}: {e.message}"
        return reachable(store)

    names = list(settings)
    for name in names:  # open (not contact) every store here, not in the threads
        try:
            repo.store(name)
        except PreservationError:
            pass
    reach = dict(zip(names, bounded_map(probe, names, max(1, len(names))), strict=True))

    with repo.catalog.session() as s:
        states = rq.copy_state_counts(s)
        totals = rq.store_object_totals(s)
        oldest = rq.oldest_unverified(s)
        audits = rq.audit_times(s)
        errors = rq.recent_replication_errors(s)
        counts = rq.aip_counts(s)
        stale = {
            n: rq.stale_copies(s, n, now - timedelta(days=st.fixity_interval_days))
            for n, st in settings.items()
        }
        damaged = rq.damaged_copies(s)
        collector = _Collector(settings, policy, stale, include_all, limit, damaged)
        for rows in _by_aip(rq.aip_copy_rows(s)):
            collector.add(rows)

    stores = []
    for name, st in settings.items():
        by_state = states.get(name, {})
        old = oldest.get(name)
        audit_at, never = audits.get(name, (None, 0))
        error = errors.get(name)
        stores.append(
            {
                "name": name,
                "site": st.site,
                "role": st.role,
                "kind": st.type,
                "media": media_type(st),
                "cold": st.cold,
                "storage_class": getattr(st, "storage_class", None),
                "reachable": reach[name][0],
                "error": reach[name][1],
                "objects": totals.get(name, (0, 0))[0],
                "bytes": totals.get(name, (0, 0))[1],
                "copies": {k: by_state.get(k, 0) for k in sorted(by_state)},
                "copies_pending": by_state.get("pending", 0),
                "copies_failed": by_state.get("failed", 0),
                "oldest_unverified": None
                if old is None
                else {
                    "aip": old.aip_id,
                    "version": old.version,
                    "state": old.state,
                    "since": old.since.isoformat(),
                    "age_seconds": round((now - old.since).total_seconds(), 3),
                },
                "last_full_audit": None if never else _iso(audit_at),
                "copies_never_audited": never,
                "stale_copies": len(stale.get(name, set())),
                "fixity_interval_days": st.fixity_interval_days,
                "last_replication_error": None
                if error is None
                else {"error": error[0], "at": error[1]},
            }
        )

    sites = []
    for site in sorted({st.site for st in settings.values()}):
        members = [n for n, st in settings.items() if st.site == site]
        sites.append(
            {
                "site": site,
                "stores": members,
                "reachable": all(reach[n][0] for n in members),
                "verified_copies": collector.site_copies.get(site, 0),
                "aips": collector.site_aips.get(site, 0),
            }
        )

    ceiling_args = (
        len(settings),
        len({st.site for st in settings.values()}),
        len({media_type(st) for st in settings.values()}),
    )
    ceiling = ndsa_level(*ceiling_args)
    level = collector.lowest_level if collector.totals["active"] else ceiling
    # AIPs keep the repository from the next level only where the stores would allow it.
    blocking = collector.lowest if collector.totals["active"] and level < ceiling else []
    ndsa = {
        "level": level,
        "ceiling": ceiling,
        "ceiling_needs": next_level_needs(*ceiling_args),
        "next_level": level + 1 if level < 4 else None,
        "aips_by_level": {str(k): v for k, v in sorted(collector.levels.items())},
        "blocked_by_configuration": level >= ceiling and level < 4,
        "blocking_aips": blocking,
        "blocking_total": collector.lowest_count if blocking else 0,
        "mapping": "docs/health.md",
    }
    aip_totals = {**collector.totals, "deleted": counts.get("deleted", 0)}
    return HealthReport(
        generated_at=now,
        repository=config.settings.repository.name,
        policy=policy,
        stores=stores,
        sites=sites,
        aip_totals=aip_totals,
        aips=collector.listed,
        aips_truncated=collector.truncated,
        ndsa=ndsa,
    )
