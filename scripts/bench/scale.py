"""Scale benchmarks: the catalogue's audit planning query with millions of file copies
(SQLite and PostgreSQL), event-chain verification of a million events, and the METS
of a 200,000-file transfer.

    .venv/bin/python scripts/bench/scale.py [--quick] [--only plan,events,mets]
        [--file-copies 10000000] [--events 1000000] [--mets-files 200000]
        [--postgres URL] [--workdir DIR]

Planning query. A catalogue is created by the project's migrations (so it has exactly
the production indexes), then filled with generated rows: AIPs of 1,000 files, every
file held by two stores (``primary`` and ``replica``), so ``--file-copies`` N means N/2
files. On SQLite the rows come from ``INSERT ... SELECT`` over a recursive CTE, on
PostgreSQL from ``INSERT ... SELECT`` over ``generate_series`` (both server-side, no
row crosses the driver); secondary indexes are dropped while filling and rebuilt
after, then the tables are analysed. 5 % of the file copies were never verified, the
rest were last verified at random times over the past year. Timed (the best of three,
each on a fresh connection, after one warm-up run):

- ``first page``: the first 1,000 candidates of store ``primary`` due for a check
  (fixity interval 90 days): the never-verified ones, by id;
- ``next page``: the 1,000 least recently verified after a cursor in the middle of
  the verified ones (keyset continuation, the query every later page of a run makes).

The generated databases are deleted at the end (the SQLite file under the work
folder; the PostgreSQL database is a fresh ``bench_scale_<pid>`` then dropped).

Event chain. ``--events`` events with correct hashes are generated in Python and
bulk-loaded (executemany in one transaction on SQLite, ``COPY`` on PostgreSQL); then
``preservation.catalog.events.verify_chain`` is timed over the whole log in one process,
then with one process per core as ``preservation events verify`` runs it.

METS. ``write_mets`` of one AIP version with ``--mets-files`` payload files (two
digests each, identified formats, one record) in a fresh process: wall time, size of
the document and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import io
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from common import Measure, measure  # noqa: E402

FILES_PER_AIP = 1000
NEVER_VERIFIED = 0.05  # share of file copies never verified
PAGE = 1000
INTERVAL_DAYS = 90
NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class ScaleResult:
    name: str  # e.g. "plan sqlite"
    what: str  # e.g. "first page, 10,000,000 file copies"
    seconds: float
    rate: str  # e.g. "123,456 events/s" or ""
    rss_mb: float | None = None
    target: str = ""
    met: bool | None = None


# --------------------------------------------------------------------------- plan


def _sqlite_fill(path: Path, file_copies: int) -> None:
    """Fill a migrated SQLite catalogue with ``file_copies`` rows (two per file)."""
    files = file_copies // 2
    aips = max(1, -(-files // FILES_PER_AIP))
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-512000")
        con.execute("PRAGMA foreign_keys=OFF")
        indexes = con.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            " AND tbl_name IN ('files', 'file_copies')"
        ).fetchall()
        con.execute("BEGIN")
        for name, _ in indexes:
            con.execute(f'DROP INDEX "{name}"')
        con.execute(
            "INSERT INTO stores (name, site, role, kind, cold, fixity_interval_days, configured,"
            " created_at) VALUES ('primary', 'site-a', 'primary', 'local', 0, ?, 1, ?),"
            " ('replica', 'site-b', 'replica', 's3', 0, ?, 1, ?)",
            (INTERVAL_DAYS, _sqlite_time(NOW), INTERVAL_DAYS, _sqlite_time(NOW)),
        )
        created = _sqlite_time(NOW - dt.timedelta(days=400))
        con.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO aips (id, reference_code, title, created_at, state, current_version,"
            " public) SELECT printf('%08x-0000-4000-8000-%012x', i, i), 'REF-' || i,"
            " 'AIP ' || i, ?, 'active', 1, 0 FROM n",
            (aips, created),
        )
        con.execute(
            "INSERT INTO aip_versions (id, aip_id, number, created_at, reason, file_count,"
            " byte_count, descriptive) SELECT rowid, id, 1, created_at, 'ingest', ?, 0, '{}'"
            " FROM aips",
            (FILES_PER_AIP,),
        )
        con.execute(
            "INSERT INTO copies (id, version_id, store_name, state, created_at)"
            " SELECT 2 * id - 1, id, 'primary', 'verified', created_at FROM aip_versions"
            " UNION ALL SELECT 2 * id, id, 'replica', 'verified', created_at FROM aip_versions"
        )
        con.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO files (id, version_id, path, kind, size, sha256, sha512,"
            " origin_version, file_uuid) SELECT i, (i - 1) / ? + 1,"
            " printf('data/d%03d/f%07d.bin', (i / 100) % 1000, i), 'payload', 1024 + i % 15000,"
            " printf('%064x', i), printf('%0128x', i), 1,"
            " printf('%08x-1111-4000-8000-%012x', i, i) FROM n",
            (files, FILES_PER_AIP),
        )
        # Never verified: NULL; else a pseudo-random time in the past year (microseconds).
        year = 365 * 86400
        base = NOW.replace(tzinfo=None).isoformat(sep=" ")
        for store, offset in (("primary", 1), ("replica", 2)):
            con.execute(
                "INSERT INTO file_copies (id, copy_id, file_id, store_name, last_verified_at,"
                " outcome) SELECT 2 * id - 2 + ?, 2 * version_id - 2 + ?, id, ?,"
                " CASE WHEN (id * 2654435761) % 1000 < ? THEN NULL ELSE"
                " printf('%s.%06d', datetime(?, '-' ||"
                " (((id * 2654435761 + ? * 40503) % 4294967296) % ?) || ' seconds'),"
                " (id * 7919) % 1000000) END,"
                " CASE WHEN (id * 2654435761) % 1000 < ? THEN NULL ELSE 'pass' END FROM files",
                (
                    offset,
                    offset,
                    store,
                    int(NEVER_VERIFIED * 1000),
                    base,
                    offset,
                    year,
                    int(NEVER_VERIFIED * 1000),
                ),
            )
        for _, sql in indexes:
            con.execute(sql)
        con.execute("COMMIT")
        con.execute("ANALYZE")
    finally:
        con.close()


def _sqlite_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")


def _postgres_fill(url: str, file_copies: int) -> None:
    import psycopg

    files = file_copies // 2
    aips = max(1, -(-files // FILES_PER_AIP))
    never = int(NEVER_VERIFIED * 1000)
    with psycopg.connect(url, autocommit=False) as con:
        con.execute("SET maintenance_work_mem = '512MB'")
        con.execute("SET session_replication_role = replica")  # no FK triggers while filling
        indexes = con.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename IN"
            " ('files', 'file_copies') AND NOT EXISTS (SELECT 1 FROM pg_constraint c"
            " WHERE c.conname = i.indexname)"
        ).fetchall()
        for name, _ in indexes:
            con.execute(f'DROP INDEX "{name}"')
        con.execute(
            "INSERT INTO stores (name, site, role, kind, cold, fixity_interval_days, configured,"
            " created_at) VALUES ('primary', 'site-a', 'primary', 'local', false, %s, true, %s),"
            " ('replica', 'site-b', 'replica', 's3', false, %s, true, %s)",
            (INTERVAL_DAYS, NOW, INTERVAL_DAYS, NOW),
        )
        created = NOW - dt.timedelta(days=400)
        con.execute(
            "INSERT INTO aips (id, reference_code, title, created_at, state, current_version,"
            " public) SELECT lpad(to_hex(i), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i), 12,"
            " '0'), 'REF-' || i, 'AIP ' || i, %s, 'active', 1, false"
            " FROM generate_series(1, %s) AS i",
            (created, aips),
        )
        con.execute(
            "INSERT INTO aip_versions (id, aip_id, number, created_at, reason, file_count,"
            " byte_count, descriptive) SELECT i, lpad(to_hex(i), 8, '0') || '-0000-4000-8000-'"
            " || lpad(to_hex(i), 12, '0'), 1, %s, 'ingest', %s, 0, '{}'"
            " FROM generate_series(1, %s) AS i",
            (created, FILES_PER_AIP, aips),
        )
        con.execute(
            "INSERT INTO copies (id, version_id, store_name, state, created_at)"
            " SELECT 2 * id - 1, id, 'primary', 'verified', created_at FROM aip_versions"
            " UNION ALL SELECT 2 * id, id, 'replica', 'verified', created_at FROM aip_versions"
        )
        con.execute(
            "INSERT INTO files (id, version_id, path, kind, size, sha256, sha512, origin_version,"
            " file_uuid) SELECT i, (i - 1) / %s + 1, format('data/d%%s/f%%s.bin',"
            " lpad(((i / 100) %% 1000)::text, 3, '0'), lpad(i::text, 7, '0')), 'payload',"
            " 1024 + i %% 15000, lpad(to_hex(i), 64, '0'), lpad(to_hex(i), 128, '0'), 1,"
            " lpad(to_hex(i), 8, '0') || '-1111-4000-8000-' || lpad(to_hex(i), 12, '0')"
            " FROM generate_series(1, %s) AS i",
            (FILES_PER_AIP, files),
        )
        year = 365 * 86400
        for store, offset in (("primary", 1), ("replica", 2)):
            con.execute(
                "INSERT INTO file_copies (id, copy_id, file_id, store_name, last_verified_at,"
                " outcome) SELECT 2 * id - 2 + %s, 2 * version_id - 2 + %s, id, %s,"
                " CASE WHEN (id * 2654435761) %% 1000 < %s THEN NULL ELSE"
                " %s - make_interval(secs => ((id * 2654435761 + %s * 40503) %% 4294967296) %% %s"
                " + ((id * 7919) %% 1000000) / 1e6) END,"
                " CASE WHEN (id * 2654435761) %% 1000 < %s THEN NULL ELSE 'pass' END FROM files",
                (offset, offset, store, never, NOW, offset, year, never),
            )
        for _, sql in indexes:
            con.execute(sql)
        con.execute("SET session_replication_role = origin")
        con.commit()
    with psycopg.connect(url, autocommit=True) as con:
        for table in ("aips", "aip_versions", "copies", "files", "file_copies"):
            con.execute(f"VACUUM ANALYZE {table}")


def _time_plan(url: str, label: str, file_copies: int) -> list[ScaleResult]:
    from preservation.catalog.audit_queries import Cursor, audit_candidates
    from preservation.catalog.db import Catalog

    cutoff = NOW - dt.timedelta(days=INTERVAL_DAYS)
    page = min(PAGE, file_copies // 20)  # tiny catalogues (the smoke test) have fewer
    catalog = Catalog(url)
    try:
        # A cursor in the middle of the verified file copies: half of the due ones.
        middle = NOW - dt.timedelta(days=(365 + INTERVAL_DAYS) / 2)
        cursor = Cursor(never=False, last_verified_at=middle, file_copy_id=0)

        def first() -> int:
            with catalog.session() as s:
                return len(audit_candidates(s, "primary", verified_before=cutoff, limit=page))

        def nxt() -> int:
            with catalog.session() as s:
                return len(
                    audit_candidates(
                        s, "primary", verified_before=cutoff, limit=page, after=cursor
                    )
                )

        out = []
        for what, fn in (("first page", first), ("next page", nxt)):
            best = float("inf")
            got = fn()  # warm-up
            if got != page:
                raise SystemExit(f"plan {label} {what}: {got} candidates, expected {page}")
            for _ in range(3):
                catalog.engine.dispose()
                t = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t)
            out.append(
                ScaleResult(
                    f"plan {label}",
                    f"{what} ({page:,}) of {file_copies:,} file copies",
                    best,
                    "",
                    target="< 1 s",
                    met=best < 1.0,
                )
            )
            print(f"  plan {label} {what}: {best:.3f} s", file=sys.stderr, flush=True)
        return out
    finally:
        catalog.dispose()


def bench_plan(work: Path, file_copies: int, postgres: str | None) -> list[ScaleResult]:
    from preservation.catalog.db import upgrade

    results: list[ScaleResult] = []
    db = work / "plan.sqlite"
    url = f"sqlite:///{db}"
    upgrade(url)
    t = time.perf_counter()
    _sqlite_fill(db, file_copies)
    print(f"  sqlite: {file_copies:,} file copies generated in {time.perf_counter() - t:.0f} s",
          file=sys.stderr)  # fmt: skip
    try:
        results += _time_plan(url, "sqlite", file_copies)
    finally:
        for p in work.glob("plan.sqlite*"):
            p.unlink()
    if postgres:
        with _postgres_database(postgres, "bench_scale") as pg:
            upgrade(pg)
            t = time.perf_counter()
            _postgres_fill(pg, file_copies)
            print(f"  postgresql: {file_copies:,} file copies generated in"
                  f" {time.perf_counter() - t:.0f} s", file=sys.stderr)  # fmt: skip
            results += _time_plan(pg, "postgresql", file_copies)
    return results


@contextlib.contextmanager
def _postgres_database(url: str, prefix: str) -> Iterator[str]:
    """A fresh database on the server of ``url``, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{os.getpid()}"
    base = make_url(url)
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}"')
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- events


