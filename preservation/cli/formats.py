"""Format policy, format-risk check, re-identification and migration commands."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from preservation.cli.app import (
    cli,
    console,
    emit,
    fail,
    human_bytes,
    json_option,
    show_json,
    state,
)


@cli.group("formats")
def formats_group() -> None:
    """The format policy and format risks."""


@formats_group.command("policy")
@json_option
def formats_policy() -> None:
    """List the effective format policy (the registry with this site's overrides)."""
    from preservation.formats.policy import policy_for

    policy = policy_for(state().repository())
    data = policy.to_dict()

    def human() -> None:
        t = Table("PUID", "format", "category", "status", "target", "action", title=policy.title)
        for e in data["formats"]:
            t.add_row(
                e["key"] + (" *" if e["overridden"] else ""),
                e["name"],
                e["category"],
                e["status"],
                e["target"] or "",
                e["action"] or "",
            )
        console.print(t)
        console.print(
            f"version {policy.version}; unlisted formats: {policy.unlisted}; * = site override"
        )

    emit(data, human)


def _status_table(by_status: dict[str, Any]) -> Table:
    t = Table("status", "files", "bytes")
    for status, n in by_status.items():
        t.add_row(status, str(n["files"]), human_bytes(n["bytes"]))
    return t


@formats_group.command("report")
@json_option
def formats_report() -> None:
    """Files and bytes per format and status, at-risk files by AIP, and the trend."""
    from preservation.formats.risk import format_report

    data = format_report(state().repository())

    def human() -> None:
        console.print(_status_table(data["by_status"]))
        t = Table("PUID", "format", "status", "files", "bytes")
        for r in data["by_format"]:
            t.add_row(r["puid"], r["name"], r["status"], str(r["files"]), human_bytes(r["bytes"]))
        console.print(t)
        for aip, files in data["at_risk_by_aip"].items():
            console.print(f"{aip}: {len(files)} file(s) at risk")
            for f in files:
                console.print(f"  {f['path']}  {f['puid']}  {f['status']}  -> {f['target'] or '-'}")
        if data["trend"]:
            tr = Table("checked at", "policy", "at-risk files", "obsolete files", "files")
            for run in data["trend"]:
                st = run["by_status"]
                tr.add_row(
                    run["checked_at"][:19],
                    run["policy_version"],
                    str(st.get("at-risk", {}).get("files", 0)),
                    str(st.get("obsolete", {}).get("files", 0)),
                    str(sum(v["files"] for v in st.values())),
                )
            console.print(tr)

    emit(data, human)


@formats_group.command("check")
@json_option
def formats_check() -> None:
    """Evaluate every file against the current policy; alert once on newly at-risk files."""
    from preservation.formats.risk import run_format_risk_check

    report = run_format_risk_check(state().repository())
    data = report.to_dict()

    def human() -> None:
        console.print(_status_table(data["by_status"]))
        console.print(
            f"{data['at_risk_files']} file(s) at risk, {data['newly_at_risk']} newly;"
            f" alert {'sent' if data['alerted'] else 'not needed'}"
        )

    emit(data, human)


@formats_group.command("reidentify")
@click.option("--aip", "aip_id", help="Only this AIP (default: every active AIP).")
@json_option
def formats_reidentify(aip_id: str | None) -> None:
    """Re-run identification on stored files; changes become PREMIS events."""
    from preservation.access.accesslog import cli_change
    from preservation.formats.risk import reidentify

    repo = state().repository()
    with cli_change(repo, "reidentify", aip_id=aip_id):
        data = reidentify(repo, aip_id).to_dict()
    emit(data, lambda: show_json(data))


@cli.command("migrate")
@click.option("--aip", "aip_id", help="Migrate the at-risk files of this AIP.")
@click.option("--format", "puid", help="Migrate every file of this PUID (or local/<name>).")
@click.option("--all-at-risk", is_flag=True, help="Migrate every at-risk or obsolete file.")
@click.option("--dry-run", is_flag=True, help="List what would be migrated, change nothing.")
@click.option("--by", "person", help="Who asks for the migration (PREMIS agent).")
@json_option
def migrate(
    aip_id: str | None, puid: str | None, all_at_risk: bool, dry_run: bool, person: str | None
) -> None:
    """Migrate files to the policy's target formats; accepted outputs make new AIP versions."""
    from preservation.access.accesslog import cli_change
    from preservation.formats.migrate import run_migrations

    repo = state().repository()
    asked = {"format": puid, "all_at_risk": all_at_risk, "dry_run": dry_run}
    with cli_change(repo, "migrate", user=person, aip_id=aip_id, detail=asked) as logged:
        report = run_migrations(
            repo,
            aip_id=aip_id,
            puid=puid,
            all_at_risk=all_at_risk,
            dry_run=dry_run,
            person=person,
        )
        data = report.to_dict()
        logged["results"] = [
            {"aip": r["aip"], "path": r["path"], "accepted": r["accepted"]} for r in data["results"]
        ]

    def human() -> None:
        t = Table("AIP", "file", "format", "status", "action", "expected output")
        for c in data["planned"]:
            t.add_row(
                c["aip"],
                c["path"],
                c["puid"] or "",
                c["status"],
                c["action"] or "",
                c["expected_format"] or "",
            )
        console.print(t)
        for c in data["skipped"]:
            console.print(f"skipped (no action): {c['aip']} {c['path']} {c['puid']}")
        for r in data["results"]:
            if r["accepted"]:
                console.print(
                    f"migrated {r['aip']} {r['path']} -> {r['output_path']} (v{r['new_version']})"
                )
            else:
                console.print(f"FAILED {r['aip']} {r['path']}: {r['error']}")
                if r["tool_output"]:
                    console.print("  " + r["tool_output"].replace("\n", "\n  "))
        if dry_run:
            console.print(f"dry run: {len(data['planned'])} file(s) would be migrated")

    emit(data, human)
    if report.failed:
        fail(1)
