"""Statistics reports, periodic preservation checks and restore drills."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from preservation.cli.app import cli, console, emit, fail, human_bytes, json_option, state


@cli.command("report")
@click.option("--period", required=True, help="2022 | 2022-Q3 | 2022-07 (UTC)")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "pdf", "csv", "json"]),
    default="html",
    show_default=True,
)
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="file to write (default: reports/statistics/<period>.<format>)",
)
@json_option
def report(period: str, fmt: str, lang: str, out: Path | None) -> None:
    """The statistics report of a year, quarter or month, from the repository's records."""
    from preservation.reports.monthly import make_report

    path, data = make_report(state().repository(), period, fmt=fmt, lang=lang, out=out)

    def human() -> None:
        t = data["totals"]
        std = data["receiving_standard"]
        console.print(
            f"{data['period']['label']}: {t['transfers']} transfers ({std['met']} met the"
            f" standard), {t['aips']} AIPs, {t['items']} items, {t['volumes']} volumes,"
            f" {t['pages']} pages, {human_bytes(t['bytes'])}"
        )
        console.print(f"written: {path}")

    emit({"file": str(path), "report": data}, human)


@cli.command("check")
@click.option("--aip", "aips", multiple=True, help="AIP id (repeatable)")
@click.option("--all", "all_", is_flag=True, help="every active AIP held on the store")
@click.option("--sample", type=int, default=None, help="check N random AIPs of those chosen")
@click.option("--store", default=None, help="the store to check (default: the primary)")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="folder for the reports (default: reports/checks/<UTC time>)",
)
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True)
@json_option
def check(
    aips: tuple[str, ...],
    all_: bool,
    sample: int | None,
    store: str | None,
    out: Path | None,
    workers: int,
) -> None:
    """The DA/T 70 four-property check of stored AIPs; exit 1 when a check fails."""
    from preservation.checks.periodic import CheckRequest, run_check

    run = run_check(
        state().repository(),
        CheckRequest(aips=aips, all=all_, sample=sample, store=store, out=out, workers=workers),
    )
    data = run.to_dict()

    def human() -> None:
        t = Table("AIP", "version", "pass", "fail", "warn", "failed checks")
        for a in run.aips:
            t.add_row(
                a.aip,
                str(a.version),
                str(a.totals["pass"]),
                str(a.totals["fail"]),
                str(a.totals["warn"]),
                ", ".join(a.failed_checks),
            )
        console.print(t)
        console.print(f"reports: {run.folder}")

    emit(data, human)
    if not run.ok:
        fail(1)


@cli.command("drill")
@click.option("--count", type=click.IntRange(1, 10_000), default=1, show_default=True)
@click.option("--store", default=None, help="store to restore from (default: the off-site one)")
@click.option("--seed", type=int, default=None, help="random seed (repeatable choice)")
@json_option
def drill(count: int, store: str | None, seed: int | None) -> None:
    """Restore drill: export random AIPs from the off-site store alone and validate
    them fully; exit 1 when one does not restore."""
    from preservation.checks.drill import DrillRequest, run_drill

    run = run_drill(state().repository(), DrillRequest(count=count, store=store, seed=seed))
    data = run.to_dict()

    def human() -> None:
        for r in run.results:
            mark = "restored" if r.ok else "FAILED"
            console.print(
                f"{r.aip} v{r.version} from {run.store}: {mark}"
                f" ({r.files} files, {human_bytes(r.bytes)}, {r.seconds}s)"
            )
            for p in r.problems:
                console.print(f"  {p}")
        if not run.results:
            console.print(f"no AIP is held on {run.store}")

    emit(data, human)
    if not run.ok:
        fail(1)
