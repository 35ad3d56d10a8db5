"""Ingest memory does not grow with the number of files: findings are spilled to disk,
the report is written piece by piece (every finding still in it), identification runs
in worker processes whose memory is bounded and measured too."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

SMALL, LARGE = 6_000, 30_000  # both past the first identification batches
# Peak RSS growth of the ingest process allowed from SMALL to LARGE files (dry runs).
# Measured from 6,000 to 15,000 files: 92 MB when every finding and the whole rendered
# report were held in memory; 26 MB when Siegfried ran in the ingest process and the
# discovered names, the duplicate-check digests and the format findings were held per
# file (about 2 KB per file); 2-4 MB with the discovered files in a list (about 450
# bytes each, so 10-11 MB from 6,000 to 30,000). Now the discovered files are on disk
# too (preservation.ingest.filetable): 4 MB from 6,000 to 30,000 files, 4 MB from
# 15,000 to 100,000 (the bounded page caches of the scratch databases filling up).
MAX_GROWTH_MB = 7
# Peak RSS of any one process (the ingest process, each identification worker).
MAX_PEAK_MB = 200

SCRIPT = """
import json, resource, sys
from pathlib import Path
from preservation.ingest import examine
from preservation.ingest.pipeline import IngestRequest, run_ingest
from preservation.repository import init_repository

workers = []
close = examine.Examiner.close
def noted(self, cancel=False):
    workers.append(self.worker_peak_kb)
    close(self, cancel)
examine.Examiner.close = noted

source, repo = Path(sys.argv[1]), Path(sys.argv[2])
sheet = Path(sys.argv[3]) if len(sys.argv) > 3 else None
request = IngestRequest(source=source, sheet=sheet, dry_run=True)
receipt = run_ingest(init_repository(repo), request)
status = Path("/proc/self/status").read_text()
hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"hwm_kb": int(hwm.split()[1]), "workers_kb": max(workers),
                  "children_kb": children, "receipt": receipt.to_dict()}))
"""


def make_transfer(root: Path, count: int) -> Path:
    """``count`` small files of random bytes (unidentifiable: findings for each)."""
    rng = random.Random(count)
    for i in range(count):
        folder = root / f"d{i // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.bin").write_bytes(rng.randbytes(256))
    return root


def make_scanned(root: Path, count: int) -> tuple[Path, Path]:
    """``count`` page files (4 per item, random bytes) named ``<档号>-<page>.tif`` in
    a folder per item, and the catalogue sheet with a row per item."""
    from tests.support import transfers as T

    rng = random.Random(count)
    rows = []
    for n in range(1, count // 4 + 1):
        code = T.item_code(n)
        rows.append(T.sheet_row(n, pages=4))
        folder = root / code
        folder.mkdir(parents=True)
        for page in range(1, 5):
            (folder / f"{code}-{page:04d}.tif").write_bytes(rng.randbytes(256))
    return root, T.write_csv_sheet(root.with_suffix(".csv"), rows)


def ingest(
    tmp_path: Path, count: int, *, sheet: bool = False
) -> tuple[int, int, dict[str, object]]:
    if sheet:
        source, sheet_path = make_scanned(tmp_path / f"t{count}", count)
        extra = [str(sheet_path)]
    else:
        source, extra = make_transfer(tmp_path / f"t{count}", count), []
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(source), str(tmp_path / f"repo{count}"), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # the workers are the ingest process's children: what they report of themselves
    # and what the kernel accounts to their parent agree (within page accounting)
    assert out["workers_kb"] > 0 and out["children_kb"] >= 0.95 * out["workers_kb"]
    return out["hwm_kb"] // 1024, max(out["children_kb"], out["workers_kb"]) // 1024, out[
        "receipt"
    ]


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_file_count(tmp_path: Path) -> None:
    small, small_workers, _ = ingest(tmp_path, SMALL)
    large, large_workers, receipt = ingest(tmp_path, LARGE)
    assert large - small < MAX_GROWTH_MB, f"peak RSS {small} MB -> {large} MB"
    assert max(large, small_workers, large_workers) < MAX_PEAK_MB, (
        f"peak RSS: ingest {large} MB, workers {small_workers} MB and {large_workers} MB"
    )

    # Nothing lost: the receipt lists a bounded number and says so; the report has all.
    findings = receipt["findings"]
    assert isinstance(findings, list) and len(findings) == 100
    assert receipt["findings_truncated"] is True
    report_path = Path(str(receipt["report"])).with_suffix(".json")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    not_passed = [f for f in report["findings"] if f["result"] != "pass"]
    assert receipt["findings_total"] == len(not_passed) >= 2 * LARGE
    per_file = [f for f in report["findings"] if "file" in f]
    assert len(per_file) >= 2 * LARGE  # unidentified or not on the list; not opened
    names = [f"d{i // 100:03d}/f{i:06d}.bin" for i in range(LARGE)]
    assert {f["file"] for f in per_file} == set(names)
    assert not_passed[: len(findings)] == findings
    html = report_path.with_suffix(".html").read_text(encoding="utf-8")
    assert html.count('<td class="result r-') == len(report["findings"])
    assert f"<td>{names[-1]}</td>" in html


@pytest.mark.slow
def test_peak_memory_with_a_sheet_does_not_grow_with_rows_and_pages(tmp_path: Path) -> None:
    # Measured from 6,000 pages / 1,500 rows to 24,000 pages / 6,000 rows: 111 -> 134 MB
    # when the rows were Record objects in memory with their file lists (about 1.4 KB
    # per row and 150 bytes per linked page), the METS writer's links in dicts.
    # Now the rows and links are in a scratch database (preservation.metadata.records):
    # 104 -> 111 MB, and 111 -> 111 MB from 24,000 to 48,000 pages: what grows at first
    # is one more database's bounded page cache (2 MB) and bounded lookup caches.
    small, _, small_receipt = ingest(tmp_path, SMALL, sheet=True)
    large, _, receipt = ingest(tmp_path, 4 * SMALL, sheet=True)
    assert large - small < MAX_GROWTH_MB + 3, f"peak RSS {small} MB -> {large} MB"
    assert (small_receipt["items"], receipt["items"]) == (SMALL // 4, SMALL)
    # every row found its pages and every page its row: no catalogue finding at all
    # (a page without a row, or a row without pages, would be one)
    report = json.loads(Path(str(receipt["report"])).with_suffix(".json").read_text("utf-8"))
    assert report["findings"], "the random bytes have findings of their own"
    sheet = [f for f in report["findings"] if f["code"].startswith("SHEET")]
    assert not sheet, sheet[:5]


REPORT_SCRIPT = """
import io, sys
from datetime import UTC, datetime
from pathlib import Path
from preservation.ingest.finding_store import FindingStore
from preservation.ingest.findings import Finding
from preservation.ingest.report import CheckReport
import preservation.ingest.identify, preservation.ingest.usability

