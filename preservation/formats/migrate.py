"""Migrations: plan by policy, convert with real tools, accept only verified outputs.

``migrate (--aip ID | --format PUID | --all-at-risk) [--dry-run]``:

- ``--format PUID`` migrates every original file of that format (PUID or
  ``local/<name>``) whose policy entry names an action, whatever its status (so a site
  can migrate acceptable or even preservation formats on request);
- ``--aip ID`` and ``--all-at-risk`` migrate original files whose status is
  ``at-risk`` or ``obsolete`` and whose entry names an action (in one AIP, or in all).

Files that already have a migrated derivative in the current version, and files that
are themselves derivatives, are not selected again. At-risk files without an action are
listed as skipped.

Each file is read from the store into a scratch folder, converted by its action's tool
(:func:`~preservation.formats.tools.run_tool`: time limit, per-file size limit), and
the output is verified (:func:`~preservation.formats.verify.verify_output`). A failed
conversion or verification is reported with the tool's output and changes nothing.
The accepted outputs of one AIP become one new version (reason ``migration``), each
beside its original (``name.ext`` becomes ``name.<new ext>``, or ``name.ext.<new ext>``
when that is taken), with the role ``migrated``, a PREMIS derivation relationship to its
source, and a ``migration`` event naming the tool, its version, the parameters and the
verification outcome. The original files are always kept.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from preservation.catalog.version_record import CurrentFile
from preservation.errors import PreservationError, UsageError
from preservation.faults import checkpoint
from preservation.formats.policy import AT_RISK, FormatPolicy, PolicyEntry, policy_for
from preservation.formats.tools import ACTIONS, TOOLS, Action, run_tool, tool_version
from preservation.formats.verify import Verdict, verify_output
from preservation.model import Agent, Event, new_uuid
from preservation.paths import join_key
from preservation.repository import Repository

log = logging.getLogger(__name__)
MIN_OUTPUT_LIMIT = 64 * 1024 * 1024  # per-file limit floor for tiny inputs


@dataclass
class Candidate:
    file: CurrentFile
    entry: PolicyEntry
    action: Action | None  # None: at risk but no action (skipped)
    target_path: str = ""  # planned payload path of the output

    def to_dict(self) -> dict[str, Any]:
        f = self.file
        return {
            "aip": f.aip_id,
            "version": f.version,
            "path": f.payload_path,
            "puid": f.puid,
            "format": self.entry.name,
            "status": self.entry.status,
            "size": f.size,
            "action": self.action.name if self.action else None,
            "tool": self.action.tool.name if self.action else None,
            "expected_format": (
                f"{self.action.target_name} ({self.action.outputs[0]})" if self.action else None
            ),
            "output_path": self.target_path or None,
        }


@dataclass
class Result:
    candidate: Candidate
    accepted: bool
    tool_version: str = ""
    tool_output: str = ""
    verdict: Verdict | None = None
    error: str = ""
    output_size: int = 0
    version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.candidate.to_dict(),
            "accepted": self.accepted,
            "tool_version": self.tool_version,
            "tool_output": self.tool_output,
            "error": self.error,
            "output_size": self.output_size,
            "verification": self.verdict.to_dict() if self.verdict else None,
            "new_version": self.version,
        }


@dataclass
class MigrationReport:
    dry_run: bool
    planned: list[Candidate] = field(default_factory=list)
    skipped: list[Candidate] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)  # aip -> new version

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if not r.accepted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "planned": [c.to_dict() for c in self.planned],
            "skipped": [dict(c.to_dict(), reason="no migration action") for c in self.skipped],
            "results": [r.to_dict() for r in self.results],
            "versions": self.versions,
            "migrated": sum(1 for r in self.results if r.accepted),
            "failed": len(self.failed),
        }


# ------------------------------------------------------------------ planning


def _by_aip(files: Iterator[CurrentFile]) -> Iterator[list[CurrentFile]]:
    group: list[CurrentFile] = []
    for f in files:
        if group and group[0].aip_id != f.aip_id:
            yield group
            group = []
        group.append(f)
    if group:
        yield group


def _target_path(path: str, ext: str, taken: set[str]) -> str:
    p = PurePosixPath(path)
    for candidate in (str(p.with_suffix(f".{ext}")), f"{path}.{ext}"):
        if candidate not in taken:
            return candidate
    n = 2
    while f"{path}.{n}.{ext}" in taken:
        n += 1
    return f"{path}.{n}.{ext}"


def plan_migrations(
    repo: Repository,
    *,
    aip_id: str | None = None,
    puid: str | None = None,
    all_at_risk: bool = False,
    policy: FormatPolicy | None = None,
) -> MigrationReport:
    """What would be migrated (``planned``) and what is at risk without an action."""
    from preservation.catalog.version_record import current_payload_files

    if sum((aip_id is not None, puid is not None, all_at_risk)) != 1:
        raise UsageError("give exactly one of --aip, --format or --all-at-risk")
    policy = policy or policy_for(repo)
    report = MigrationReport(dry_run=True)
    with repo.catalog.session() as s:
        if aip_id is not None:
            from preservation.catalog.queries import require_aip

            require_aip(s, aip_id)
        for files in _by_aip(current_payload_files(s, aip_id=aip_id)):
            derived = {f.derived_from for f in files if f.derived_from}
            taken = {f.payload_path for f in files}
            for f in files:
                if (f.role or "original") != "original" or f.file_uuid in derived:
                    continue
                entry = policy.lookup(f.puid, f.mime, f.path)
                if entry is None:
                    continue
                if puid is not None:
                    chosen = puid in (entry.key, f.puid) and entry.action is not None
                else:
                    chosen = entry.status in AT_RISK
                if not chosen:
                    continue
                if entry.action is None:
                    report.skipped.append(Candidate(f, entry, None))
                    continue
                act = ACTIONS[entry.action]
                target = _target_path(f.payload_path, act.extension, taken)
                taken.add(target)
                report.planned.append(Candidate(f, entry, act, target))
    return report


# ------------------------------------------------------------------ running


def _download(repo: Repository, f: CurrentFile, folder: Path) -> Path:
    folder.mkdir(parents=True)
    target = folder / PurePosixPath(f.payload_path).name
    key = join_key(f.aip_id, f"v{f.origin_version}", f.path)
    with repo.primary.open(key) as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1024 * 1024)
    return target


def _output(out_dir: Path, source: Path, action: Action) -> Path | None:
    expected = out_dir / f"{source.stem}.{action.extension}"
    if expected.is_file():
        return expected
    made = [p for p in out_dir.iterdir() if p.is_file()]
    return made[0] if len(made) == 1 else None


def convert(repo: Repository, c: Candidate, scratch: Path) -> tuple[Result, Path | None]:
    """Convert and verify one file in ``scratch``; the output path when accepted."""
    assert c.action is not None
    act = c.action
    settings = repo.config.settings.formats
    work = scratch / new_uuid()
    source = _download(repo, c.file, work / "in")
    out_dir = work / "out"
    out_dir.mkdir()
    limit = min(
        settings.max_output_bytes,
        max(MIN_OUTPUT_LIMIT, int(c.file.size * settings.max_output_ratio)),
    )
    version = tool_version(act.tool)
    run = run_tool(
        act.argv(act.tool.path(), source, out_dir),
        cwd=work,
        timeout=settings.tool_timeout,
        max_file_bytes=limit,
    )
    result = Result(c, accepted=False, tool_version=version, tool_output=run.output)
    output = _output(out_dir, source, act) if run.ok else None
    if not run.ok:
        result.error = (
            f"{act.tool.name} timed out after {settings.tool_timeout:g} s"
            if run.timed_out
            else f"{act.tool.name} exited with status {run.returncode}"
        )
        return result, None
    if output is None:
        result.error = f"{act.tool.name} reported success but wrote no {act.extension} file"
        if act.extra_packages and "no export filter" in run.output:
            result.error += f" (a module may be missing: {', '.join(act.extra_packages)})"
        return result, None
    result.output_size = output.stat().st_size
    verdict = verify_output(source, output, act, scratch=work, timeout=settings.tool_timeout)
    result.verdict = verdict
    if not verdict.accepted:
        result.error = "output failed verification: " + "; ".join(
            f"{ch.name} ({ch.detail})" for ch in verdict.checks if not ch.ok
        )
        return result, None
    result.accepted = True
    return result, output


def _event(result: Result, new_file_uuid: str, agents: list[Agent]) -> Event:
    c = result.candidate
    assert c.action is not None and result.verdict is not None
    act = c.action
    tool_agent = f"{act.tool.name}/{result.tool_version}"
    out_fmt = result.verdict.output_format
    out_puid = out_fmt.puid if out_fmt else None
    return Event(
        type="migration",
        outcome="success",
        detail=(
            f"{act.description}: {act.tool.name} {result.tool_version};"
            f" parameters: {act.parameters}; {c.file.payload_path} ({c.file.puid})"
            f" -> {c.target_path} ({out_puid})"
        ),
        outcome_detail=f"output accepted: {result.verdict.summary()}",
        agents=[
            (tool_agent, "executing program"),
            *[
                (a.identifier, "validator" if a.type == "software" else "implementer")
                for a in agents
                if a.type != "organization"
            ],
        ],
        objects=[c.file.file_uuid or "", new_file_uuid],
    )


def run_migrations(
    repo: Repository,
    *,
    aip_id: str | None = None,
    puid: str | None = None,
    all_at_risk: bool = False,
    dry_run: bool = False,
    person: str | None = None,
) -> MigrationReport:
    """Plan, and unless ``dry_run`` convert, verify and record (see the module doc)."""
    from preservation.versions import (
        Changes,
        NewFile,
        build_version,
        cleanup_interrupted,
        default_agents,
    )

    if not dry_run:  # a version a killed run committed is made final before planning
        cleanup_interrupted(repo)
    report = plan_migrations(repo, aip_id=aip_id, puid=puid, all_at_risk=all_at_risk)
    if dry_run or not report.planned:
        return report
    report.dry_run = False
    for c in report.planned:  # every tool present before any work starts
        assert c.action is not None
        c.action.tool.path()
        if c.action.kind == "av":
            TOOLS["ffprobe"].path()  # verification reads the streams with it
    agents = default_agents(repo, person)
    root = repo.config.staging_dir
    root.mkdir(parents=True, exist_ok=True)
    by_aip: dict[str, list[Candidate]] = {}
    for c in report.planned:
        by_aip.setdefault(c.file.aip_id, []).append(c)
    for aip, candidates in by_aip.items():
        scratch = Path(tempfile.mkdtemp(prefix=f"migrate-{aip}-", dir=root))
        try:
            accepted: list[tuple[Result, Path]] = []
            for c in candidates:
                result, output = convert(repo, c, scratch)
                report.results.append(result)
                if output is not None:
                    accepted.append((result, output))
                else:
                    log.warning("migration of %s in %s failed: %s", c.file.path, aip, result.error)
            if not accepted:
                continue
            new_files: list[NewFile] = []
            events: list[Event] = []
            tool_agents: dict[str, Agent] = {}
            for result, output in accepted:
                c = result.candidate
                assert c.action is not None and result.verdict is not None
                nf = NewFile(
                    path=c.target_path,
                    source=output,
                    role="migrated",
                    derived_from=c.file.file_uuid,
                    format=result.verdict.output_format,
                    properties=dict(result.verdict.output_properties),
                )
                new_files.append(nf)
                events.append(_event(result, nf.uuid, agents))
                t = c.action.tool
                tool_agents[t.name] = Agent(
                    f"{t.name}/{result.tool_version}",
                    t.name,
                    "software",
                    version=result.tool_version,
                )
            checkpoint("migrate:before-version")
            try:
                version = build_version(
                    repo,
                    aip,
                    reason="migration",
                    changes=Changes(
                        add=new_files,
                        note=f"migration of {len(new_files)} file(s) by format policy",
                    ),
                    events=events,
                    agents=[*agents, *tool_agents.values()],
                ).version
            except PreservationError as e:  # this AIP is left as it was; go on with the next
                log.error("no new version of %s: %s: %s", aip, e.code, e.message)
                for result, _ in accepted:
                    result.accepted = False
                    result.error = f"output verified, but the new version failed: {e.code}: {e}"
                continue
            report.versions[aip] = version
            for result, _ in accepted:
                result.version = version
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return report
