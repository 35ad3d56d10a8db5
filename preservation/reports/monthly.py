"""Making a statistics report, by hand (``preservation report``) or monthly (scheduler).

The scheduler's ``report`` job (``0 4 1 * *``: the first of each month) calls
:func:`scheduled_report`, which writes the report of the month before into
``<repository>/reports/statistics/``: HTML and JSON always, CSV, and PDF when
Chromium is installed (without it the job still succeeds and says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from preservation.errors import ToolMissing, UsageError
from preservation.model import utcnow
from preservation.reports.period import Period, parse_period, previous_month
from preservation.reports.render import FORMATS, render
from preservation.reports.statistics import gather

if TYPE_CHECKING:
    from preservation.repository import Repository

REPORTS_DIR = Path("reports") / "statistics"


def reports_dir(repo: Repository) -> Path:
    return repo.root / REPORTS_DIR


def make_report(
    repo: Repository,
    period: str | Period,
    *,
    fmt: str = "html",
    lang: str = "zh",
    out: Path | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Gather the figures of ``period`` and write them as ``fmt``; returns the file
    written and the figures. ``out`` defaults to ``reports/statistics/<period>.<fmt>``
    (``-en`` before the suffix for English)."""
    if fmt not in FORMATS:
        raise UsageError(f"format {fmt!r}: one of {', '.join(FORMATS)}")
    if lang not in ("zh", "en"):
        raise UsageError(f"language {lang!r}: zh or en")
    p = parse_period(period) if isinstance(period, str) else period
    data = gather(repo, p)
    if out is None:
        suffix = "" if lang == "zh" or fmt in ("json", "csv") else f"-{lang}"
        out = reports_dir(repo) / f"{p.label}{suffix}.{fmt}"
    return render(data, fmt, lang, out), data


def scheduled_report(repo: Repository) -> dict[str, Any]:
    """The scheduler's monthly job: last month's report in every format it can."""
    period = previous_month(utcnow())
    written: dict[str, str] = {}
    _, data = make_report(repo, period, fmt="json")
    written["json"] = str(reports_dir(repo) / f"{period.label}.json")
    for fmt in ("html", "csv", "pdf"):
        try:
            path, _ = make_report(repo, period, fmt=fmt)
        except ToolMissing as e:
            written[fmt] = f"not written: {e.code}: {e.message}"
            continue
        written[fmt] = str(path)
    return {
        "period": period.label,
        "files": written,
        "transfers": data["totals"]["transfers"],
        "aips": data["totals"]["aips"],
    }
