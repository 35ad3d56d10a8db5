"""The atheris fuzz targets of scripts/fuzz/: a short, time-bounded run of each, and the
inputs they found replayed as regression tests.

A longer run is documented in each target's docstring (hours, several workers).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from preservation.bags.tagfiles import parse_bagit_txt

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "scripts" / "fuzz"
SECONDS = 6  # per target; the two run side by side


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"fuzz_{name}", FUZZ / f"fuzz_{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_short_fuzz_runs_find_nothing(tmp_path: Path) -> None:
    """Both targets at once (the wall time is the slower one's), seeded corpora."""
    runs: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    for target in ("bag", "sheet"):
        script, work = FUZZ / f"fuzz_{target}.py", tmp_path / target
        corpus = work / "corpus"
        subprocess.run([sys.executable, str(script), "--make-seeds", str(corpus)], check=True,
                       timeout=60)  # fmt: skip
        assert len(list(corpus.iterdir())) >= 4
        proc = subprocess.Popen(
            [sys.executable, str(script), str(corpus), f"-max_total_time={SECONDS}",
             "-timeout=20", "-rss_limit_mb=2048", f"-artifact_prefix={work}/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=work,
        )  # fmt: skip
        runs[target] = (proc, work)
    for target, (proc, work) in runs.items():
        _out, err = proc.communicate(timeout=SECONDS + 90)
        log = err[-4000:]
        assert proc.returncode == 0, f"{target}: {log}"
        assert not list(work.glob("crash-*")), f"{target}: {log}"
        done = [line for line in err.splitlines() if line.startswith("Done ")]
        assert done and int(done[-1].split()[1]) > 20, f"{target}: {log}"  # it really ran


# Inputs the fuzzers found, kept as regression tests of the fixes they led to.


def test_nul_in_the_declared_encoding_is_reported() -> None:
    """fuzz_bag: codecs.lookup raised ValueError (embedded NUL) out of the validator."""
    text = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF\x00-8\n"
    decl, problems = parse_bagit_txt(text)
    assert decl.codec is None and any(f.is_error for f in problems)


@pytest.mark.parametrize(
    "sheet_xml",
    [
        # xml.etree ParseError out of openpyxl (not well-formed worksheet)
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><shee\x00',
        # TypeError out of openpyxl (an attribute it does not know)
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b'<sheetViews><sheetView workbookViewId="0"><selection sQref="A1"/></sheetView>'
        b"</sheetViews><sheetData/></worksheet>",
    ],
)
def test_malformed_worksheet_is_refused_with_sht001(sheet_xml: bytes) -> None:
    sheet = load("sheet")
    data = b"\x01" + sheet_xml
    sheet.check(data)  # raises AssertionError (or anything else) on a regression
    path = sheet.build(data)
    from preservation.errors import SheetUnreadable
    from preservation.ingest.sheet import read_sheet

    with pytest.raises(SheetUnreadable, match=r"sheet\.xlsx"):
        read_sheet(path)