def _event_rows(count: int) -> Iterator[tuple[object, ...]]:
    """``count`` chained events: (seq, id, type, datetime, outcome, detail,
    outcome_detail, agents json, objects json, prev_hash, hash)."""
    from preservation.catalog.canonical import canonical_json
    from preservation.catalog.events import _canonical_text, canonical_datetime
    from preservation.catalog.models import GENESIS_HASH

    prev = GENESIS_HASH
    agents = canonical_json([["preservation-0.1", "executing program"]])
    start = NOW - dt.timedelta(days=365)
    for i in range(1, count + 1):
        ident = f"{i:08x}-2222-4000-8000-{i:012x}"
        when = start + dt.timedelta(seconds=i * 7, microseconds=i % 1000)
        objects = canonical_json([f"{i:08x}-1111-4000-8000-{i:012x}"])
        detail = f"fixity check of copy {i % 5000} on store primary"
        text = _canonical_text(
            ident, "fixity check", canonical_datetime(when), "success", detail, "",
            agents, objects, None, None, "primary", prev,
        )  # fmt: skip
        digest = hashlib.sha256(text.encode()).hexdigest()
        yield (i, ident, "fixity check", when, "success", detail, "", agents, objects, prev, digest)
        prev = digest


def _sqlite_events(path: Path, count: int) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO events (seq, id, type, datetime, outcome, detail, outcome_detail,"
            " agents, objects, store_name, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'primary', ?, ?)",
            (
                (r[0], r[1], r[2], _sqlite_time(r[3]), *r[4:])  # type: ignore[arg-type]
                for r in _event_rows(count)
            ),
        )
        con.execute("COMMIT")
        con.execute("ANALYZE")
    finally:
        con.close()


