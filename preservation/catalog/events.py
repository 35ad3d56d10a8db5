"""The tamper-evident event log: PREMIS events chained by hashes.

Each row of ``events`` carries ``prev_hash`` (the ``hash`` of the row before it in
``seq`` order, or 64 zeros for the first) and ``hash`` = sha256 over the canonical
bytes of its own fields plus ``prev_hash``. Changing, removing or reordering a row
breaks the chain at that row; :func:`verify_chain` finds the first break.

Canonical bytes (version 1): UTF-8 JSON of an object with sorted keys and no
whitespace, keys ``v`` (1), ``id``, ``type``, ``datetime`` (UTC ISO 8601 with
microseconds, ``+00:00``), ``outcome``, ``detail``, ``outcome_detail``, ``agents``
(list of ``[agent id, role]``), ``objects`` (list of identifiers), ``aip_id``,
``version_id``, ``store_name`` and ``prev_hash``. ``seq`` is not hashed: the order
is carried by ``prev_hash``, so a log rebuilt from the stores verifies the same.

``agents`` and ``objects`` are stored as canonical JSON text (the engine's JSON
serializer) and :func:`verify_chain` hashes that stored text as it is: any change
to it, even a reformatting into equivalent JSON, is reported as a change.

Appends are serialised so that two writers never chain onto the same predecessor:
PostgreSQL takes a transaction-level advisory lock; SQLite takes the database write
lock (by a no-op write) before reading the last hash. Both are held to commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, String, Text, cast, func, select, text, type_coerce
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from preservation.catalog.canonical import canonical_json
from preservation.catalog.models import GENESIS_HASH, AgentRow, EventRow
from preservation.catalog.upsert import upsert
from preservation.errors import CatalogError
from preservation.model import Agent, Event

CANONICAL_VERSION = 1
# pg_advisory_xact_lock key of the event chain (ASCII "prsvEVNT").
CHAIN_LOCK_KEY = 0x7072737645564E54

# JSON string literal of a str, exactly as ``canonical_json`` writes it (the C encoder).
_quote: Callable[[str], str] = json.encoder.encode_basestring


def _q(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def _canonical_text(
    identifier: str,
    type_: str,
    when: str,
    outcome: str,
    detail: str,
    outcome_detail: str,
    agents_json: str,
    objects_json: str,
    aip_id: str | None,
    version_id: int | None,
    store_name: str | None,
    prev_hash: str,
) -> str:
    """The canonical JSON, written key by key in sorted order.

    Byte-identical to ``canonical_json`` of the document (tests compare the two) but several
    times faster, which is what lets ``verify_chain`` check 100k events a second.
    ``when`` is the canonical datetime text; ``agents_json``/``objects_json`` are
    already canonical JSON.
    """
    version = "null" if version_id is None else str(int(version_id))
    return (
        f'{{"agents":{agents_json},"aip_id":{_q(aip_id)},"datetime":{_quote(when)},'
        f'"detail":{_quote(detail)},"id":{_quote(identifier)},"objects":{objects_json},'
        f'"outcome":{_quote(outcome)},"outcome_detail":{_quote(outcome_detail)},'
        f'"prev_hash":{_quote(prev_hash)},"store_name":{_q(store_name)},'
        f'"type":{_quote(type_)},"v":{CANONICAL_VERSION},"version_id":{version}}}'
    )


def canonical_datetime(value: dt.datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive event datetime {value.isoformat()}: use an aware UTC time")
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical_event_bytes(
    *,
    identifier: str,
    type: str,
    datetime: dt.datetime,
    outcome: str,
    detail: str,
    outcome_detail: str,
    agents: Sequence[Sequence[str]],
    objects: Sequence[str],
    aip_id: str | None,
    version_id: int | None,
    store_name: str | None,
    prev_hash: str,
) -> bytes:
    """The bytes an event's ``hash`` is computed over (see the module docstring)."""
    return _canonical_text(
        identifier,
        type,
        canonical_datetime(datetime),
        outcome,
        detail,
        outcome_detail,
        canonical_json([list(a) for a in agents]),
        canonical_json(list(objects)),
        aip_id,
        version_id,
        store_name,
        prev_hash,
    ).encode("utf-8")


def event_hash(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()


def _lock_chain(session: Session) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(CHAIN_LOCK_KEY)))
    elif dialect == "sqlite":
        # A write statement (matching no row) makes this transaction the writer;
        # other writers wait (busy_timeout) until it commits.
        session.execute(text("UPDATE events SET seq = seq WHERE 0"))
    else:  # pragma: no cover - make_engine accepts only the two
        raise CatalogError(f"catalogue database {dialect!r} is not supported")


def last_hash(session: Session) -> str:
    """The hash of the newest event, or the genesis hash for an empty log."""
    found = session.execute(
        select(EventRow.hash).order_by(EventRow.seq.desc()).limit(1)
    ).scalar_one_or_none()
    return found if found is not None else GENESIS_HASH