n, out = int(sys.argv[1]), Path(sys.argv[2])
store = FindingStore(directory=out / "findings")
for i in range(n):
    name = f"d{i // 100:04d}/f{i:07d}.bin"
    store.append(Finding("OPEN-001", "not performed", f"{name}: no library", file=name))
    store.append(Finding("FMT-002", "warn", f"{name}: not on the accepted list", file=name))
now = datetime.now(UTC)
report = CheckReport("t", None, now, now, store, blocking_properties=("usability",))
with (out / "report.json").open("wb") as fh:
    report.write_json(fh)
with (out / "report.html").open("wb") as fh:
    report.write_html(fh)
status = Path("/proc/self/status").read_text()
print(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
"""


def report_peak_mb(tmp_path: Path, count: int) -> int:
    out = tmp_path / f"r{count}"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", REPORT_SCRIPT, str(count), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert len(data["findings"]) == 2 * count and not data["blocked"]
    assert data["findings"][0]["code"] == "FMT-002"  # cheapest first
    assert data["findings"][-1]["file"] == f"d{(count - 1) // 100:04d}/f{count - 1:07d}.bin"
    return int(done.stdout.split()[-1]) // 1024


@pytest.mark.slow
def test_report_memory_does_not_grow_with_findings(tmp_path: Path) -> None:
    small = report_peak_mb(tmp_path, 10_000)
    large = report_peak_mb(tmp_path, 100_000)
    assert large - small < 10, f"peak RSS {small} MB -> {large} MB"


EXTRACT_SCRIPT = """
import sys
from pathlib import Path
from preservation.config import IngestSettings
from preservation.ingest.archives import extract
result = extract(Path(sys.argv[1]), Path(sys.argv[2]), IngestSettings())
status = Path("/proc/self/status").read_text()
hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
print(result.files, int(hwm.split()[1]))
"""


def extract_peak_mb(tmp_path: Path, count: int) -> int:
    import io
    import tarfile

    archive = tmp_path / f"t{count}.tar"
    rng = random.Random(count)
    with tarfile.open(archive, "w") as tf:
        for i in range(count):
            data = rng.randbytes(32)
            info = tarfile.TarInfo(f"T/d{i // 100:04d}/f{i:06d}.bin")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return archive_extract_peak_mb(archive, tmp_path / f"x{count}", count)


def archive_extract_peak_mb(archive: Path, out: Path, count: int) -> int:
    """Peak RSS (MB) of extracting ``archive`` (``count`` members) in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", EXTRACT_SCRIPT, str(archive), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    files, hwm_kb = (int(v) for v in done.stdout.split())
    assert files == count
    return hwm_kb // 1024


@pytest.mark.slow
def test_tar_extraction_memory_does_not_grow_with_members(tmp_path: Path) -> None:
    # Measured: 37 -> 54 MB from 10,000 to 40,000 members when tarfile kept every
    # member read and the names seen were a set; 34 -> 36 MB now.
    small = extract_peak_mb(tmp_path, 10_000)
    large = extract_peak_mb(tmp_path, 40_000)
    assert large - small < 6, f"peak RSS {small} MB -> {large} MB"
