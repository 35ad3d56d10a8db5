"""The tamper-evident event chain: append, verify, and find the changed row."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select, text

from preservation.catalog.canonical import canonical_json
from preservation.catalog.db import Catalog
from preservation.catalog.events import (
    append_event,
    canonical_event_bytes,
    event_hash,
    upsert_agent,
    verify_chain,
)
from preservation.catalog.models import GENESIS_HASH, AgentRow, EventRow
from preservation.model import Agent, Event
from tests.catalog.factories import add_aip

AGENT = "preservation/0.1.0"


def _event(n: int) -> Event:
    return Event(
        type="fixity check",
        outcome="success" if n % 5 else "failure",
        detail=f"audit run {n} 审计",
        outcome_detail="" if n % 5 else "data/a.pdf: sha256 mismatch",
        datetime=dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=n, microseconds=n),
        agents=[(AGENT, "executing program")],
        objects=[f"urn:uuid:{n:032x}"],
    )


def _append(catalog: Catalog, n: int, aip_id: str | None = None) -> list[int]:
    seqs = []
    with catalog.session() as s:
        for i in range(n):
            seqs.append(append_event(s, _event(i), aip_id=aip_id, store_name="primary").seq)
    return seqs


def test_append_links_each_event_to_the_previous(catalog: Catalog) -> None:
    with catalog.session() as s:
        aip, version = add_aip(s)
        first = append_event(s, _event(1), aip_id=aip.id, version_id=version.id)
        second = append_event(s, _event(2), aip_id=aip.id, store_name="primary")
        assert first.prev_hash == GENESIS_HASH
        assert second.prev_hash == first.hash
        assert second.seq > first.seq
    with catalog.session() as s:
        report = verify_chain(s)
    assert report.ok and report.count == 2 and report.breaks == 0
    assert report.last_seq == second.seq and report.last_hash == second.hash


def test_hash_is_sha256_of_the_documented_canonical_json(catalog: Catalog) -> None:
    ev = _event(3)
    with catalog.session() as s:
        row = append_event(s, ev, version_id=7, store_name="offsite")
    expected_doc = {
        "v": 1,
        "id": ev.identifier,
        "type": "fixity check",
        "datetime": "2025-01-01T00:00:03.000003+00:00",
        "outcome": "success",
        "detail": "audit run 3 审计",
        "outcome_detail": "",
        "agents": [[AGENT, "executing program"]],
        "objects": [f"urn:uuid:{3:032x}"],
        "aip_id": None,
        "version_id": 7,
        "store_name": "offsite",
        "prev_hash": GENESIS_HASH,
    }
    canonical = json.dumps(
        expected_doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")
    ).encode()
    assert row.hash == hashlib.sha256(canonical).hexdigest()
    assert (
        canonical_event_bytes(
            identifier=ev.identifier,
            type=ev.type,
            datetime=ev.datetime.astimezone(dt.timezone(dt.timedelta(hours=8))),
            outcome=ev.outcome,
            detail=ev.detail,
            outcome_detail=ev.outcome_detail,
            agents=ev.agents,
            objects=ev.objects,
            aip_id=None,
            version_id=7,
            store_name="offsite",
            prev_hash=GENESIS_HASH,
        )
        == canonical
    )


@pytest.mark.parametrize("column", ["detail", "outcome", "type", "agents", "datetime"])
def test_changing_one_row_is_reported_at_that_row(catalog: Catalog, column: str) -> None:
    seqs = _append(catalog, 12)
    target = seqs[7]
    new_value = {
        "detail": "'nothing happened'",
        "outcome": "'warning'",
        "type": "'deletion'",
        "agents": '\'[["someone", "implementer"]]\'',
        "datetime": "'2030-01-01 00:00:00.000000'"
        if catalog.dialect == "sqlite"
        else "'2030-01-01 00:00:00+00'",
    }[column]
    with catalog.session() as s:
        stored = s.execute(select(EventRow.hash).where(EventRow.seq == target)).scalar_one()
        s.execute(
            text(f"UPDATE events SET {column} = {new_value} WHERE seq = :seq"), {"seq": target}
        )
    with catalog.session() as s:
        report = verify_chain(s)
    assert not report.ok
    assert report.count == 12 and report.breaks == 1
    assert report.first_break is not None
    assert report.first_break.seq == target
    assert report.first_break.kind == "hash"
    assert report.first_break.found == stored
    assert report.first_break.expected != stored


def test_a_rehashed_forgery_breaks_the_next_link(catalog: Catalog) -> None:
    seqs = _append(catalog, 6)
    with catalog.session() as s:
        row = s.get(EventRow, seqs[2])
        assert row is not None
        forged = event_hash(
            canonical_event_bytes(
                identifier=row.id,
                type=row.type,
                datetime=row.datetime,
                outcome=row.outcome,
                detail="forged",
                outcome_detail=row.outcome_detail,
                agents=row.agents,
                objects=row.objects,
                aip_id=row.aip_id,
                version_id=row.version_id,
                store_name=row.store_name,
                prev_hash=row.prev_hash,
            )
        )
        s.execute(
            text("UPDATE events SET detail = 'forged', hash = :h WHERE seq = :seq"),
            {"h": forged, "seq": seqs[2]},
        )
    with catalog.session() as s:
        report = verify_chain(s)
    assert report.first_break is not None
    assert (report.first_break.seq, report.first_break.kind) == (seqs[3], "link")
    assert report.first_break.expected == forged


def test_a_removed_row_breaks_the_next_link(catalog: Catalog) -> None:
    seqs = _append(catalog, 6)
    with catalog.session() as s:
        s.execute(text("DELETE FROM events WHERE seq = :seq"), {"seq": seqs[4]})
    with catalog.session() as s:
        report = verify_chain(s)
    assert report.count == 5
    assert report.first_break is not None
    assert (report.first_break.seq, report.first_break.kind) == (seqs[5], "link")


@pytest.mark.parametrize("batch", [1, 3, 4, 10, 11])
def test_batches_do_not_change_the_result(catalog: Catalog, batch: int) -> None:
    seqs = _append(catalog, 10)
    with catalog.session() as s:
        assert verify_chain(s, batch=batch).ok
        s.execute(text("UPDATE events SET detail = 'x' WHERE seq = :seq"), {"seq": seqs[6]})
    with catalog.session() as s:
        report = verify_chain(s, batch=batch)
    assert report.count == 10
    assert report.first_break is not None and report.first_break.seq == seqs[6]


def test_verification_resumes_after_a_verified_row(catalog: Catalog) -> None:
    seqs = _append(catalog, 8)
    with catalog.session() as s:
        report = verify_chain(s, start_after=seqs[4])
        assert report.ok and report.count == 3 and report.last_seq == seqs[-1]
        with pytest.raises(ValueError, match="no event"):
            verify_chain(s, start_after=seqs[-1] + 100)


def test_empty_log_verifies(catalog: Catalog) -> None:
    with catalog.session() as s:
        report = verify_chain(s)
    assert report.ok and report.count == 0 and report.last_hash == GENESIS_HASH
    assert report.to_dict()["ok"] is True


def test_naive_event_time_is_refused(catalog: Catalog) -> None:
    ev = _event(1)
    ev.datetime = dt.datetime(2025, 1, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="naive"), catalog.session() as s:
        append_event(s, ev)


def test_concurrent_writers_keep_one_chain(catalog: Catalog) -> None:
    """Writers in parallel sessions never chain onto the same predecessor."""
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(15):
                with catalog.session() as s:
                    # read first, as real callers do, then append
                    s.execute(select(EventRow.seq).limit(1)).all()
                    append_event(s, _event(w * 100 + i))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with catalog.session() as s:
        report = verify_chain(s)
        prevs = s.execute(select(EventRow.prev_hash)).scalars().all()
    assert report.ok and report.count == 60
    assert len(set(prevs)) == 60  # no fork: every predecessor used once


def test_upsert_agent_inserts_then_updates(catalog: Catalog) -> None:
    with catalog.session() as s:
        upsert_agent(s, Agent(AGENT, "preservation", "software", "0.1.0"))
        upsert_agent(s, Agent("urn:uuid:1", "Municipal Archive", "organization"))
    with catalog.session() as s:
        upsert_agent(s, Agent(AGENT, "preservation", "software", "0.1.0", note="release"))
    with catalog.session() as s:
        rows = {a.id: a for a in s.execute(select(AgentRow)).scalars()}
    assert set(rows) == {AGENT, "urn:uuid:1"}
    assert rows[AGENT].note == "release" and rows[AGENT].version == "0.1.0"
    assert rows["urn:uuid:1"].type == "organization"


def _valid_chain_rows(n: int) -> Iterator[list[dict[str, object]]]:
    """A valid chain of ``n`` events as insert batches (hashes computed here)."""
    prev = GENESIS_HASH
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    batch: list[dict[str, object]] = []
    for i in range(n):
        ident = f"{i:08x}-0000-4000-8000-000000000000"
        when = start + dt.timedelta(milliseconds=i)
        fields = {
            "type": "fixity check",
            "datetime": when,
            "outcome": "success",
            "detail": f"run {i}",
            "outcome_detail": "",
            "agents": [[AGENT, "executing program"]],
            "objects": [],
            "aip_id": None,
            "version_id": None,
            "store_name": "primary",
        }
        h = event_hash(canonical_event_bytes(identifier=ident, prev_hash=prev, **fields))  # type: ignore[arg-type]
        batch.append({"id": ident, **fields, "prev_hash": prev, "hash": h})
        prev = h
        if len(batch) == 5000:
            yield batch
            batch = []
    if batch:
        yield batch


@pytest.mark.slow
def test_verify_a_long_chain(catalog: Catalog) -> None:
    n = 50_000
    with catalog.session() as s:
        for batch in _valid_chain_rows(n):
            s.execute(insert(EventRow), batch)
    with catalog.session() as s:
        report = verify_chain(s)
    assert report.ok and report.count == n
    with catalog.session() as s:
        s.execute(text("UPDATE events SET detail = 'x' WHERE seq = :seq"), {"seq": n - 17})
    with catalog.session() as s:
        report = verify_chain(s)
    assert report.first_break is not None and report.first_break.seq == n - 17


_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    detail=_text,
    outcome_detail=_text,
    agents=st.lists(st.tuples(_text, _text), max_size=3),
    objects=st.lists(_text, max_size=3),
    aip_id=st.none() | _text,
    version_id=st.none() | st.integers(min_value=0, max_value=2**62),
    store_name=st.none() | _text,
    micros=st.integers(min_value=0, max_value=10**12),
)
def test_fast_canonical_form_equals_sorted_json(
    detail: str,
    outcome_detail: str,
    agents: list[tuple[str, str]],
    objects: list[str],
    aip_id: str | None,
    version_id: int | None,
    store_name: str | None,
    micros: int,
) -> None:
    """The hand-written canonical writer agrees with json.dumps(sort_keys=True)."""
    when = dt.datetime(2000, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
    fields = {
        "identifier": "e",
        "type": "migration",
        "datetime": when,
        "outcome": "warning",
        "detail": detail,
        "outcome_detail": outcome_detail,
        "agents": agents,
        "objects": objects,
        "aip_id": aip_id,
        "version_id": version_id,
        "store_name": store_name,
        "prev_hash": GENESIS_HASH,
    }
    reference = json.dumps(
        {
            "v": 1,
            "id": "e",
            "type": "migration",
            "datetime": when.isoformat(timespec="microseconds"),
            "outcome": "warning",
            "detail": detail,
            "outcome_detail": outcome_detail,
            "agents": [list(a) for a in agents],
            "objects": objects,
            "aip_id": aip_id,
            "version_id": version_id,
            "store_name": store_name,
            "prev_hash": GENESIS_HASH,
        },
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    assert canonical_event_bytes(**fields) == reference  # type: ignore[arg-type]


def test_event_json_is_stored_as_canonical_text(catalog: Catalog) -> None:
    ev = _event(1)
    ev.agents = [("代理/1", "executing program"), ("b", "a")]
    ev.objects = ["urn:uuid:1", "文件"]
    with catalog.session() as s:
        append_event(s, ev)
    with catalog.session() as s:
        raw = s.execute(
            text("SELECT CAST(agents AS TEXT), CAST(objects AS TEXT) FROM events")
        ).one()
    assert tuple(raw) == (
        canonical_json([list(a) for a in ev.agents]),
        canonical_json(ev.objects),
    )


def test_reformatted_json_counts_as_a_change(catalog: Catalog) -> None:
    seqs = _append(catalog, 3)
    with catalog.session() as s:
        s.execute(
            text("UPDATE events SET objects = :o WHERE seq = :seq"),
            {"o": json.dumps([f"urn:uuid:{1:032x}"], indent=1), "seq": seqs[1]},
        )
    with catalog.session() as s:
        report = verify_chain(s)
    assert report.first_break is not None and report.first_break.seq == seqs[1]


# Strings the database must quote exactly as Python's JSON encoder does: every ASCII
# control character, quotes and backslashes, DEL and C1 controls, separators JSON
# leaves alone, and characters outside the BMP.
_TRICKY = [
    "".join(chr(c) for c in range(1, 128)),
    '\\u0000 "quoted" \\n \\\\',
    "\x7f\x80\x9f\u2028\u2029\ufeff",
    "😀 文件 é\r\n\t\b\f",
    "",
]


def _tricky_events(catalog: Catalog) -> None:
    with catalog.session() as s:
        for n, t in enumerate(_TRICKY):
            ev = _event(n + 1)
            ev.detail, ev.outcome_detail = t, t[::-1]
            ev.agents = [(t[:50], t[-50:])]
            ev.objects = [t, t.upper()]
            append_event(s, ev, version_id=n * 1000 or None, store_name=t[:60] or None)


def test_strings_needing_escapes_verify(catalog: Catalog) -> None:
    _tricky_events(catalog)
    with catalog.session() as s:
        report = verify_chain(s)
    assert report.ok and report.count == len(_TRICKY)


def test_the_server_hashes_the_same_canonical_text_as_python(catalog: Catalog) -> None:
    """PostgreSQL writes and hashes every row itself (the fast path): it must agree
    with Python's canonical bytes on every row, tricky strings included."""
    if catalog.engine.dialect.name != "postgresql":
        pytest.skip("the server-side hash is PostgreSQL's")
    from preservation.catalog.events import _server_hash_columns

    _tricky_events(catalog)
    _append(catalog, 3)
    with catalog.session() as s:
        rows = s.execute(select(*_server_hash_columns()).order_by(EventRow.seq)).all()
    assert len(rows) == len(_TRICKY) + 3
    assert [computed for _, computed, _, _ in rows] == [stored for _, _, _, stored in rows]