def append_event(
    session: Session,
    event: Event,
    *,
    aip_id: str | None = None,
    version_id: int | None = None,
    store_name: str | None = None,
) -> EventRow:
    """Append ``event`` to the chain (flushed, so ``seq`` is set); commit is the caller's.

    The chain lock is held until the transaction ends, so keep the rest of the
    transaction short, and upsert agents before appending events (on PostgreSQL the
    opposite order can deadlock with a concurrent writer).
    """
    canonical_datetime(event.datetime)  # refuses a naive time before anything is locked
    _lock_chain(session)
    prev = last_hash(session)
    agents = [[agent_id, role] for agent_id, role in event.agents]
    objects = list(event.objects)
    when = event.datetime.astimezone(dt.UTC)
    canonical = canonical_event_bytes(
        identifier=event.identifier,
        type=event.type,
        datetime=when,
        outcome=event.outcome,
        detail=event.detail,
        outcome_detail=event.outcome_detail,
        agents=agents,
        objects=objects,
        aip_id=aip_id,
        version_id=version_id,
        store_name=store_name,
        prev_hash=prev,
    )
    row = EventRow(
        id=event.identifier,
        aip_id=aip_id,
        version_id=version_id,
        store_name=store_name,
        type=event.type,
        datetime=when,
        outcome=event.outcome,
        detail=event.detail,
        outcome_detail=event.outcome_detail,
        agents=agents,
        objects=objects,
        prev_hash=prev,
        hash=event_hash(canonical),
    )
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class ChainBreak:
    """Where the chain broke: ``hash`` = the row's fields do not give its stored hash
    (the row was changed); ``link`` = its ``prev_hash`` is not the hash of the row
    before it (a row was removed, inserted or reordered)."""

    seq: int
    kind: Literal["hash", "link"]
    expected: str
    found: str


@dataclass(frozen=True)
class ChainReport:
    count: int  # rows examined
    breaks: int  # rows with at least one broken check
    first_break: ChainBreak | None
    last_seq: int | None
    last_hash: str

    @property
    def ok(self) -> bool:
        return self.first_break is None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def _sqlite_when(raw: str) -> str:
    """Stored SQLite text (naive UTC, 'YYYY-MM-DD HH:MM:SS.ffffff') to canonical."""
    if len(raw) == 26 and raw[10] == " " and raw[19] == ".":
        return f"{raw[:10]}T{raw[11:]}+00:00"
    return canonical_datetime(dt.datetime.fromisoformat(raw).replace(tzinfo=dt.UTC))


def _identity(raw: str) -> str:
    return raw


def _verify_columns(dialect: str) -> tuple[tuple[Any, ...], Callable[[str], str]]:
    """Columns as raw text where that saves decoding: the datetime in canonical form
    (or SQLite's stored text, converted by the returned function) and the JSON
    columns as their stored, already canonical, text."""
    when: ColumnElement[Any]
    if dialect == "postgresql":
        # Canonical datetime text straight from the server.
        when = func.to_char(
            func.timezone("UTC", EventRow.datetime), 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'
        )
        convert = _identity
    else:
        when = type_coerce(EventRow.datetime, String)
        convert = _sqlite_when
    columns = (
        EventRow.seq,
        EventRow.id,
        EventRow.type,
        when,
        EventRow.outcome,
        EventRow.detail,
        EventRow.outcome_detail,
        cast(EventRow.agents, Text)
        if dialect == "postgresql"
        else type_coerce(EventRow.agents, Text),
        cast(EventRow.objects, Text)
        if dialect == "postgresql"
        else type_coerce(EventRow.objects, Text),
        EventRow.aip_id,
        EventRow.version_id,
        EventRow.store_name,
        EventRow.prev_hash,
        EventRow.hash,
    )
    return columns, convert


# Below this many events a parallel verification costs more (worker start-up) than it saves.
PARALLEL_MIN_EVENTS = 200_000