def _postgres_events(url: str, count: int) -> None:
    import psycopg

    with psycopg.connect(url) as con:
        with con.cursor() as cur, cur.copy(
            "COPY events (seq, id, type, datetime, outcome, detail, outcome_detail, agents,"
            " objects, store_name, prev_hash, hash) FROM STDIN"
        ) as copy:
            for r in _event_rows(count):
                copy.write_row((*r[:9], "primary", *r[9:]))
        con.execute("SELECT setval(pg_get_serial_sequence('events', 'seq'), %s)", (count,))
        con.commit()
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("VACUUM ANALYZE events")


def _time_verify(url: str, label: str, count: int, processes: int) -> ScaleResult:
    from preservation.catalog.db import Catalog
    from preservation.catalog.events import verify_chain

    catalog = Catalog(url)
    try:
        with catalog.session() as s:
            t = time.perf_counter()
            report = verify_chain(s, processes=processes)
            wall = time.perf_counter() - t
    finally:
        catalog.dispose()
    if not report.ok or report.count != count:
        raise SystemExit(f"events {label}: chain not verified: {report.to_dict()}")
    rate = count / wall
    return ScaleResult(
        f"events {label}",
        f"verify_chain over {count:,} events, {processes} process(es)",
        wall,
        f"{rate:,.0f} events/s",
        target=">= 100,000 events/s",
        met=rate >= 100_000,
    )


