"""The access package (DIP) of an AIP version: what a user reads, not what we keep.

Layout (a folder, a zip or a tar)::

    data/<path>              the files a user opens: for every original that a
                             migration gave an access or migrated copy (files.role
                             'access' / 'migrated', files.derived_from), that copy;
                             every other original as it is
    metadata/mets.xml        METS (TYPE "DIP") of exactly these files: descriptive
                             and archival records, technical metadata, rights
    metadata/records.csv     the descriptive metadata as a table (the catalogue
                             sheet's columns, 档号 … 压缩方式, plus the files of each row)

Every file is read and verified as :mod:`preservation.access.export` does (a bad
object: incident and DigestMismatch, nothing written).

Restriction. A payload file is *restricted* when the record (件/卷) it belongs to is
not public by :func:`preservation.catalog.visibility.is_public` (its own 密级 and
开放状态, else the AIP's); a file that belongs to no record follows the AIP-level
fields; a migrated or access copy follows its original. A principal that may not see
restricted records (role ``reader``) gets a DIP without restricted files, and without
the records they belong to; ``principal=None`` (the CLI operator) and staff roles get
everything. The rule is applied file by file, so a reader's DIP of an AIP whose
AIP-level fields are mixed (some records open, some not: such an AIP is not listed
to readers, :func:`preservation.catalog.visibility.aip_visible`) holds its open
records; whether a reader may reach the AIP at all is the caller's question (the
REST API answers it before calling). A DIP left with no file is refused
(PermissionDenied).

Memory: unlike the bag export, a DIP holds the version's METS summary (its file list
and records) while it is prepared; file contents still stream in fixed-size blocks.

Spreadsheet safety: every CSV cell goes through
:mod:`preservation.metadata.spreadsheet_safe` (a cell a spreadsheet would read as a
formula gets a leading apostrophe, OWASP's advice against formula injection).
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

from preservation.access.export import (
    ArchiveFormat,
    Entry,
    ExportResult,
    Source,
    file_entry,
    open_source,
    stream_entries,
    write_entries,
)
from preservation.errors import PermissionDenied, UsageError
from preservation.metadata.spreadsheet_safe import write_rows
from preservation.model import ARCHIVAL_FIELDS, FileEntry, Record, utcnow

if TYPE_CHECKING:
    from preservation.access.principal import Principal
    from preservation.metadata.mets_reader import MetsSummary
    from preservation.repository import Repository

METS_PATH = "metadata/mets.xml"
CSV_PATH = "metadata/records.csv"
DERIVED_ROLES = ("access", "migrated")


def write_csv(out: IO[str], rows: Iterable[Sequence[object]]) -> None:
    """Write rows of cells, every one made spreadsheet-safe."""
    write_rows(csv.writer(out), rows)


# --------------------------------------------------------------------- reading


def read_version_mets(source: Source, work: Path) -> MetsSummary:
    """The version's METS, read from the store through the verified path."""
    from preservation.catalog.export_queries import export_file
    from preservation.metadata.mets_reader import read_mets

    with source.repo.catalog.session() as s:
        f = export_file(s, source.info.version_id, METS_PATH)
    if f is None:
        raise UsageError(
            f"AIP {source.info.aip_id} v{source.info.version}: the catalogue lists no {METS_PATH}"
        )
    local = work / "source-mets.xml"
    with local.open("wb") as fh:
        for block in source.blocks(f):
            fh.write(block)
    return read_mets(local, label=f"{source.info.aip_id}/v{source.info.version}/{METS_PATH}")


def _record_public(aip_fields: Mapping[str, str], record: Record) -> bool:
    from preservation.catalog.visibility import is_public

    keys = ("security_level", "open_status")
    merged = {k: record.fields.get(k) or aip_fields.get(k) for k in keys}
    return is_public(merged)