def verify_chain(
    session: Session,
    batch: int = 10_000,
    *,
    start_after: int | None = None,
    processes: int = 1,
) -> ChainReport:
    """Recompute every hash in ``seq`` order and check every link; read-only.

    Rows are read in keyset-paginated batches of plain columns (memory stays
    bounded). ``start_after`` resumes after a row already verified: that row's
    stored hash is the anchor.

    ``processes`` > 1 splits a long log (at least :data:`PARALLEL_MIN_EVENTS` rows)
    into that many consecutive ``seq`` ranges verified by worker processes, each on
    its own connection, anchored on the stored hash of the row before its range: the
    result is the same as one pass, but the workers see only committed rows, so use
    it on a session that has written nothing (the ``events verify`` command does).
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    conn = session.connection()
    prev = GENESIS_HASH
    after = 0
    if start_after is not None:
        anchor = conn.execute(
            select(EventRow.hash).where(EventRow.seq == start_after)
        ).scalar_one_or_none()
        if anchor is None:
            raise ValueError(f"no event with seq {start_after} to resume after")
        prev, after = anchor, start_after
    if processes > 1:
        bounds = _split(session, after, processes)
        if bounds is not None:
            return _verify_parallel(session, prev, bounds, batch)
    return _verify_range(conn, prev, after, None, batch, start_after)


def _split(session: Session, after: int, parts: int) -> list[int] | None:
    """``seq`` bounds cutting the rows after ``after`` into ``parts`` ranges
    (``after`` first, the last row's seq last), or None when the log is short or the
    database cannot be opened a second time (SQLite in memory)."""
    conn = session.connection()
    url = conn.engine.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return None
    total = conn.execute(
        select(func.count()).select_from(EventRow).where(EventRow.seq > after)
    ).scalar_one()
    if total < max(PARALLEL_MIN_EVENTS, parts):
        return None
    bounds = [after]
    for i in range(1, parts):
        bounds.append(
            conn.execute(
                select(EventRow.seq)
                .where(EventRow.seq > after)
                .order_by(EventRow.seq)
                .offset(total * i // parts - 1)
                .limit(1)
            ).scalar_one()
        )
    bounds.append(
        conn.execute(select(func.max(EventRow.seq)).where(EventRow.seq > after)).scalar_one()
    )
    return bounds


def _verify_parallel(session: Session, prev: str, bounds: list[int], batch: int) -> ChainReport:
    """Each range in a worker process (``python -m preservation.catalog.events``, the
    range on its stdin as JSON, the report on its stdout): a fresh interpreter that
    shares nothing with this one, whatever the caller's main module is."""
    conn = session.connection()
    url = conn.engine.url.render_as_string(hide_password=False)
    anchors = [prev] + [
        conn.execute(select(EventRow.hash).where(EventRow.seq == b)).scalar_one()
        for b in bounds[1:-1]
    ]
    procs = []
    try:
        for i, anchor in enumerate(anchors):
            proc = subprocess.Popen(
                [sys.executable, "-m", "preservation.catalog.events"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            procs.append(proc)
            assert proc.stdin is not None
            job = {"url": url, "prev": anchor, "after": bounds[i], "until": bounds[i + 1]}
            proc.stdin.write(json.dumps({**job, "batch": batch}).encode())
            proc.stdin.close()
            proc.stdin = None  # written and closed: communicate() only reads
        parts = []
        for proc in procs:
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise CatalogError(
                    f"event-chain verification worker failed ({proc.returncode}):"
                    f" {err.decode(errors='replace')[-2000:]}"
                )
            d = json.loads(out)
            first = d["first_break"]
            parts.append(
                ChainReport(
                    d["count"],
                    d["breaks"],
                    ChainBreak(**first) if first else None,
                    d["last_seq"],
                    d["last_hash"],
                )
            )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    count = sum(p.count for p in parts)
    breaks = sum(p.breaks for p in parts)
    first_break = next((p.first_break for p in parts if p.first_break is not None), None)
    return ChainReport(count, breaks, first_break, parts[-1].last_seq, parts[-1].last_hash)


def _worker_main() -> None:
    """``python -m preservation.catalog.events``: verify one range given on stdin."""
    from preservation.catalog.db import make_engine

    job = json.loads(sys.stdin.read())
    engine = make_engine(job["url"])
    try:
        with engine.connect() as conn:
            report = _verify_range(
                conn, job["prev"], job["after"], job["until"], job["batch"], job["after"]
            )
    finally:
        engine.dispose()
    sys.stdout.write(json.dumps(asdict(report)))


def _verify_range(
    conn: Connection,
    prev: str,
    after: int,
    until: int | None,
    batch: int,
    last_seq: int | None,
) -> ChainReport:
    """Verify the rows with ``after`` < seq (<= ``until``), the first linking to
    ``prev``."""
    count = breaks = 0
    first: ChainBreak | None = None
    columns, when_text = _verify_columns(conn.dialect.name)
    query = select(*columns).order_by(EventRow.seq).limit(batch)
    if until is not None:
        query = query.where(EventRow.seq <= until)
    text_of = _canonical_text
    sha256 = hashlib.sha256
    while True:
        rows = conn.execute(query.where(EventRow.seq > after)).all()
        if not rows:
            break
        for (
            seq,
            ident,
            etype,
            when,
            outcome,
            detail,
            outcome_detail,
            agents,
            objects,
            aip_id,
            version_id,
            store_name,
            prev_hash,
            stored,
        ) in rows:
            computed = sha256(
                text_of(
                    ident,
                    etype,
                    when_text(when),
                    outcome,
                    detail,
                    outcome_detail,
                    agents,
                    objects,
                    aip_id,
                    version_id,
                    store_name,
                    prev_hash,
                ).encode("utf-8")
            ).hexdigest()
            if prev_hash != prev or computed != stored:
                breaks += 1
                if first is None:
                    first = (
                        ChainBreak(seq, "link", prev, prev_hash)
                        if prev_hash != prev
                        else ChainBreak(seq, "hash", computed, stored)
                    )
            prev = stored
            count += 1
        after = last_seq = rows[-1][0]
    return ChainReport(count, breaks, first, last_seq, prev)


def upsert_agent(session: Session, agent: Agent) -> None:
    """Insert the agent, or update its name, type, version and note."""
    values = {
        "id": agent.identifier,
        "name": agent.name,
        "type": agent.type,
        "version": agent.version,
        "note": agent.note,
    }
    upsert(session, AgentRow, values, key=["id"])


if __name__ == "__main__":
    _worker_main()
