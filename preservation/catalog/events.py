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

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Text,
    bindparam,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    text,
    type_coerce,
)
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


def _verify_columns(dialect: str) -> tuple[Any, ...]:
    """Columns as raw text where that saves decoding: the datetime in canonical form
    and the JSON columns as their stored, already canonical, text.

    PostgreSQL writes the canonical datetime itself. On SQLite the usual stored form
    ('YYYY-MM-DD HH:MM:SS.ffffff', naive UTC) is rewritten by the query too; any other
    stored text comes back prefixed with ``!`` and goes through :func:`_sqlite_when`.
    """
    when: ColumnElement[Any]
    if dialect == "postgresql":
        when = func.to_char(
            func.timezone("UTC", EventRow.datetime), 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'
        )
    else:
        raw = type_coerce(EventRow.datetime, String)
        when = case(
            (
                (func.length(raw) == 26)
                & (func.substr(raw, 1, 1) != "!")
                & (func.substr(raw, 11, 1) == " ")
                & (func.substr(raw, 20, 1) == "."),
                func.substr(raw, 1, 10) + "T" + func.substr(raw, 12) + "+00:00",
            ),
            else_="!" + raw,
        )
    return (
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


# Below this many events a parallel verification costs more (worker start-up) than it saves:
# with the server-side hash (PostgreSQL) and the inline text (SQLite) one process verified
# a million events faster than two on 2 cores (issue 9, docs/benchmarks.md).
PARALLEL_MIN_EVENTS = 2_000_000


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


def _server_hash_columns() -> tuple[Any, ...]:
    """(seq, computed hash, prev_hash, hash) on PostgreSQL: the server writes each row's
    canonical text (``to_json`` escapes a string exactly as ``canonical_json`` does)
    and hashes it, so a row costs the client almost nothing."""

    def quote(column: Any) -> Any:
        return cast(func.to_json(cast(column, Text)), Text)

    when = func.to_char(
        func.timezone("UTC", EventRow.datetime), 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'
    )
    parts = [
        '{"agents":', cast(EventRow.agents, Text),
        ',"aip_id":', func.coalesce(quote(EventRow.aip_id), "null"),
        ',"datetime":', quote(when),
        ',"detail":', quote(EventRow.detail),
        ',"id":', quote(EventRow.id),
        ',"objects":', cast(EventRow.objects, Text),
        ',"outcome":', quote(EventRow.outcome),
        ',"outcome_detail":', quote(EventRow.outcome_detail),
        ',"prev_hash":', quote(EventRow.prev_hash),
        ',"store_name":', func.coalesce(quote(EventRow.store_name), "null"),
        ',"type":', quote(EventRow.type),
        f',"v":{CANONICAL_VERSION},"version_id":',
        func.coalesce(cast(EventRow.version_id, Text), "null"),
        "}",
    ]  # fmt: skip
    canonical: Any = literal_column("''", Text)
    for part in parts:
        canonical = canonical.op("||")(literal(part, Text) if isinstance(part, str) else part)
    computed = func.encode(func.sha256(func.convert_to(canonical, "UTF8")), "hex")
    return (EventRow.seq, computed, EventRow.prev_hash, EventRow.hash)


def _python_hashes(rows: Sequence[Any]) -> list[tuple[int, str, str, str]]:
    """(seq, computed hash, prev_hash, hash) of rows of :func:`_verify_columns`: the
    canonical text written inline, byte for byte what :func:`_canonical_text` writes
    (the tests compare them), in one comprehension (no call per row)."""
    quote = _quote
    sha256 = hashlib.sha256
    v = CANONICAL_VERSION
    return [
        (
            seq,
            sha256(
                (
                    f'{{"agents":{agents},'
                    f'"aip_id":{"null" if aip_id is None else quote(aip_id)},'
                    f'"datetime":{quote(_sqlite_when(when[1:]) if when[0] == "!" else when)},'
                    f'"detail":{quote(detail)},"id":{quote(ident)},"objects":{objects},'
                    f'"outcome":{quote(outcome)},"outcome_detail":{quote(outcome_detail)},'
                    f'"prev_hash":{quote(prev_hash)},'
                    f'"store_name":{"null" if store_name is None else quote(store_name)},'
                    f'"type":{quote(etype)},"v":{v},'
                    f'"version_id":{"null" if version_id is None else int(version_id)}}}'
                ).encode()
            ).hexdigest(),
            prev_hash,
            stored,
        )
        for (
            seq, ident, etype, when, outcome, detail, outcome_detail, agents, objects,
            aip_id, version_id, store_name, prev_hash, stored,
        ) in rows
    ]  # fmt: skip


def _exact_hash(conn: Connection, seq: int) -> str:
    """One row's hash recomputed in Python from its columns (the reference; the
    fast path defers to it wherever it does not reproduce the stored hash)."""
    row = conn.execute(select(*_verify_columns(conn.dialect.name)).where(EventRow.seq == seq)).one()
    (_, ident, etype, when, outcome, detail, outcome_detail, agents, objects, aip_id,
     version_id, store_name, prev_hash, _) = row  # fmt: skip
    if when[0] == "!":
        when = _sqlite_when(when[1:])
    return event_hash(
        _canonical_text(
            ident, etype, when, outcome, detail, outcome_detail, agents, objects,
            aip_id, version_id, store_name, prev_hash,
        ).encode()
    )  # fmt: skip


def _verify_range(
    conn: Connection,
    prev: str,
    after: int,
    until: int | None,
    batch: int,
    last_seq: int | None,
) -> ChainReport:
    """Verify the rows with ``after`` < seq (<= ``until``), the first linking to
    ``prev``.

    The hot loop of the event log: batches are fetched as plain tuples on the
    connection's own DBAPI cursor (same transaction, no result-row machinery). On
    PostgreSQL the server writes and hashes each row's canonical text; wherever that
    does not give the stored hash, the row is recomputed in Python
    (:func:`_exact_hash`), which alone decides a ``hash`` break. On SQLite (whose
    functions are slower than Python here, and which has no sha256) Python hashes
    every row. Either way the result is that of recomputing every row in Python.
    """
    count = breaks = 0
    first: ChainBreak | None = None
    server = conn.dialect.name == "postgresql"
    columns = _server_hash_columns() if server else _verify_columns(conn.dialect.name)
    query = select(*columns).where(EventRow.seq > bindparam("after", type_=Integer))
    if until is not None:
        query = query.where(EventRow.seq <= bindparam("until", type_=Integer))
    compiled = query.order_by(EventRow.seq).limit(batch).compile(dialect=conn.dialect)
    sql = str(compiled)
    names = compiled.positiontup if compiled.positional else None
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        while True:
            params = compiled.construct_params({"after": after, "until": until})
            cursor.execute(sql, tuple(params[n] for n in names) if names else params)
            rows = cursor.fetchall()
            if not rows:
                break
            for seq, computed, prev_hash, stored in rows if server else _python_hashes(rows):
                if computed != stored and server:
                    computed = _exact_hash(conn, seq)
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
    finally:
        cursor.close()
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