def _verify_both(url: str, label: str, count: int) -> list[ScaleResult]:
    """One process, then one per core as ``preservation events verify`` runs it."""
    from preservation.catalog.events import PARALLEL_MIN_EVENTS

    out = [_time_verify(url, label, count, 1)]
    cores = os.cpu_count() or 1
    if cores > 1 and count >= PARALLEL_MIN_EVENTS:  # shorter logs stay in one process
        out.append(_time_verify(url, label, count, cores))
    return out


def bench_events(work: Path, count: int, postgres: str | None) -> list[ScaleResult]:
    from preservation.catalog.db import upgrade

    results = []
    db = work / "events.sqlite"
    url = f"sqlite:///{db}"
    upgrade(url)
    try:
        _sqlite_events(db, count)
        results += _verify_both(url, "sqlite", count)
    finally:
        for p in work.glob("events.sqlite*"):
            p.unlink()
    if postgres:
        with _postgres_database(postgres, "bench_events") as pg:
            upgrade(pg)
            _postgres_events(pg, count)
            results += _verify_both(pg, "postgresql", count)
    return results


# --------------------------------------------------------------------------- METS

_METS_CHILD = r"""
import datetime as dt, sys, time
from pathlib import Path
from preservation.metadata.mets_writer import MetsPackage, write_mets
from preservation.model import FileEntry, FormatInfo
n = int(sys.argv[2])
fmt = FormatInfo(puid="fmt/353", mime="image/tiff", name="Tagged Image File Format",
                 version=None, basis="extension match tif")
def files():
    for i in range(n):
        yield FileEntry(
            path=f"d{i // 10000:03d}/d{(i // 100) % 100:03d}/f{i:07d}.tif", size=1000 + i,
            digests={"sha256": f"{i:064x}", "sha512": f"{i:0128x}"}, format=fmt,
            uuid=f"{i:08x}-1111-4000-8000-{i:012x}")
t = time.perf_counter()
write_mets(Path(sys.argv[1]), MetsPackage(
    aip_id="00000001-0000-4000-8000-000000000001", version=1,
    created=dt.datetime(2026, 11, 1, tzinfo=dt.UTC), label="huge-count", files=files))
print(time.perf_counter() - t)
"""


