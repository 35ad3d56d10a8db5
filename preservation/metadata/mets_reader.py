"""Read an AIP's METS back: what the catalogue rebuild needs, from the stores alone.

The document is parsed with :mod:`~preservation.metadata.xmlsafe` (no entities, no
DTD, no network) as a stream: each section is handled when it ends and then freed,
so memory holds the summary, not the tree. The reader understands the METS that
:mod:`~preservation.metadata.mets_writer` writes (see the conventions in
:mod:`~preservation.metadata.premis` and :mod:`~preservation.metadata.descriptive`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

from preservation.errors import MetsInvalid
from preservation.metadata import premis as pm
from preservation.metadata.descriptive import Rights, read_archival, read_dublin_core
from preservation.metadata.mets_writer import TAG_GROUP, TagFile
from preservation.metadata.namespaces import (
    HASH_NAMES,
    METS_NS,
    OAI_DC_NS,
    arc,
    mets,
    premis,
    xlink,
)
from preservation.metadata.xmlsafe import iterparse_untrusted, release
from preservation.model import Agent, Event, FileEntry, FormatInfo, Record

_DOCUMENT_DIVS = frozenset({"document", "page"})
_METS_PREFIX = len(METS_NS) + 2


@dataclass
class MetsSummary:
    """What one AIP version's METS says."""

    aip_id: str
    version: int | None
    label: str
    created: datetime | None
    record_status: str | None
    profile: str | None
    descriptive: dict[str, str] = field(default_factory=dict)  # AIP-level archival fields
    dublin_core: dict[str, list[str]] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)
    stored_in: dict[str, int] = field(default_factory=dict)  # file uuid -> earlier version
    tag_files: list[TagFile] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)
    rights: Rights | None = None
    previous_version: int | None = None
    reference_code: str | None = None

    def file_by_path(self) -> dict[str, FileEntry]:
        return {f.path: f for f in self.files}


class _State:
    def __init__(self, label: str) -> None:
        self.label = label
        self.summary: MetsSummary | None = None
        self.by_techmd: dict[str, FileEntry] = {}  # techMD ID -> entry not yet in the fileSec
        self.by_file_id: dict[str, FileEntry] = {}
        self.records_by_dmd: dict[str, Record] = {}
        self.problems: list[str] = []

    def fail(self, reason: str) -> MetsInvalid:
        return MetsInvalid(path=self.label, reason=reason)


def read_mets(source: Path | str | bytes | IO[bytes], *, label: str | None = None) -> MetsSummary:
    """Read a METS document written by :func:`~.mets_writer.write_mets`.

    Raises XMLUnsafe / XMLMalformed for unsafe or broken XML and MetsInvalid (MET001)
    when the document is not an AIP METS or its parts do not agree (a fileSec entry
    whose techMD is missing, a checksum differing from the PREMIS fixity).
    """
    name = label or (str(source) if isinstance(source, Path | str) else "<METS>")
    st = _State(name)
    for _event, el in iterparse_untrusted(source, label=name, tag=_TAGS):
        if st.summary is None:
            st.summary = _start_root(st, el.getroottree().getroot())
        local = el.tag[_METS_PREFIX:]
        try:
            done = _HANDLERS[local](st, el)
        except ValueError as e:  # a number or date that does not parse
            raise st.fail(f"{local} at line {el.sourceline}: {e}") from e
        if done:
            release(el)
    if st.summary is None:
        raise st.fail("no METS element in the document")
    summary = st.summary
    if st.by_techmd:
        first = next(iter(st.by_techmd.values()))
        st.problems.append(
            f"{len(st.by_techmd)} techMD object(s) with no fileSec entry, e.g. {first.path!r}"
        )
    if st.problems:
        raise st.fail("; ".join(st.problems[:20]))
    return summary


def _start_root(st: _State, el: Any) -> MetsSummary:
    if el.tag != mets("mets"):
        raise st.fail(f"root element is {el.tag}, not mets:mets")
    objid = el.get("OBJID") or ""
    if not objid.startswith("urn:uuid:"):
        raise st.fail(f"OBJID {objid!r} is not a urn:uuid:")
    return MetsSummary(
        aip_id=objid[len("urn:uuid:") :],
        version=None,
        label=el.get("LABEL") or "",
        created=None,
        record_status=None,
        profile=el.get("PROFILE"),
    )


def _summary(st: _State) -> MetsSummary:
    if st.summary is None:  # pragma: no cover - the root start always comes first
        raise st.fail("no mets root")
    return st.summary


def _header(st: _State, el: Any) -> bool:
    s = _summary(st)
    created = el.get("CREATEDATE")
    if created:
        try:
            s.created = datetime.fromisoformat(created)
        except ValueError as e:
            raise st.fail(f"metsHdr CREATEDATE {created!r} is not an ISO date") from e
    s.record_status = el.get("RECORDSTATUS")
    for alt in el.iterchildren(mets("altRecordID")):
        kind, value = alt.get("TYPE"), (alt.text or "").strip()
        if kind == "AIP version":
            s.version = _int(st, value, "AIP version")
        elif kind == "previous AIP version":
            s.previous_version = _int(st, value, "previous AIP version")
        elif kind == "reference code":
            s.reference_code = value
    return True


