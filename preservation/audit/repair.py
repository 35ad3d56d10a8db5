"""Repair: a bad copy of a file is replaced from a good copy on another store.

``preservation repair INCIDENT`` (or ``--all``, or automatically after an audit when
``audit.auto_repair`` is on) takes one open incident and, holding the lease of the
damaged store (no audit of that store runs meanwhile):

1. checks the damaged object again: if it is intact now, the incident is closed
   ("closed", nothing changed);
2. looks for a source: the other copies of the file, those whose last check passed
   and most recently verified first; cold stores are skipped (not readable without a
   restore). Each candidate is *re-verified now* (read and hashed against the
   catalogue); a candidate found bad is recorded as a failure of its own (file copy
   outcome and a new incident) and the next one is tried;
3. moves the damaged object to ``quarantine/<incident>/<original key>`` on the same
   store (never deleted; an object under object-lock retention cannot move and is
   overwritten instead, its old version kept by the lock);
4. copies the source over (the store verifies the digests end to end on write), then
   reads the result back and verifies it;
5. records, in one transaction: both file copies verified now, the incident
   ``repaired`` with the evidence, the copy's state, and a PREMIS event.

With no good copy left the incident becomes ``critical``, its note says so in capital
letters, a critical alert goes out, a failed PREMIS event is recorded, and the damaged
object is left exactly where it is.

The PREMIS event type of a repair is ``replication`` (Library of Congress event-type
vocabulary): what a repair does is make a new copy of a verified object from another
store. Its detail starts with ``repair`` and names the incident, the source and target
stores and the quarantine key; its outcome detail gives the digest re-verified on the
source before the copy and on the target after it. ``unexpected`` objects (no part of
any AIP) are moved to quarantine the same way; their record is the incident's evidence.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preservation.audit.codes import OUTCOMES, code_of
from preservation.audit.fixity import CheckResult, FileTask, check_content
from preservation.audit.incidents import Finding, record_findings
from preservation.errors import (
    NotRepairable,
    ObjectExists,
    ObjectNotFound,
    PreservationError,
    RetentionLocked,
)
from preservation.faults import checkpoint
from preservation.jobs import software_agent
from preservation.model import Event, utcnow
from preservation.paths import join_key

if TYPE_CHECKING:
    from preservation.catalog.audit_queries import FileRef
    from preservation.repository import Repository
    from preservation.storage.base import Store

log = logging.getLogger(__name__)

QUARANTINE_PREFIX = "quarantine"
SOURCE_STATES = ("stored", "verified")


def quarantine_key(incident: int, key: str, suffix: str | None = None) -> str:
    folder = str(incident) if suffix is None else f"{incident}.{suffix}"
    return join_key(QUARANTINE_PREFIX, folder, key)


@dataclass
class RepairResult:
    incident: int
    state: str  # repaired | closed | critical | failed
    store: str | None
    path: str | None
    source: str | None = None
    quarantine_key: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RepairReport:
    results: list[RepairResult] = field(default_factory=list)
    alert: dict[str, Any] | None = None

    def count(self, state: str) -> int:
        return sum(1 for r in self.results if r.state == state)

    @property
    def ok(self) -> bool:
        return all(r.state in ("repaired", "closed") for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "repaired": self.count("repaired"),
            "closed": self.count("closed"),
            "critical": self.count("critical"),
            "failed": self.count("failed"),
            "results": [r.to_dict() for r in self.results],
            "alert": self.alert,
        }


def repair_incidents(
    repo: Repository,
    incident_ids: Sequence[int] | None = None,
    *,
    store: str | None = None,
    hold_lease: bool = True,
) -> RepairReport:
    """Repair the given incidents, or every open repairable one (of ``store``).

    ``hold_lease=False`` when the caller already holds the leases of the stores
    involved (an audit repairing what it found).
    """
    from preservation.catalog import audit_queries as aq

    with repo.catalog.session() as s:
        if incident_ids is None:
            incidents = [
                i
                for i in aq.list_incidents(s, store_name=store)
                if OUTCOMES.get(i["kind"]) is not None and OUTCOMES[i["kind"]].repairable
            ]
        else:
            incidents = [aq.get_incident(s, i) for i in incident_ids]
    if incident_ids is not None:
        for inc in incidents:
            _check_repairable(repo, inc)
    report = RepairReport()
    by_store: dict[str, list[dict[str, Any]]] = {}
    for inc in incidents:
        by_store.setdefault(inc["store"], []).append(inc)
    for name, group in by_store.items():
        with _store_lease(repo, name, hold_lease):
            for inc in group:
                report.results.append(_repair_one(repo, inc))
    report.alert = _alert(repo, report)
    return report


@contextlib.contextmanager
def _store_lease(repo: Repository, store: str, take: bool) -> Iterator[None]:
    if not take:
        yield
        return
    from preservation.audit.lease import lease

    with lease(repo, f"audit:{store}"):
        yield


def _check_repairable(repo: Repository, inc: dict[str, Any]) -> None:
    if inc["state"] != "open":
        raise NotRepairable(incident=inc["id"], reason=f"it is {inc['state']}, not open")
    info = OUTCOMES.get(inc["kind"])
    if info is None or not info.repairable:
        raise NotRepairable(
            incident=inc["id"],
            reason=(
                f"a {inc['kind']} incident is not repaired from a copy"
                + (
                    ": the catalogue and the bag manifest disagree and a person must decide"
                    " which is right"
                    if inc["kind"] == "manifest"
                    else ""
                )
            ),
        )
    if inc["store"] not in repo.config.settings.stores:
        raise NotRepairable(
            incident=inc["id"], reason=f"store {inc['store']!r} is no longer configured"
        )


def _repair_one(repo: Repository, inc: dict[str, Any]) -> RepairResult:
    try:
        _check_repairable(repo, inc)
    except NotRepairable as e:
        return RepairResult(inc["id"], "failed", inc["store"], inc["path"], detail=e.message)
    if inc["kind"] == "unexpected":
        return _quarantine_unexpected(repo, inc)
    return _Repair(repo, inc).run()


class _Repair:
    def __init__(self, repo: Repository, inc: dict[str, Any]) -> None:
        from preservation.audit.runner import object_key
        from preservation.catalog import audit_queries as aq

        self.repo = repo
        self.inc = inc
        self.target_name: str = inc["store"]
        self.target = repo.store(self.target_name)
        with repo.catalog.session() as s:
            self.ref: FileRef = aq.file_ref(s, inc["version_id"], inc["path"])
            self.copies = aq.copies_of_file(s, self.ref.file_id)
        self.key = object_key(self.ref.aip_id, self.ref.origin_version, self.ref.path)
        self.expected = {"sha256": self.ref.sha256}
        if self.ref.sha512:
            self.expected["sha512"] = self.ref.sha512
        self.attempts: list[dict[str, Any]] = []

    def task(self, copy_id: int, file_copy_id: int) -> FileTask:
        r = self.ref
        return FileTask(
            file_copy_id=file_copy_id,
            copy_id=copy_id,
            version_id=r.version_id,
            aip_id=r.aip_id,
            version=r.version,
            path=r.path,
            key=self.key,
            kind="payload" if r.path.startswith("data/") else "tag",
            size=r.size,
            expected=dict(self.expected),
            file_uuid=r.file_uuid,
        )

    def result(self, state: str, detail: str, **kw: Any) -> RepairResult:
        return RepairResult(
            self.inc["id"], state, self.target_name, self.inc["path"], detail=detail, **kw
        )

    def run(self) -> RepairResult:
        target_copy = next((c for c in self.copies if c.store_name == self.target_name), None)
        if target_copy is None:
            return self.result(
                "failed", f"no copy of this file on {self.target_name} in the catalogue"
            )
        target_task = self.task(target_copy.copy_id, target_copy.file_copy_id)
        now_check = check_content(self.target, target_task, tuple(self.expected))
        if now_check.outcome == "pass":
            return self._close_intact(now_check)
        source = self._find_source()
        if source is None:
            return self._critical()
        src_store, src_check = source
        try:
            q_key, locked = self._quarantine()
            checkpoint("repair:after-quarantine")
            self._copy(src_store, overwrite=locked)
        except PreservationError as e:
            return self._failed(f"{e.code}: {e.message}", src_store.name)
        after = check_content(self.target, target_task, tuple(self.expected))
        if after.outcome != "pass":
            return self._failed(
                f"the copied object did not verify: {after.outcome} ({after.detail})",
                src_store.name,
                q_key,
            )
        checkpoint("repair:before-record")
        return self._record(src_check, after, q_key, locked)

    # -- steps -------------------------------------------------------------------------
    def _find_source(self) -> tuple[Store, CheckResult] | None:
        configured = self.repo.config.settings.stores
        for c in self.copies:
            if c.store_name == self.target_name:
                continue
            note: dict[str, Any] = {"store": c.store_name, "last_outcome": c.outcome}
            if c.copy_state not in SOURCE_STATES:
                note["skipped"] = f"copy is {c.copy_state}"
            elif c.store_name not in configured:
                note["skipped"] = "store no longer configured"
            elif configured[c.store_name].cold:
                note["skipped"] = "cold store: not readable without a restore"
            if "skipped" in note:
                self.attempts.append(note)
                continue
            store = self.repo.store(c.store_name)
            check = check_content(store, self.task(c.copy_id, c.file_copy_id), tuple(self.expected))
            note["verified_now"] = check.outcome
            if check.outcome != "pass":
                note["detail"] = check.detail
            self.attempts.append(note)
            self._record_source_check(check, c.store_name)
            if check.outcome == "pass":
                return store, check
        return None

    def _record_source_check(self, check: CheckResult, store: str) -> None:
        """A source re-verified during repair is evidence like any audit check."""
        from preservation.catalog import audit_queries as aq

        info = OUTCOMES[check.outcome]
        now = utcnow()
        with self.repo.catalog.session() as s:
            aq.record_checks(
                s,
                [
                    {
                        "id": check.task.file_copy_id,
                        "last_verified_at": check.started,
                        "outcome": info.file_copy_outcome,
                        "detail": (
                            f"verified during repair of incident {self.inc['id']}"
                            if check.outcome == "pass"
                            else f"{info.code} {check.outcome}: {check.detail} (during repair of"
                            f" incident {self.inc['id']})"
                        ),
                    }
                ],
            )
            if check.outcome != "pass":
                record_findings(
                    s,
                    [
                        Finding(
                            kind=check.outcome,
                            aip_id=self.ref.aip_id,
                            version_id=self.ref.version_id,
                            version=self.ref.version,
                            store=store,
                            path=self.ref.path,
                            key=self.key,
                            detail=check.detail,
                            file_id=self.ref.file_id,
                            evidence={"found_by": f"repair of incident {self.inc['id']}"},
                        )
                    ],
                    run_id=None,
                    when=now,
                )

    def _quarantine(self) -> tuple[str | None, bool]:
        """Move the damaged object aside; (quarantine key or None, locked by retention)."""
        try:
            self.target.head(self.key)
        except ObjectNotFound:
            return None, False
        q_key = quarantine_key(self.inc["id"], self.key)
        try:
            self.target.move(self.key, q_key)
        except ObjectExists:
            q_key = quarantine_key(self.inc["id"], self.key, utcnow().strftime("%Y%m%dT%H%M%SZ"))
            self.target.move(self.key, q_key)
        except RetentionLocked as e:
            log.warning(
                "%s: cannot move %s to quarantine (%s); overwriting", self.target_name, self.key, e
            )
            return None, True
        return q_key, False

    def _copy(self, source: Store, *, overwrite: bool) -> None:
        with source.open(self.key) as stream:
            self.target.put(
                self.key,
                stream,
                digests=self.expected,
                algorithms=tuple(self.expected),
                size=self.ref.size,
                overwrite=overwrite,
            )

    def _close_intact(self, check: CheckResult) -> RepairResult:
        from preservation.catalog import audit_queries as aq

        now = utcnow()
        with self.repo.catalog.session() as s:
            aq.record_checks(
                s,
                [
                    {
                        "id": check.task.file_copy_id,
                        "last_verified_at": check.started,
                        "outcome": "pass",
                        "detail": f"intact on re-check for incident {self.inc['id']}",
                    }
                ],
            )
            aq.update_incident(
                s,
                self.inc["id"],
                state="closed",
                closed_at=now,
                evidence={"closed": {"at": now.isoformat(), "reason": "intact on re-check"}},
            )
            aq.refresh_copy_states(s, [check.task.copy_id], now)
        return self.result("closed", "the object is intact on re-check; nothing was changed")

    def _critical(self) -> RepairResult:
        from preservation.catalog import audit_queries as aq

        now = utcnow()
        stores = (
            ", ".join(
                f"{a['store']} ({a.get('verified_now') or a.get('skipped')})" for a in self.attempts
            )
            or "no other copy in the catalogue"
        )
        note = (
            f"NO GOOD COPY LEFT of {self.ref.path} (AIP {self.ref.aip_id} v{self.ref.version}):"
            f" {code_of(self.inc['kind'])} {self.inc['kind']} on {self.target_name}; other"
            f" copies: {stores}"
        )
        with self.repo.catalog.session() as s:
            aq.update_incident(
                s,
                self.inc["id"],
                severity="critical",
                note=note,
                evidence={
                    "repair": {
                        "at": now.isoformat(),
                        "result": "no good copy",
                        "attempts": self.attempts,
                    }
                },
            )
        self._event(
            "failure",
            f"repair (incident {self.inc['id']}) of {self.ref.path} on store {self.target_name}:"
            " not possible",
            note,
        )
        log.critical("%s", note)
        return self.result("critical", note)

    def _failed(self, detail: str, source: str | None, q_key: str | None = None) -> RepairResult:
        from preservation.catalog import audit_queries as aq

        now = utcnow()
        with self.repo.catalog.session() as s:
            aq.update_incident(
                s,
                self.inc["id"],
                evidence={
                    "repair": {
                        "at": now.isoformat(),
                        "result": "failed",
                        "detail": detail,
                        "source": source,
                        "quarantine_key": q_key,
                        "attempts": self.attempts,
                    }
                },
            )
        log.error("repair of incident %s failed: %s", self.inc["id"], detail)
        return self.result("failed", detail, source=source, quarantine_key=q_key)

    def _record(
        self, src: CheckResult, after: CheckResult, q_key: str | None, locked: bool
    ) -> RepairResult:
        from preservation.catalog import audit_queries as aq

        now = utcnow()
        src_name = next(c.store_name for c in self.copies if c.copy_id == src.task.copy_id)
        where = (
            f"the damaged object was moved to {q_key}"
            if q_key
            else (
                "the object was missing"
                if self.inc["kind"] == "missing" or not locked
                else "the damaged object is kept as an older version (object lock)"
            )
        )
        detail = (
            f"repair (incident {self.inc['id']}): {self.ref.path} of AIP {self.ref.aip_id}"
            f" v{self.ref.version} copied from store {src_name} to store {self.target_name}"
            f" after a {self.inc['kind']} finding; {where}"
        )
        digests = ", ".join(f"{a} {d}" for a, d in self.expected.items())
        outcome_detail = (
            f"source re-verified before the copy and the result verified after it: {digests};"
            f" {self.ref.size} bytes"
        )
        with self.repo.catalog.session() as s:
            aq.record_checks(
                s,
                [
                    {
                        "id": after.task.file_copy_id,
                        "last_verified_at": after.started,
                        "outcome": "pass",
                        "detail": f"repaired from {src_name} (incident {self.inc['id']})",
                    }
                ],
            )
            aq.update_incident(
                s,
                self.inc["id"],
                state="repaired",
                closed_at=now,
                evidence={
                    "repair": {
                        "at": now.isoformat(),
                        "result": "repaired",
                        "source": src_name,
                        "quarantine_key": q_key,
                        "attempts": self.attempts,
                        "verified": dict(self.expected),
                    }
                },
            )
            aq.refresh_copy_states(s, [after.task.copy_id], now)
        self._event("success", detail, outcome_detail)
        return self.result("repaired", detail, source=src_name, quarantine_key=q_key)

    def _event(self, outcome: str, detail: str, outcome_detail: str) -> None:
        from preservation import eventlog

        agent = software_agent()
        event = Event(
            type="replication",
            outcome=outcome,  # type: ignore[arg-type]
            detail=detail,
            outcome_detail=outcome_detail,
            agents=[(agent.identifier, "executing program")],
            objects=[self.ref.file_uuid] if self.ref.file_uuid else [],
        )
        eventlog.record(
            self.repo,
            event,
            aip_id=self.ref.aip_id,
            version_id=self.ref.version_id,
            version=self.ref.version,
            store_name=self.target_name,
            agents=[agent],
        )


def _quarantine_unexpected(repo: Repository, inc: dict[str, Any]) -> RepairResult:
    from preservation.catalog import audit_queries as aq

    key = (inc.get("evidence") or {}).get("key")
    store = repo.store(inc["store"])
    now = utcnow()
    if not key:
        return RepairResult(
            inc["id"],
            "failed",
            inc["store"],
            inc["path"],
            detail="the incident does not name the object's key",
        )
    q_key: str | None = quarantine_key(inc["id"], key)
    try:
        assert q_key is not None
        store.move(key, q_key)
        detail = f"unexpected object {key} moved to {q_key}"
    except ObjectNotFound:
        q_key = None
        detail = f"unexpected object {key} is gone already"
    except PreservationError as e:
        return RepairResult(
            inc["id"], "failed", inc["store"], inc["path"], detail=f"{e.code}: {e.message}"
        )
    with repo.catalog.session() as s:
        aq.update_incident(
            s,
            inc["id"],
            state="repaired",
            closed_at=now,
            evidence={"repair": {"at": now.isoformat(), "result": detail, "quarantine_key": q_key}},
        )
    return RepairResult(
        inc["id"], "repaired", inc["store"], inc["path"], quarantine_key=q_key, detail=detail
    )


def _alert(repo: Repository, report: RepairReport) -> dict[str, Any] | None:
    from preservation.audit.alerts import Alert, alert_message

    if not report.results:
        return None
    critical = [r for r in report.results if r.state == "critical"]
    failed = [r for r in report.results if r.state == "failed"]
    severity = "critical" if critical else ("error" if failed else "info")
    subject = (
        f"repair: {report.count('repaired')} repaired, {report.count('closed')} found intact,"
        f" {len(failed)} failed, {len(critical)} without a good copy"
    )
    if critical:
        subject += " -- CRITICAL: NO GOOD COPY LEFT"
    alert = Alert(
        kind="repair",
        severity=severity,
        subject=subject,
        summary={k: v for k, v in report.to_dict().items() if k not in ("results", "alert")},
        items=[
            {
                "incident": r.incident,
                "severity": "critical" if r.state == "critical" else r.state,
                "kind": r.state,
                "store": r.store,
                "path": r.path,
                "detail": r.detail,
                "new": True,
            }
            for r in report.results
        ],
    )
    return alert_message(repo, alert).to_dict()
