"""Smoke test of the benchmark suite (scripts/bench/): its pieces run end to end on
tiny data and produce rows and verdicts that make sense. Benchmarks themselves are
not run here (``scripts/bench/run --quick`` is)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench"
POSTGRES_URL = os.environ.get("PRESERVATION_TEST_POSTGRES_URL", "")


@pytest.fixture(scope="module", autouse=True)
def _bench_path() -> Iterator[None]:
    sys.path.insert(0, str(BENCH))
    yield
    sys.path.remove(str(BENCH))


def test_measure_counts_the_whole_process_tree() -> None:
    from common import measure

    # A child that holds ~60 MB while its parent stays small: the tree's peak counts it.
    child = "b = bytearray(60 * 2**20); import time; time.sleep(0.5)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    m = measure([sys.executable, "-c", parent])
    assert m.peak_rss_mb >= 60
    assert 0.4 < m.wall < 30


def test_measure_reports_a_failing_command() -> None:
    from common import measure

    with pytest.raises(SystemExit, match="failed"):
        measure([sys.executable, "-c", "raise SystemExit(3)"])


def test_scale_pieces_on_sqlite(tmp_path: Path) -> None:
    import scale

    results = scale.run(
        tmp_path,
        quick=True,
        only={"plan", "events", "mets"},
        postgres=None,
        overrides={"file_copies": 4_000, "events": 2_000, "mets_files": 200},
    )
    names = [r.name for r in results]
    assert names == ["plan sqlite", "plan sqlite", "events sqlite", "mets"]
    assert all(r.seconds > 0 and r.met is not None for r in results)
    assert "2,000 events, 1 process" in results[2].what
    assert list(tmp_path.iterdir()) == []  # the generated databases were deleted


@pytest.mark.skipif(not POSTGRES_URL, reason="PRESERVATION_TEST_POSTGRES_URL not set")
def test_plan_on_postgresql(tmp_path: Path) -> None:
    import scale

    results = scale.run(
        tmp_path, True, {"plan", "events"}, POSTGRES_URL, {"file_copies": 2_000, "events": 500}
    )
    assert [r.name for r in results] == [
        "plan sqlite",
        "plan sqlite",
        "plan postgresql",
        "plan postgresql",
        "events sqlite",
        "events postgresql",
    ]


def test_suite_runs_tiny_datasets_and_writes_markdown(tmp_path: Path) -> None:
    import suite

    out = tmp_path / "bench.md"
    args = argparse.Namespace(
        quick=True,
        only="identify,ceiling",
        datasets="large,small",
        out=str(out),
        workdir=tmp_path,
        workers=2,
        postgres=None,
        no_postgres=True,
    )
    tiny = suite.Sizes(large=(2, 64 * 1024), small=30, scans=(1, 2), huge=40)
    run = suite.Suite(args, sizes=tiny)
    assert run.run() == 0
    ops = {(r.dataset, r.operation) for r in run.results}
    assert ops == {
        ("large", "identify"),
        ("large", "sha256 ceiling"),
        ("small", "identify"),
        ("small", "sha256 ceiling"),
    }
    small = next(r for r in run.results if r.operation == "identify" and r.dataset == "small")
    assert small.files == 30 and small.peer is not None and small.ours.peak_rss_mb > 0
    text = out.read_text(encoding="utf-8")
    assert "| small | identify | pygfried |" in text
    assert "Targets:" in text and "Machine:" in text and "Python 3" in text
    assert [p.name for p in tmp_path.iterdir()] == ["bench.md"]  # data deleted


def test_suite_refuses_unknown_names() -> None:
    import suite

    with pytest.raises(SystemExit, match="unknown benchmark"):
        suite.main(["--only", "audit,nonsense"])
    with pytest.raises(SystemExit, match="unknown dataset"):
        suite.main(["--datasets", "small,medium"])
