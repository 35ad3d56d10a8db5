"""Controlled deletion of an AIP: two people, Object Lock respected, a tombstone kept.

1. ``request_deletion(repo, aip, reason=..., user=...)``: one person asks, with a reason.
   One open request per AIP.
2. ``approve_deletion(repo, request, user=...)``: a *different* person approves (the
   requester approving their own request is refused with SameApprover, DEL001, and the
   refusal is recorded). Then, before anything is removed, every object of the AIP on
   every configured store is listed and, on S3 stores, its retention read: while any
   object is under Object Lock retention (or a legal hold) nothing is deleted, the
   request becomes ``blocked`` and RetentionLocked (STO007) is raised. A store that
   cannot be reached stops the approval the same way (nothing deleted).
3. Otherwise the AIP becomes ``deleted`` in the catalogue (no more replication), every
   object of every version is removed from every store, and what remains is evidence:
   ``<aip>/events/*`` (the AIP's post-ingest events) stays on the stores, a
   ``<aip>/tombstone.json`` is written beside it, the catalogue keeps a tombstone row,
   the AIP row (state ``deleted``), its versions, files and events, and one PREMIS
   ``deletion`` event (agents: the software, the requester, the approver) is appended
   to the event chain and written to the stores.

A deletion cut short (a store down half-way, a kill: crash points
``delete:before-objects`` and ``delete:after-store``) leaves the request ``approved``;
approving it again (by anyone but the requester) finishes it. Every step is kept in
the request's ``history`` with its user and logged with the user names.

Only the current version of each S3 object is checked for retention; in a versioned
bucket an older, still locked version of an object (an object overwritten while
locked) makes the deletion stop with RetentionLocked on that store, and the request
stays ``approved`` until the retention ends.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from preservation.catalog import queries as q
from preservation.catalog import replication_queries as rq
from preservation.errors import (
    AipBusy,
    AipNotActive,
    DeletionAlreadyRequested,
    DeletionRequestClosed,
    ObjectNotFound,
    PreservationError,
    RetentionLocked,
    SameApprover,
    UsageError,
)
from preservation.eventlog import EVENTS_DIR, publish
from preservation.eventlog import append as append_event
from preservation.faults import checkpoint
from preservation.jobs import process_alive, software_agent
from preservation.model import Agent, Event, new_uuid, utcnow
from preservation.paths import join_key
from preservation.storage.base import Store
from preservation.storage.registry import as_s3
from preservation.storage.retry import retry

if TYPE_CHECKING:
    from preservation.storage.s3 import S3Store

log = logging.getLogger(__name__)

TOMBSTONE = "tombstone.json"


def tombstone_key(aip_id: str) -> str:
    return join_key(aip_id, TOMBSTONE)


def _user(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise UsageError("a user name is required (--user NAME)")
    return name


def _same_person(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _person(name: str) -> Agent:
    return Agent(f"person:{name}", name, "person")


def _kept(aip_id: str, key: str) -> bool:
    """Evidence that outlives the AIP: its event log and its tombstone."""
    return key.startswith(f"{aip_id}/{EVENTS_DIR}/") or key == tombstone_key(aip_id)


# --- requests ---------------------------------------------------------------------


def request_deletion(repo: Any, aip_id: str, *, reason: str, user: str) -> dict[str, Any]:
    """Record a deletion request by ``user``; returns it as data."""
    user = _user(user)
    reason = (reason or "").strip()
    if not reason:
        raise UsageError("a reason is required (--reason TEXT)")
    now = utcnow()
    with repo.catalog.session() as s:
        aip = q.require_aip(s, aip_id)
        if aip.state != "active":
            raise AipNotActive(aip=aip_id, state=aip.state)
        existing = rq.open_deletion_request(s, aip_id)
        if existing is not None:
            raise DeletionAlreadyRequested(aip=aip_id, request=existing.id, state=existing.state)
        request = rq.add_deletion_request(
            s, request_id=new_uuid(), aip_id=aip_id, reason=reason, user=user, when=now
        )
        data = rq.deletion_request_dict(request)
    log.info(
        "deletion of AIP %s requested by %s (request %s): %s",
        aip_id,
        user,
        data["id"],
        reason,
        extra={"user": user, "aip": aip_id, "request": data["id"], "action": "request"},
    )
    return data


def get_deletion_request(repo: Any, request_id: str) -> dict[str, Any]:
    with repo.catalog.session() as s:
        return rq.deletion_request_dict(rq.require_deletion_request(s, request_id))


# --- approval and deletion --------------------------------------------------------


@dataclass
class DeletionResult:
    request: dict[str, Any]
    aip: str
    objects_removed: dict[str, int] = field(default_factory=dict)
    tombstone: dict[str, Any] | None = None
    event: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "aip": self.aip,
            "deleted": self.request["state"] == "completed",
            "objects_removed": dict(self.objects_removed),
            "tombstone": self.tombstone,
            "event": self.event,
        }


@dataclass(frozen=True)
class _Approval:
    aip_id: str
    requested_by: str
    requested_at: str
    reason: str


@dataclass(frozen=True)
class _Locked:
    store: str
    key: str
    until: str


def retention_until(store: S3Store, key: str, now: datetime | None = None) -> str | None:
    """When the retention of the current version of ``key`` ends (ISO), a legal-hold
    note, or None when it may be deleted now."""
    from preservation.storage.s3 import translate_error

    full = join_key(store.prefix, key) if store.prefix else key

    def attempt() -> Any:
        try:
            return store.client.head_object(Bucket=store.bucket, Key=full)
        except Exception as e:  # vendor errors, translated at this boundary
            raise translate_error(
                e, store=store.name, bucket=store.bucket, key=key, op="head_object"
            ) from e

    resp = retry(attempt, attempts=store.settings.max_attempts)
    if resp.get("ObjectLockLegalHoldStatus") == "ON":
        return "a legal hold is lifted"
    until = resp.get("ObjectLockRetainUntilDate")
    if isinstance(until, datetime) and until > (now or datetime.now(UTC)):
        return until.astimezone(UTC).isoformat()
    return None


class _Deletion:
    def __init__(self, repo: Any, request_id: str, user: str) -> None:
        self.repo = repo
        self.request_id = request_id
        self.user = user
        self.software = software_agent()

    def _history(self, action: str, note: str = "", **changes: Any) -> dict[str, Any]:
        """Append to the request's history (and set ``changes``) in one transaction."""
        with self.repo.catalog.session() as s:
            request = rq.require_deletion_request(s, self.request_id, lock=True)
            rq.add_history(request, rq.history_entry(utcnow(), self.user, action, note))
            for name, value in changes.items():
                setattr(request, name, value)
            return rq.deletion_request_dict(request)

    def check(self) -> _Approval:
        """Who may approve, and whether the AIP can be deleted now."""
        refused: tuple[str, str] | None = None
        with self.repo.catalog.session() as s:
            request = rq.require_deletion_request(s, self.request_id, lock=True)
            if request.state == "completed":
                raise DeletionRequestClosed(request=request.id, state=request.state)
            if _same_person(request.requested_by, self.user):
                rq.add_history(
                    request,
                    rq.history_entry(
                        utcnow(),
                        self.user,
                        "approval refused",
                        "the requester cannot approve their own request",
                    ),
                )
                refused = (request.aip_id, request.requested_by)
            else:
                aip = q.require_aip(s, request.aip_id)
                if aip.state != "active" and request.state != "approved":
                    raise AipNotActive(aip=aip.id, state=aip.state)
                busy = rq.live_replication(s, request.aip_id, process_alive)
                if busy is not None:
                    raise AipBusy(aip=request.aip_id, detail=f"{busy.host} pid {busy.pid}")
                approval = _Approval(
                    request.aip_id,
                    request.requested_by,
                    request.requested_at.isoformat(),
                    request.reason,
                )
        if refused is not None:
            log.warning(
                "approval of deletion request %s (AIP %s) by %s refused: the request was"
                " made by %s, and a different person must approve it",
                self.request_id,
                refused[0],
                self.user,
                refused[1],
                extra={"user": self.user, "request": self.request_id, "action": "refused"},
            )
            raise SameApprover(request=self.request_id, user=refused[1])
        return approval

    def inventory(self, aip_id: str) -> tuple[dict[str, list[str]], list[_Locked]]:
        """Every object of the AIP to remove, per configured store, and those locked."""
        now = datetime.now(UTC)
        objects: dict[str, list[str]] = {}
        locked: list[_Locked] = []
        for name, store in self.repo.stores().items():
            keys = [i.key for i in store.list(f"{aip_id}/") if not _kept(aip_id, i.key)]
            objects[name] = keys
            s3 = as_s3(store)
            if s3 is not None:
                for key in keys:
                    until = retention_until(s3, key, now)
                    if until is not None:
                        locked.append(_Locked(name, key, until))
        return objects, locked

    def _event(self, approval: _Approval, outcome: str, outcome_detail: str) -> Event:
        return Event(
            type="deletion",
            outcome=outcome,  # type: ignore[arg-type]
            detail=(
                f"deletion of AIP {approval.aip_id} (request {self.request_id}), requested by"
                f" {approval.requested_by} at {approval.requested_at} for the reason:"
                f" {approval.reason}; approved by {self.user}"
            ),
            outcome_detail=outcome_detail,
            agents=[
                (self.software.identifier, "executing program"),
                (_person(approval.requested_by).identifier, "requester"),
                (_person(self.user).identifier, "authorizer"),
            ],
            objects=[f"urn:uuid:{approval.aip_id}"],
        )

    def _record_event(
        self,
        approval: _Approval,
        event: Event,
        publish_to: list[str],
        history: tuple[str, str],
        tombstone: dict[str, Any] | None = None,
        **request_changes: Any,
    ) -> dict[str, Any]:
        """One transaction: the event, the request's new state and history entry, and
        the tombstone row; then the event document goes to ``publish_to``."""
        agents = [self.software, _person(approval.requested_by), _person(self.user)]
        with self.repo.catalog.session() as s:
            request = rq.require_deletion_request(s, self.request_id, lock=True)
            doc = append_event(s, event, aip_id=approval.aip_id, agents=agents)
            rq.add_history(request, rq.history_entry(utcnow(), self.user, *history))
            for name, value in request_changes.items():
                setattr(request, name, value)
            if tombstone is not None:
                rq.add_tombstone(
                    s,
                    aip_id=approval.aip_id,
                    request=request,
                    when=request_changes.get("completed_at") or utcnow(),
                    event_id=event.identifier,
                    document=tombstone,
                )
            data = rq.deletion_request_dict(request)
        if doc is not None:
            stores = [self.repo.store(n) for n in publish_to]
            failed = publish(stores, approval.aip_id, event, doc)
            if failed:
                log.warning("deletion event not written to %s", ", ".join(failed))
        return data

    def block(self, approval: _Approval, locked: list[_Locked]) -> RetentionLocked:
        first = locked[0]
        stores = sorted({lk.store for lk in locked})
        detail = (
            f"{len(locked)} object(s) under Object Lock retention on {', '.join(stores)};"
            f" first: {first.store}:{first.key} until {first.until}"
        )
        now = utcnow()
        event = self._event(approval, "failure", f"refused, nothing deleted: {detail}")
        with self.repo.catalog.session() as s:
            holders = q.stores_with_copies(s, approval.aip_id)
        self._record_event(
            approval,
            event,
            holders,
            ("blocked", detail),
            state="blocked",
            approved_by=self.user,
            approved_at=now,
            detail=detail,
        )
        log.warning(
            "deletion of AIP %s (request %s, requested by %s, approved by %s) blocked: %s",
            approval.aip_id,
            self.request_id,
            approval.requested_by,
            self.user,
            detail,
            extra={"user": self.user, "request": self.request_id, "action": "blocked"},
        )
        return RetentionLocked(
            f"{first.store}: {first.key} is under object-lock retention until {first.until}"
            f" ({len(locked)} locked object(s)); nothing was deleted, request"
            f" {self.request_id} stays approved but blocked",
            store=first.store,
            key=first.key,
            until=first.until,
        )

    def run(self) -> DeletionResult:
        approval = self.check()
        aip_id = approval.aip_id
        try:
            objects, locked = self.inventory(aip_id)
        except PreservationError as e:
            self._history("approval failed", f"{e.code}: {e.message}; nothing deleted")
            raise
        if locked:
            raise self.block(approval, locked)

        now = utcnow()
        with self.repo.catalog.session() as s:
            request = rq.require_deletion_request(s, self.request_id, lock=True)
            rq.add_history(request, rq.history_entry(now, self.user, "approve"))
            request.state = "approved"
            request.approved_by = self.user
            request.approved_at = now
            request.detail = None
            q.require_aip(s, aip_id).state = "deleted"
            rq.cancel_queued_copies(s, aip_id)
        log.warning(
            "deletion of AIP %s approved by %s (request %s, requested by %s): removing %d objects",
            aip_id,
            self.user,
            self.request_id,
            approval.requested_by,
            sum(len(v) for v in objects.values()),
            extra={"user": self.user, "request": self.request_id, "action": "approve"},
        )
        checkpoint("delete:before-objects")
        removed: dict[str, int] = {}
        try:
            for name, keys in objects.items():
                removed[name] = self._remove(self.repo.store(name), keys)
                with self.repo.catalog.session() as s:
                    rq.mark_store_copies_deleted(s, aip_id, name)
                checkpoint("delete:after-store")
            event = self._event(
                approval,
                "success",
                f"{sum(removed.values())} objects removed from"
                f" {', '.join(f'{n} ({c})' for n, c in removed.items())}; event log and"
                " tombstone kept",
            )
            document = self._tombstone(approval, removed, event.identifier)
            data = json.dumps(document, ensure_ascii=False, sort_keys=True, indent=1).encode()
            for store in self.repo.stores().values():
                store.put(tombstone_key(aip_id), io.BytesIO(data), size=len(data), overwrite=True)
        except PreservationError as e:
            self._history(
                "deletion incomplete",
                f"{e.code}: {e.message}",
                detail=f"incomplete: {e.code}: {e.message}; approve again to finish",
            )
            log.error("deletion of AIP %s stopped: %s: %s", aip_id, e.code, e.message)
            raise
        data_out = self._record_event(
            approval,
            event,
            list(self.repo.config.settings.stores),
            ("deleted", f"{sum(removed.values())} objects removed"),
            tombstone=document,
            state="completed",
            completed_at=utcnow(),
            detail=None,
        )
        log.warning(
            "AIP %s deleted (request %s): requested by %s, approved by %s; %d objects removed",
            aip_id,
            self.request_id,
            approval.requested_by,
            self.user,
            sum(removed.values()),
            extra={"user": self.user, "request": self.request_id, "action": "deleted"},
        )
        return DeletionResult(data_out, aip_id, removed, document, event.identifier)

    def _remove(self, store: Store, keys: list[str]) -> int:
        n = 0
        for key in keys:
            try:
                store.delete(key)
            except ObjectNotFound:
                continue
            n += 1
        return n

    def _tombstone(
        self, approval: _Approval, removed: Mapping[str, int], event_id: str
    ) -> dict[str, Any]:
        with self.repo.catalog.session() as s:
            aip = q.require_aip(s, approval.aip_id)
            versions = rq.version_summaries(s, approval.aip_id)
            ident = {"reference_code": aip.reference_code, "title": aip.title}
        return {
            "type": "preservation tombstone",
            "aip": approval.aip_id,
            **ident,
            "deleted_at": utcnow().isoformat(),
            "request": self.request_id,
            "reason": approval.reason,
            "requested_by": approval.requested_by,
            "requested_at": approval.requested_at,
            "approved_by": self.user,
            "versions": versions,
            "objects_removed": dict(removed),
            "event": event_id,
            "kept": [f"{approval.aip_id}/{EVENTS_DIR}/", tombstone_key(approval.aip_id)],
        }


def approve_deletion(repo: Any, request_id: str, *, user: str) -> DeletionResult:
    """Approve a deletion request as ``user`` (not the requester) and carry it out."""
    return _Deletion(repo, request_id, _user(user)).run()


__all__ = [
    "DeletionResult",
    "approve_deletion",
    "get_deletion_request",
    "request_deletion",
    "retention_until",
    "tombstone_key",
]