def restricted_in(summary: MetsSummary) -> set[str]:
    """Payload paths (relative to ``data/``) that only staff may see."""
    from preservation.catalog.visibility import is_public

    aip_public = is_public(summary.descriptive)
    record_of: dict[str, Record] = {}
    for record in summary.records:
        for path in record.files:
            record_of.setdefault(path, record)
    restricted: set[str] = set()
    by_uuid = {f.uuid: f for f in summary.files}
    for f in summary.files:
        origin = f
        seen = {f.uuid}
        while (
            origin.derived_from and origin.derived_from in by_uuid and origin.path not in record_of
        ):
            origin = by_uuid[origin.derived_from]
            if origin.uuid in seen:
                break
            seen.add(origin.uuid)
        found = record_of.get(origin.path)
        public = _record_public(summary.descriptive, found) if found else aip_public
        if not public:
            restricted.add(f.path)
    return restricted


def restricted_paths(source: Source) -> set[str]:
    """Bag paths (``data/…``) of the version's restricted payload files."""
    work = Path(tempfile.mkdtemp(prefix="restriction-"))
    try:
        summary = read_version_mets(source, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {f"data/{p}" for p in restricted_in(summary)}


# --------------------------------------------------------------------- selection


@dataclass
class Selection:
    files: list[FileEntry]
    records: list[Record]
    skipped: list[str] = field(default_factory=list)


def select_files(summary: MetsSummary, *, sees_restricted: bool) -> Selection:
    """The files of the access package and the records that describe them."""
    replaced = {
        f.derived_from for f in summary.files if f.role in DERIVED_ROLES and f.derived_from
    }
    restricted = set() if sees_restricted else restricted_in(summary)
    chosen: list[FileEntry] = []
    skipped: list[str] = []
    for f in summary.files:
        if f.role not in DERIVED_ROLES and f.uuid in replaced:
            continue
        if f.path in restricted:
            skipped.append(f.path)
            continue
        chosen.append(f)
    included = {f.path for f in chosen}
    # an original replaced by its access copy: the record now points at the copy
    copy_of: dict[str, str] = {}
    by_uuid = {f.uuid: f for f in summary.files}
    for f in chosen:
        if f.role in DERIVED_ROLES and f.derived_from in by_uuid:
            copy_of.setdefault(by_uuid[f.derived_from].path, f.path)
    records: list[Record] = []
    for r in summary.records:
        paths = [copy_of.get(p, p) for p in r.files]
        kept = [p for p in dict.fromkeys(paths) if p in included]
        if r.files and not kept:
            continue  # every file of the record is restricted: the record goes too
        if not sees_restricted and not r.files and not _record_public(summary.descriptive, r):
            continue
        records.append(Record(row=r.row, fields=dict(r.fields), files=kept))
    return Selection(chosen, records, skipped)


# --------------------------------------------------------------------- writing


def _write_mets(
    summary: MetsSummary, sel: Selection, out: Path, descriptive: Mapping[str, str]
) -> None:
    from preservation.metadata.mets_writer import MetsPackage, write_mets

    files = sel.files
    write_mets(
        out,
        MetsPackage(
            aip_id=summary.aip_id,
            version=summary.version or 1,
            created=utcnow(),
            label=summary.label,
            files=lambda: iter(files),
            agents=list(summary.agents),
            events=(),
            descriptive=dict(descriptive),
            records=sel.records,
            rights=summary.rights,
            type="DIP",
        ),
    )


def _write_records_csv(sel: Selection, descriptive: Mapping[str, str], out: Path) -> None:
    keys = list(ARCHIVAL_FIELDS)
    header = [*[ARCHIVAL_FIELDS[k] for k in keys], "文件 files"]
    rows: list[Sequence[object]] = [header]
    if sel.records:
        for r in sel.records:
            rows.append([*[r.fields.get(k, "") for k in keys], "; ".join(r.files)])
    else:
        rows.append([*[descriptive.get(k, "") for k in keys], "; ".join(f.path for f in sel.files)])
    with out.open("w", encoding="utf-8-sig", newline="") as fh:
        write_csv(fh, rows)


def _local_entry(path: str, local: Path) -> Entry:
    def blocks() -> Iterator[bytes]:
        with local.open("rb") as fh:
            while block := fh.read(1024 * 1024):
                yield block

    return Entry(path, local.stat().st_size, blocks)


@dataclass
class _Dip:
    source: Source
    work: Path
    selection: Selection

    def entries(self) -> Iterator[Entry]:
        from preservation.catalog.export_queries import export_file

        try:
            for f in self.selection.files:
                with self.source.repo.catalog.session() as s:
                    row = export_file(s, self.source.info.version_id, f.bag_path)
                if row is None:
                    raise UsageError(
                        f"AIP {self.source.info.aip_id} v{self.source.info.version}:"
                        f" {f.bag_path} is in the METS but not in the catalogue"
                    )
                yield file_entry(self.source, row)
            yield _local_entry(METS_PATH, self.work / "mets.xml")
            yield _local_entry(CSV_PATH, self.work / "records.csv")
        finally:
            shutil.rmtree(self.work, ignore_errors=True)


def prepare_dip(
    repo: Repository,
    aip_id: str,
    *,
    version: int | None = None,
    store: str | None = None,
    principal: Principal | None = None,
) -> _Dip:
    """Read the METS, choose the files, write the DIP's METS and CSV to a scratch
    folder; everything refusable is refused here."""
    source = open_source(
        repo, aip_id, version=version, store=store, principal=principal, whole=False
    )
    sees = principal is None or principal.sees_restricted
    scratch = repo.config.staging_dir
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"dip-{aip_id}-", dir=scratch))
    try:
        summary = read_version_mets(source, work)
        sel = select_files(summary, sees_restricted=sees)
        if not sel.files:
            assert principal is not None
            raise PermissionDenied(
                user=principal.name,
                role=str(principal.role),
                action=f"see any file of AIP {aip_id} v{source.info.version}",
            )
        from preservation.catalog.visibility import is_public

        descriptive = summary.descriptive if sees or is_public(summary.descriptive) else {
            k: v for k, v in summary.descriptive.items() if k in ("reference_code", "fonds", "year")
        }
        _write_mets(summary, sel, work / "mets.xml", descriptive)
        _write_records_csv(sel, descriptive, work / "records.csv")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return _Dip(source, work, sel)