def bench_mets(work: Path, files: int) -> list[ScaleResult]:
    out = work / "mets.xml"
    try:
        m: Measure = measure([sys.executable, "-c", _METS_CHILD, str(out), str(files)])
        size = out.stat().st_size
    finally:
        out.unlink(missing_ok=True)
    return [
        ScaleResult(
            "mets",
            f"write_mets, {files:,} files: {size / 1e6:,.1f} MB ({size / files:,.0f} B/file)",
            m.wall,
            f"{files / m.wall:,.0f} files/s",
            rss_mb=m.peak_rss_mb,
            target="< 200 MB RSS",
            met=m.peak_rss_mb < 200,
        )
    ]


# --------------------------------------------------------------------------- main


def sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"file_copies": 100_000, "events": 50_000, "mets_files": 10_000}
    return {"file_copies": 10_000_000, "events": 1_000_000, "mets_files": 200_000}


def postgres_url(requested: str | None) -> str | None:
    """The server to use: ``--postgres``, else PRESERVATION_TEST_POSTGRES_URL, else the
    local default when it answers; None (SQLite only) when none answers."""
    import psycopg

    url = requested or os.environ.get("PRESERVATION_TEST_POSTGRES_URL") or DEFAULT_POSTGRES
    try:
        with psycopg.connect(url, connect_timeout=3):
            return url
    except psycopg.Error:
        if requested:
            raise
        return None


def run(
    work: Path,
    quick: bool,
    only: set[str],
    postgres: str | None,
    overrides: dict[str, int | None] | None = None,
) -> list[ScaleResult]:
    n = sizes(quick)
    for k, v in (overrides or {}).items():
        if v is not None:
            n[k] = v
    results: list[ScaleResult] = []
    if "plan" in only:
        results += bench_plan(work, n["file_copies"], postgres)
    if "events" in only:
        results += bench_events(work, n["events"], postgres)
    if "mets" in only:
        results += bench_mets(work, n["mets_files"])
    return results


def format_results(results: list[ScaleResult]) -> str:
    buf = io.StringIO()
    buf.write(
        f"{'benchmark':<18} {'seconds':>8}  {'rate':<22} {'RSS MB':>6}  {'target':<20} what\n"
    )
    for r in results:
        met = "" if r.met is None else (" met" if r.met else " MISSED")
        rss = f"{r.rss_mb:6.0f}" if r.rss_mb is not None else "     -"
        buf.write(
            f"{r.name:<18} {r.seconds:8.3f}  {r.rate:<22} {rss}  {r.target + met:<20} {r.what}\n"
        )
    return buf.getvalue()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="plan,events,mets")
    ap.add_argument("--file-copies", type=int, default=None)
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--mets-files", type=int, default=None)
    ap.add_argument("--postgres", default=None, help="server URL (default: the local one)")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    pg = None if args.no_postgres else postgres_url(args.postgres)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        results = run(
            Path(tmp),
            args.quick,
            set(args.only.split(",")),
            pg,
            {"file_copies": args.file_copies, "events": args.events, "mets_files": args.mets_files},
        )
    print(format_results(results), end="")


if __name__ == "__main__":
    main()