def test_rows_the_server_does_not_reproduce_are_judged_in_python(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the fast value differs from the stored hash, Python recomputes the row and
    alone decides: a right row passes, a changed row is reported with Python's hash."""
    if catalog.engine.dialect.name != "postgresql":
        pytest.skip("the server-side hash is PostgreSQL's")
    from sqlalchemy import literal

    from preservation.catalog import events

    monkeypatch.setattr(
        events,
        "_server_hash_columns",
        lambda: (EventRow.seq, literal("wrong"), EventRow.prev_hash, EventRow.hash),
    )
    seqs = _append(catalog, 6)
    with catalog.session() as s:
        assert verify_chain(s, batch=4).ok
        s.execute(text("UPDATE events SET detail = 'changed' WHERE seq = :s"), {"s": seqs[2]})
    with catalog.session() as s:
        report = verify_chain(s, batch=4)
        row = s.execute(select(EventRow).where(EventRow.seq == seqs[2])).scalar_one()
        expected = event_hash(
            canonical_event_bytes(
                identifier=row.id, type=row.type, datetime=row.datetime, outcome=row.outcome,
                detail=row.detail, outcome_detail=row.outcome_detail, agents=row.agents,
                objects=row.objects, aip_id=row.aip_id, version_id=row.version_id,
                store_name=row.store_name, prev_hash=row.prev_hash,
            )
        )  # fmt: skip
    assert report.breaks == 1 and report.first_break is not None
    assert (report.first_break.seq, report.first_break.kind) == (seqs[2], "hash")
    assert report.first_break.expected == expected != row.hash