def stream_dip(
    repo: Repository,
    aip_id: str,
    *,
    version: int | None = None,
    fmt: ArchiveFormat = "zip",
    store: str | None = None,
    principal: Principal | None = None,
) -> Iterator[bytes]:
    """The access package as a zip or tar stream (see the module docstring)."""
    dip = prepare_dip(repo, aip_id, version=version, store=store, principal=principal)
    return stream_entries(dip.entries(), fmt)


def export_dip(
    repo: Repository,
    aip_id: str,
    target: Path,
    *,
    fmt: Literal["dir", "zip", "tar"] = "dir",
    version: int | None = None,
    store: str | None = None,
    principal: Principal | None = None,
) -> ExportResult:
    """Write the access package to a folder or an archive file (temporary name, then
    renamed)."""
    dip = prepare_dip(repo, aip_id, version=version, store=store, principal=principal)
    out = write_entries(dip.entries(), target, fmt)
    return ExportResult(
        aip=aip_id,
        version=dip.source.info.version,
        kind="dip",
        output=str(out),
        format=fmt,
        files=dip.source.checked[0],
        bytes=dip.source.checked[1],
        stores=[s.name for s in dip.source.stores],
        skipped=list(dip.selection.skipped),
    )


__all__ = [
    "export_dip",
    "prepare_dip",
    "restricted_in",
    "restricted_paths",
    "select_files",
    "stream_dip",
    "write_csv",
]
