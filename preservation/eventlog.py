"""Post-ingest PREMIS events: into the catalogue's hash chain and onto the stores.

Ingest-time events live in each AIP version's METS. Everything that happens later
(replication, fixity checks, repairs, migrations, metadata changes, deletions) is
appended to the catalogue's tamper-evident chain *and* written as one small immutable
JSON object per event beside the AIP on the stores that hold it:

    <aip-uuid>/events/<YYYYMMDDTHHMMSSffffffZ>-<event-uuid>.json

so that the stores alone can rebuild the catalogue. The object carries the event,
its AIP/version/store, and the chain hashes as they were when it was appended.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from preservation.errors import PreservationError
from preservation.model import Agent, Event
from preservation.paths import join_key

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from preservation.repository import Repository
    from preservation.storage.base import Store

log = logging.getLogger(__name__)

EVENTS_DIR = "events"


def event_key(aip_id: str, event: Event) -> str:
    stamp = event.datetime.strftime("%Y%m%dT%H%M%S%fZ")
    return join_key(aip_id, EVENTS_DIR, f"{stamp}-{event.identifier}.json")


def event_document(
    event: Event,
    *,
    aip_id: str,
    version: int | None,
    store_name: str | None,
    prev_hash: str,
    hash: str,
    version_id: int | None = None,
    agents: Sequence[Agent] = (),
) -> bytes:
    doc: dict[str, Any] = {
        "event": event.to_dict(),
        "aip": aip_id,
        "version": version,
        "version_id": version_id,
        "store": store_name,
        "prev_hash": prev_hash,
        "hash": hash,
    }
    if agents:  # who the agents are (a rebuilt catalogue needs their names and types)
        doc["agent_records"] = [
            {
                "id": a.identifier,
                "name": a.name,
                "type": a.type,
                "version": a.version,
                "note": a.note,
            }
            for a in agents
        ]
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")


def append(
    session: Session,
    event: Event,
    *,
    aip_id: str | None,
    version_id: int | None = None,
    version: int | None = None,
    store_name: str | None = None,
    agents: Sequence[Agent] = (),
) -> bytes | None:
    """Append to the catalogue chain inside the caller's transaction.

    Returns the JSON document to write to the stores once the transaction has
    committed (None for events not tied to an AIP).
    """
    from preservation.catalog.events import append_event, upsert_agent

    for agent in agents:
        upsert_agent(session, agent)
    row = append_event(session, event, aip_id=aip_id, version_id=version_id, store_name=store_name)
    if aip_id is None:
        return None
    return event_document(
        event,
        aip_id=aip_id,
        version=version,
        store_name=store_name,
        prev_hash=row.prev_hash,
        hash=row.hash,
        version_id=version_id,
        agents=agents,
    )


def publish(stores: Iterable[Store], aip_id: str, event: Event, document: bytes) -> list[str]:
    """Write the event document to each store; returns the stores that failed.

    A store that cannot take the document now does not undo the event (the catalogue
    has it); the failure is logged and returned so that the caller can report it.
    """
    failed: list[str] = []
    key = event_key(aip_id, event)
    for store in stores:
        try:
            store.put(key, io.BytesIO(document), size=len(document), overwrite=True)
        except PreservationError as e:
            log.warning("event %s not written to %s: %s", event.identifier, store.name, e)
            failed.append(store.name)
    return failed


def publish_recorded(
    repo: Repository, aip_id: str, version: int, stores: Sequence[str]
) -> list[str]:
    """Publish the chain documents of the events the catalogue holds for one AIP
    version (ingest records its events with the AIP; this writes them beside it once
    the commit is done). Returns the stores a document failed to reach; like
    :func:`publish`, never raises for store or catalogue trouble (it is logged): the
    events are in the catalogue already."""
    from preservation.catalog.recovery_queries import version_events

    try:
        with repo.catalog.session() as s:
            rows = version_events(s, aip_id, version)
        targets = [repo.store(n) for n in stores]
    except PreservationError as e:
        log.warning("events of %s v%d not published: %s", aip_id, version, e)
        return sorted(stores)
    failed: set[str] = set()
    for row in rows:
        doc = event_document(
            row.event,
            aip_id=aip_id,
            version=version,
            store_name=row.store_name,
            prev_hash=row.prev_hash,
            hash=row.hash,
            version_id=row.version_id,
        )
        failed.update(publish(targets, aip_id, row.event, doc))
    return sorted(failed)


def record(
    repo: Repository,
    event: Event,
    *,
    aip_id: str,
    version_id: int | None = None,
    version: int | None = None,
    store_name: str | None = None,
    agents: Sequence[Agent] = (),
    publish_to: Sequence[str] | None = None,
) -> list[str]:
    """Append an event (own transaction) and publish it to the stores holding the AIP.

    ``publish_to`` names the stores; by default every configured store that has a
    copy of the AIP in the catalogue. Returns the stores the document failed to reach.
    """
    from preservation.catalog.queries import stores_with_copies

    with repo.catalog.session() as s:
        doc = append(
            s,
            event,
            aip_id=aip_id,
            version_id=version_id,
            version=version,
            store_name=store_name,
            agents=agents,
        )
        names = list(publish_to) if publish_to is not None else stores_with_copies(s, aip_id)
    assert doc is not None
    configured = set(repo.config.settings.stores)
    return publish([repo.store(n) for n in names if n in configured], aip_id, event, doc)


def copy_log(source: Store, target: Store, aip_id: str, *, tombstone: bool = False) -> int:
    """Copy the AIP's event documents (and, with ``tombstone``, a deletion tombstone)
    that ``target`` lacks from ``source``; returns how many were written.

    Each document is read whole (they are small), hashed, and written with its
    SHA-256 so that the target verifies the bytes end to end. Replication calls this
    after a copy is verified, and store resync for every AIP, so a replica's event
    log is as complete as the primary's and the replica alone can rebuild the
    catalogue.
    """
    import hashlib

    from preservation.storage.deletion import tombstone_key

    prefix = join_key(aip_id, EVENTS_DIR) + "/"
    have = {i.key for i in target.list(prefix)}
    wanted = [i.key for i in source.list(prefix) if i.key not in have]
    tomb = tombstone_key(aip_id)
    if tombstone and source.exists(tomb) and not target.exists(tomb):
        wanted.append(tomb)
    for key in wanted:
        with source.open(key) as fh:
            data = fh.read()
        target.put(
            key,
            io.BytesIO(data),
            digests={"sha256": hashlib.sha256(data).hexdigest()},
            size=len(data),
            overwrite=True,
        )
    return len(wanted)