def _int(st: _State, value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError as e:
        raise st.fail(f"{what} {value!r} is not a number") from e


def _dmd(st: _State, el: Any) -> bool:
    s = _summary(st)
    ident = el.get("ID") or ""
    data = el.find(f"{mets('mdWrap')}/{mets('xmlData')}")
    if data is None:
        return True
    dc = data.find(f"{{{OAI_DC_NS}}}dc")
    if dc is not None:
        s.dublin_core = read_dublin_core(dc)
    record_el = data.find(arc("record"))
    if record_el is not None:
        level, row, fields = read_archival(record_el)
        if level == "aip":
            s.descriptive = fields
        else:
            record = Record(row=row if row is not None else 0, fields=fields)
            s.records.append(record)
            st.records_by_dmd[ident] = record
    return True


def _md_payload(el: Any, local: str) -> Any:
    return el.find(f"{mets('mdWrap')}/{mets('xmlData')}/{premis(local)}")


def _techmd(st: _State, el: Any) -> bool:
    obj = _md_payload(el, "object")
    if obj is None:
        return True
    try:
        entry, stored_in = pm.read_file_object(obj)
    except ValueError as e:
        raise st.fail(f"techMD {el.get('ID')}: {e}") from e
    s = _summary(st)
    s.files.append(entry)
    if stored_in is not None:
        s.stored_in[entry.uuid] = stored_in
    st.by_techmd[el.get("ID") or ""] = entry
    return True


def _rights(st: _State, el: Any) -> bool:
    rights = _md_payload(el, "rights")
    if rights is not None:
        _summary(st).rights = pm.read_rights(rights)
    return True


def _digiprov(st: _State, el: Any) -> bool:
    s = _summary(st)
    event = _md_payload(el, "event")
    if event is not None:
        try:
            s.events.append(pm.read_event(event))
        except ValueError as e:
            raise st.fail(f"digiprovMD {el.get('ID')}: {e}") from e
    agent = _md_payload(el, "agent")
    if agent is not None:
        s.agents.append(pm.read_agent(agent))
    return True


def _file(st: _State, el: Any) -> bool:
    group = el.getparent()
    use = group.get("USE") if group is not None else None
    loc = el.find(mets("FLocat"))
    target = unquote(loc.get(xlink("href")) or "") if loc is not None else ""
    ident = el.get("ID") or ""
    if use == TAG_GROUP:
        digests = {}
        if el.get("CHECKSUM") and el.get("CHECKSUMTYPE") in HASH_NAMES:
            digests[HASH_NAMES[el.get("CHECKSUMTYPE")]] = el.get("CHECKSUM")
        _summary(st).tag_files.append(
            TagFile(target, int(el.get("SIZE") or 0), digests, el.get("MIMETYPE"))
        )
        return True
    entry = st.by_techmd.pop(el.get("ADMID") or "", None)
    if entry is None:
        st.problems.append(f"file {ident} ({target!r}) has no techMD {el.get('ADMID')!r}")
        return True
    st.by_file_id[ident] = entry
    if use in ("original", "migrated", "access"):
        entry.role = use
    mime = el.get("MIMETYPE")
    if mime:
        if entry.format is None:
            entry.format = FormatInfo(puid=None, mime=mime, name=None, version=None, basis=None)
        else:
            entry.format.mime = mime
    if target and target != entry.bag_path:
        st.problems.append(
            f"file {ident}: FLocat {target!r} differs from PREMIS {entry.bag_path!r}"
        )
    kind, checksum = el.get("CHECKSUMTYPE"), el.get("CHECKSUM")
    alg = HASH_NAMES.get(kind or "")
    if checksum and alg and entry.digests.get(alg, checksum).lower() != checksum.lower():
        st.problems.append(f"file {entry.path!r}: fileSec {kind} differs from the PREMIS fixity")
    size = el.get("SIZE")
    if size is not None and int(size) != entry.size:
        st.problems.append(f"file {entry.path!r}: fileSec SIZE {size} differs from PREMIS size")
    return True


def _fptr(st: _State, el: Any) -> bool:
    div = el.getparent()
    if div is None or div.get("TYPE") not in _DOCUMENT_DIVS:
        return False
    owner = div.getparent()
    if owner is None:
        return False
    for dmd in (owner.get("DMDID") or "").split():
        record = st.records_by_dmd.get(dmd)
        if record is None:
            continue
        entry = st.by_file_id.get(el.get("FILEID") or "")
        if entry is None:
            st.problems.append(f"structMap points at unknown file {el.get('FILEID')!r}")
            return False
        record.files.append(entry.path)
        if entry.record_row is None:
            entry.record_row = record.row
    return False


def _div(st: _State, el: Any) -> bool:
    return True  # its fptrs were read as they ended: free the subtree


def _root(st: _State, el: Any) -> bool:
    return False  # read when the first element arrives; nothing is left to free


_HANDLERS = {
    "mets": _root,
    "metsHdr": _header,
    "dmdSec": _dmd,
    "techMD": _techmd,
    "rightsMD": _rights,
    "digiprovMD": _digiprov,
    "file": _file,
    "fptr": _fptr,
    "div": _div,
}
_TAGS = tuple(mets(local) for local in _HANDLERS)
