"""Write an AIP's METS 1.12 document (PREMIS 3 inside) in bounded memory.

The document is streamed out with ``lxml.etree.xmlfile``: each section is built as a
small element, written and dropped, so a 100,000-file AIP never sits in memory as a
tree. Files are given as a callable returning a fresh iterator, walked several times:

1. a scan (no output): path safety, roles present, whether paths come sorted, the
   files records link to and the derivation links (collected, then reported together);
2. ``amdSec``: one ``techMD`` per file (PREMIS object), then ``rightsMD``, then one
   ``digiprovMD`` per event and one per agent (never one per file per event);
3. ``fileSec``: one pass per ``fileGrp`` (``original``, ``migrated``, ``access``), plus a
   ``metadata`` group for the tag files handed in;
4. the physical ``structMap`` (folders as nested divs, one div per file): streamed when
   the files come in path order (``sorted()`` order of ``FileEntry.path``), otherwise
   from a sorted index of (path, ID) pairs;
5. the logical ``structMap``: fonds → year → volume 卷 → item 件 → document/page divs
   with the files each record links (and, nested, their migrated/access derivatives);
   files no record describes go into an ``unassigned`` div (one more pass).

Memory kept across passes: the records, the files they link (path → ID) and the
derivation links of migrated/access files; nothing per plain original file.

IDs are valid ``xs:ID`` values made from a prefix and the UUID (or a digest of any value
that is not a plain token), never from file paths. File locations are
``xlink:href="data/<path>"``, percent-encoded as URI references.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import multiprocessing
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any, overload
from urllib.parse import quote

from lxml import etree

from preservation.errors import MetsBuildError
from preservation.iterutil import batched
from preservation.metadata import premis as pm
from preservation.metadata.descriptive import Rights, archival_element, checked, dublin_core
from preservation.metadata.namespaces import (
    ARCHIVAL_MDTYPE,
    ARCHIVAL_MDTYPE_VERSION,
    HASH_LABELS,
    METS_CHECKSUM_ORDER,
    NSMAP,
    PREMIS_VERSION,
    PROFILE,
    SCHEMA_LOCATION,
    mets,
    xlink,
    xsi,
)
from preservation.metadata.records import RecordTable
from preservation.metadata.xmlsafe import xml_text_problem
from preservation.model import Agent, Event, FileEntry, Record
from preservation.paths import path_problem
from preservation.scratch import name_key, name_of

ROLES = ("original", "migrated", "access")
_XML_DATA, _FILE, _FLOCAT, _DIV, _FPTR = (
    mets(n) for n in ("xmlData", "file", "FLocat", "div", "fptr")
)
TAG_GROUP = "metadata"
AIP_DC_ID = "dmd-aip-dc"
AIP_ARCHIVAL_ID = "dmd-aip-archival"
RIGHTS_ID = "rightsMD-aip"
MAX_REPORTED = 20  # problems listed in one MetsBuildError

_TOKEN = re.compile(r"[A-Za-z0-9_.-]+")
_DIGITISED_KEYS = ("resolution", "colour_mode", "compression")


@dataclass
class TagFile:
    """A tag file of the bag listed in the fileSec (``metadata`` group)."""

    path: str  # inside the bag, e.g. 'metadata/report.json'
    size: int
    digests: dict[str, str]
    mime: str | None = None


@dataclass
class MetsPackage:
    """Everything the METS of one AIP version says.

    ``files`` returns a fresh iterator of the payload files each time it is called.
    ``descriptive`` holds the AIP-level archival fields (canonical keys of
    ``ARCHIVAL_FIELDS``; other keys are kept too); ``records`` the item/volume rows of
    the catalogue sheet, whose ``files`` are payload paths as in ``FileEntry.path``.
    ``rights`` may be a :class:`Rights` or a mapping of its archival keys.
    ``stored_in`` tells, for a later version, the earlier version whose objects hold a
    file's bytes (None: this version).
    """

    aip_id: str
    version: int
    created: datetime
    label: str
    files: Callable[[], Iterable[FileEntry]]
    agents: Sequence[Agent] = ()
    events: Sequence[Event] = ()
    descriptive: Mapping[str, str] = field(default_factory=dict)
    records: Sequence[Record] | RecordTable = ()
    rights: Rights | Mapping[str, str] | None = None
    tag_files: Sequence[TagFile] = ()
    previous_version: int | None = None
    stored_in: Callable[[FileEntry], int | None] | None = None
    record_status: str = "complete"
    type: str = "AIP"

    @property
    def rights_info(self) -> Rights | None:
        """``rights`` as a :class:`Rights`; from a mapping, with a stable identifier."""
        if self.rights is None or isinstance(self.rights, Rights):
            return self.rights
        ident = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:uuid:{self.aip_id}/v{self.version}/rights")
        return Rights.from_fields(self.rights, identifier=str(ident))


def xml_id(prefix: str, value: str) -> str:
    """A valid, collision-free ``xs:ID`` for ``value`` under ``prefix``."""
    if _TOKEN.fullmatch(value):
        return f"{prefix}-{value}"
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{prefix}_{digest}"


def file_id(entry_uuid: str) -> str:
    return xml_id("file", entry_uuid)


def techmd_id(entry_uuid: str) -> str:
    return xml_id("techMD", entry_uuid)


_URI_PLAIN = re.compile(r"[A-Za-z0-9_.~/-]*")


def href(bag_path: str) -> str:
    """A relative URI reference for a path inside the bag (percent-encoded UTF-8)."""
    if _URI_PLAIN.fullmatch(bag_path):
        return bag_path
    return quote(bag_path, safe="/")


def write_mets(out: Path | IO[bytes], package: MetsPackage) -> None:
    """Write ``package`` as METS to a path (atomically, via a sibling temp file) or stream.

    Raises MetsBuildError (MET002) listing every problem the scan finds (unsafe paths,
    records linking files that are not in the package, values XML cannot carry).
    """
    if not isinstance(out, Path | str):
        _Writer(package).write(out)
        return
    target = Path(out)
    if target.exists() and not target.is_file():  # a FIFO or device: no rename over it
        with target.open("wb") as f:
            _Writer(package).write(f)
        return
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make the METS unreadable to others
        with os.fdopen(fd, "wb") as f:
            _Writer(package).write(f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


class _TagFilesLater(Sequence[TagFile]):
    """The tag files of a package, received from ``conn`` when first needed.

    The writer needs them only for the fileSec, near the end: a METS written in a
    worker process (:class:`MetsInBackground`) starts with the payload files while the
    ingest process is still writing the tag files (the report) it lists.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._items: list[TagFile] | None = None

    def _get(self) -> list[TagFile]:
        if self._items is None:
            self._items = list(self._conn.recv())
        return self._items

    def __len__(self) -> int:
        return len(self._get())

    @overload
    def __getitem__(self, i: int) -> TagFile: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[TagFile]: ...
    def __getitem__(self, i: int | slice) -> TagFile | Sequence[TagFile]:
        return self._get()[i]


def _write_mets_worker(target: Path, package: MetsPackage, conn: Connection) -> None:
    """Body of the worker process of :class:`MetsInBackground`; reports back one
    message: ``("ok",)``, ``("mets", fields)`` or ``("error", text)``. If the caller
    is gone (its end of the pipe closed), there is no one to tell: it just ends."""
    message: tuple[Any, ...]
    try:
        write_mets(target, dataclasses.replace(package, tag_files=_TagFilesLater(conn)))
    except MetsBuildError as e:  # its fields do not survive pickling: sent as values
        message = ("mets", dict(e.fields))
    except Exception as e:
        message = ("error", f"{type(e).__name__}: {e}")
    else:
        message = ("ok",)
    with contextlib.suppress(OSError):
        conn.send(message)
    conn.close()


class MetsInBackground:
    """:func:`write_mets` of ``package`` to ``target`` in a worker process, so that a
    METS of many files is written on another core while the caller does other work.

    ``package.files`` must be picklable (e.g. a spool reader) and its ``tag_files``
    are given later, by :meth:`finish`, which waits for the METS and raises what
    writing it raised (MetsBuildError as such). Use as a context manager: leaving
    it without :meth:`finish` stops the worker. The worker is *spawned* (forking a
    process that runs Go code, Siegfried's, is not safe), so the program's main
    module must be guarded by ``if __name__ == "__main__":``.
    """

    def __init__(self, target: Path, package: MetsPackage) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_write_mets_worker,
            args=(Path(target), dataclasses.replace(package, tag_files=()), child),
            name="preservation-mets",
            daemon=True,
        )
        self._process.start()
        child.close()

    def finish(self, tag_files: Sequence[TagFile]) -> None:
        try:
            self._conn.send(list(tag_files))
        except (BrokenPipeError, ConnectionResetError, EOFError):
            pass  # the worker ended early: its message says why
        try:
            message = self._conn.recv()
        except EOFError:
            self._process.join()
            raise MetsBuildError(
                reason=f"the METS worker process ended (exit code {self._process.exitcode})"
            ) from None
        self._process.join()
        self._conn.close()
        if message[0] == "mets":
            raise MetsBuildError(**message[1])
        if message[0] != "ok":
            raise MetsBuildError(reason=f"the METS worker failed: {message[1]}")

    def stop(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._conn.close()

    def __enter__(self) -> MetsInBackground:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


# ----------------------------------------------------------------------------- output


class _Out:
    """xmlfile with indentation and manually opened elements.

    The elements written once per payload file (techMD wrappers, fileSec entries,
    structMap divs) are formatted here as text (:meth:`raw`, values escaped as lxml
    escapes them) and written to the stream between lxml's own writes: going
    through lxml's element contexts costs several times more per element.
    """

    RAW_FLUSH = 256  # raw pieces gathered before they are written to the stream

    def __init__(self, xf: Any, stream: IO[bytes]) -> None:
        self.xf = xf
        self.stream = stream
        self.depth = 0
        self._open: list[Any] = []
        self._raw: list[str] = []
        self._lxml_wrote = True  # lxml may hold output not yet in the stream

    def _lxml(self) -> Any:
        """The xmlfile, after every raw piece is in the stream."""
        if self._raw:
            self._flush_raw()
        self._lxml_wrote = True
        return self.xf

    def _flush_raw(self) -> None:
        self.stream.write("".join(self._raw).encode("utf-8"))
        self._raw.clear()

    def raw(self, markup: str) -> None:
        """Markup (already escaped) written as is, after what lxml wrote so far."""
        if self._lxml_wrote:
            self.xf.flush()
            self._lxml_wrote = False
        self._raw.append(markup)
        if len(self._raw) >= self.RAW_FLUSH:
            self._flush_raw()

    def pad(self, extra: int = 0) -> str:
        """The newline and indentation that precede an element ``extra`` levels down."""
        return (
            _PADS[self.depth + extra]
            if self.depth + extra < len(_PADS)
            else ("\n" + "  " * (self.depth + extra))
        )

    def _newline(self) -> None:
        if self._open:  # no text may precede the root element
            self._lxml().write(self.pad())

    def open(self, tag: str, attrib: Mapping[str, str] | None = None, **kw: Any) -> None:
        self._newline()
        cm = self._lxml().element(tag, attrib or {}, **kw)
        cm.__enter__()
        self._open.append(cm)
        self.depth += 1

    def close(self) -> None:
        self.depth -= 1
        self._newline()
        self._lxml()
        self._open.pop().__exit__(None, None, None)

    @contextlib.contextmanager
    def element(self, tag: str, attrib: Mapping[str, str] | None = None) -> Iterator[None]:
        self.open(tag, attrib)
        yield
        self.close()

    def write(self, el: Any, *, indented: bool = False) -> None:
        """Write a complete element; ``indented``: it already is, for this depth."""
        if not indented:
            etree.indent(el, space="  ", level=self.depth)
        self._newline()
        self._lxml().write(el)

    def leaf(self, tag: str, attrib: Mapping[str, str], text: str | None = None) -> None:
        self._newline()
        xf = self._lxml()
        with xf.element(tag, attrib):
            if text:
                xf.write(text)


_PADS = ["\n" + "  " * d for d in range(32)]
_ATTR_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\n": "&#10;",
        "\r": "&#13;",
        "\t": "&#9;",
    }
)
_ATTR_SPECIAL = re.compile('[&<>"\n\r\t]')
_PREFIXES = {ns: prefix for prefix, ns in NSMAP.items() if prefix}


def _qname(tag: str) -> str:
    """``prefix:local`` of a ``{namespace}local`` name, as the METS root declares it."""
    if tag[0] != "{":
        return tag
    ns, _, local = tag[1:].partition("}")
    return f"{_PREFIXES[ns]}:{local}"


def _esc(value: str) -> str:
    """An attribute value escaped as lxml escapes it."""
    return value.translate(_ATTR_ESCAPES) if _ATTR_SPECIAL.search(value) else value


def _attrs(attrib: Mapping[str, str]) -> str:
    """Attributes as lxml writes them."""
    return "".join(f' {_qname(name)}="{_esc(value)}"' for name, value in attrib.items())


def _leaf(tag: str, attrib: Mapping[str, str]) -> str:
    """An element without content, as :meth:`_Out.leaf` writes it."""
    name = _qname(tag)
    return f"<{name}{_attrs(attrib)}></{name}>"


# ----------------------------------------------------------------------------- scan


_SCAN_TABLES = (
    # on the records' connection, private to it: the package's file of each linked
    # path (the first, if a path comes twice), the derivatives of each file, and every
    # file a record's div reaches (its own, and their derivatives)
    "CREATE TEMP TABLE linked (path BLOB PRIMARY KEY, uuid TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TEMP TABLE derived (n INTEGER PRIMARY KEY, source TEXT NOT NULL,"
    " uuid TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL)",
    "CREATE INDEX temp.derived_source ON derived (source, n)",
    "CREATE TEMP TABLE covered (uuid TEXT PRIMARY KEY) WITHOUT ROWID",
)
SCAN_PAGE = 500  # files looked up per query


@dataclass
class _Scan:
    """What one pass over the package's files found. What grows with the number of
    files (links to records, derivatives) is in temporary tables of the records'
    database, not here."""

    records: RecordTable
    count: int = 0
    roles: set[str] = field(default_factory=set)
    in_order: bool = True
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    @property
    def covered_count(self) -> int:
        found = self.records.one("SELECT count(*) FROM temp.covered")
        return int(found[0]) if found else 0

    def documents(self, seq: int) -> list[tuple[str, str]]:
        """``(path, file uuid)`` of a record's files, by path."""
        return [
            (name_of(bytes(p)), str(u))
            for p, u in self.records.query(
                "SELECT l.path, k.uuid FROM links l JOIN temp.linked k ON k.path = l.path"
                " WHERE l.seq = ? ORDER BY l.path",
                seq,
            )
        ]

    def derived(self, source: str) -> list[tuple[str, str, str]]:
        """``(uuid, name, role)`` of the files derived from ``source``."""
        return [
            (str(u), str(n), str(r))
            for u, n, r in self.records.query(
                "SELECT uuid, name, role FROM temp.derived WHERE source = ? ORDER BY n", source
            )
        ]

    def uncovered(self, uuids: Sequence[str]) -> set[str]:
        """Those of ``uuids`` that no record's div reaches."""
        marks = ", ".join("?" * len(uuids))
        found = {
            str(u)
            for (u,) in self.records.query(
                f"SELECT uuid FROM temp.covered WHERE uuid IN ({marks})", *uuids
            )
        }
        return set(uuids) - found


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _scan(pkg: MetsPackage, records: RecordTable) -> _Scan:
    scan = _Scan(records)
    for stmt in ("DROP TABLE IF EXISTS temp.linked", "DROP TABLE IF EXISTS temp.derived",
                 "DROP TABLE IF EXISTS temp.covered", *_SCAN_TABLES):  # fmt: skip
        records.execute(stmt)
    has_records = bool(records)
    previous: str | None = None
    for page in batched(pkg.files(), SCAN_PAGE):
        for entry in page:
            scan.count += 1
            problem = path_problem(entry.path) or xml_text_problem(entry.path)
            if problem:
                scan.problem(f"file {entry.path!r}: path {problem}")
            if entry.role not in ROLES:
                scan.problem(f"file {entry.path!r}: unknown role {entry.role!r}")
            scan.roles.add(entry.role)
            if previous is not None and not previous < entry.path:
                scan.in_order = False
            previous = entry.path
        if has_records:
            keys = [name_key(e.path) for e in page]
            marks = ", ".join("?" * len(keys))
            wanted = {
                bytes(p)
                for (p,) in records.query(
                    f"SELECT DISTINCT path FROM links WHERE path IN ({marks})", *keys
                )
            }
            records.many(
                "INSERT OR IGNORE INTO temp.linked VALUES (?, ?)",
                ((k, e.uuid) for k, e in zip(keys, page, strict=True) if k in wanted),
            )
        records.many(
            "INSERT INTO temp.derived (source, uuid, name, role) VALUES (?, ?, ?, ?)",
            ((e.derived_from, e.uuid, _basename(e.path), e.role) for e in page if e.derived_from),
        )
    for row, code, path in records.query(
        "SELECT r.row, r.reference_code, l.path FROM links l JOIN records r ON r.seq = l.seq"
        " WHERE NOT EXISTS (SELECT 1 FROM temp.linked k WHERE k.path = l.path)"
        " ORDER BY l.seq, l.path"
    ):
        scan.problem(
            f"record row {row} ({code or 'no reference code'})"
            f" links {name_of(bytes(path))!r}, which is not a file of the package"
        )
    records.execute(
        "INSERT INTO temp.covered WITH RECURSIVE reached (uuid) AS"
        " (SELECT uuid FROM temp.linked UNION"
        " SELECT d.uuid FROM temp.derived d JOIN reached r ON d.source = r.uuid)"
        " SELECT uuid FROM reached"
    )
    return scan


# ----------------------------------------------------------------------------- writer


class _Writer:
    def __init__(self, pkg: MetsPackage) -> None:
        self.pkg = pkg
        self.rights = pkg.rights_info
        self.agent_types = {a.identifier: a.identifier_type for a in pkg.agents}

    def write(self, stream: IO[bytes]) -> None:
        # the records numbered 1, 2, ... in sheet order; a list is put in a private
        # table for the writing, which also holds the scan's tables
        records = self.pkg.records
        self.records = RecordTable.of(records)
        try:
            self._write(stream)
        finally:
            if self.records is not records:
                self.records.close()

    def _write(self, stream: IO[bytes]) -> None:
        pkg = self.pkg
        scan = _scan(pkg, self.records)
        if scan.problems:
            shown = scan.problems[:MAX_REPORTED]
            more = len(scan.problems) - len(shown)
            reason = "; ".join(shown) + (f"; and {more} more" if more else "")
            raise MetsBuildError(reason=reason, problems=scan.problems)
        self.scan = scan
        root_attrib = {
            "OBJID": checked(f"urn:uuid:{pkg.aip_id}", "AIP identifier"),
            "LABEL": checked(pkg.label, "package label"),
            "TYPE": checked(pkg.type, "package type"),
            "PROFILE": PROFILE,
            xsi("schemaLocation"): SCHEMA_LOCATION,
        }
        with etree.xmlfile(stream, encoding="utf-8") as xf:
            xf.write_declaration()
            out = _Out(xf, stream)
            out.open(mets("mets"), root_attrib, nsmap=NSMAP)
            self._header(out)
            self._dmd(out)
            self._amd(out)
            self._file_sec(out)
            self._physical(out)
            self._logical(out)
            out.close()

    # -- metsHdr
    def _header(self, out: _Out) -> None:
        pkg = self.pkg
        attrs = {
            "CREATEDATE": pm.iso_datetime(pkg.created, "package creation date"),
            "RECORDSTATUS": checked(pkg.record_status, "record status"),
        }
        with out.element(mets("metsHdr"), attrs):
            for agent in pkg.agents:
                kind = _HDR_AGENT.get(agent.type, {"ROLE": "OTHER", "TYPE": "OTHER"})
                with out.element(mets("agent"), kind):
                    out.leaf(mets("name"), {}, checked(agent.name, "agent name"))
                    if agent.version:
                        version = checked(f"version {agent.version}", "agent version")
                        out.leaf(mets("note"), {}, version)
                    if agent.note:
                        out.leaf(mets("note"), {}, checked(agent.note, "agent note"))
            alt = [("AIP version", str(int(pkg.version)))]
            if pkg.previous_version is not None:
                alt.append(("previous AIP version", str(int(pkg.previous_version))))
            if pkg.descriptive.get("reference_code"):
                alt.append(("reference code", pkg.descriptive["reference_code"]))
            for alt_type, value in alt:
                out.leaf(mets("altRecordID"), {"TYPE": alt_type}, checked(value, alt_type))

    # -- dmdSec
    def _dmd(self, out: _Out) -> None:
        pkg = self.pkg
        fields = dict(pkg.descriptive)
        dc = dublin_core(
            fields,
            title=pkg.label,
            identifiers=[f"urn:uuid:{pkg.aip_id}"],
            rights=self.rights,
        )
        self._md(out, "dmdSec", AIP_DC_ID, {"MDTYPE": "DC"}, dc)
        archival_attrs = {
            "MDTYPE": "OTHER",
            "OTHERMDTYPE": ARCHIVAL_MDTYPE,
            "MDTYPEVERSION": ARCHIVAL_MDTYPE_VERSION,
        }
        self._md(
            out, "dmdSec", AIP_ARCHIVAL_ID, archival_attrs, archival_element(fields, level="aip")
        )
        for seq, record in self.records.numbered():
            el = archival_element(record.fields, level=record.level, row=record.row)
            self._md(out, "dmdSec", _dmd_id(seq), archival_attrs, el)

    def _md(
        self,
        out: _Out,
        section: str,
        ident: str,
        wrap: Mapping[str, str],
        payload: Any | Callable[[int], Any],
    ) -> None:
        """One mdSec; ``payload`` is an element or a builder taking its indent level."""
        out.open(mets(section), {"ID": ident})  # open/close, not with: the hot path
        out.open(mets("mdWrap"), wrap)
        out.open(_XML_DATA)
        if callable(payload):
            out.write(payload(out.depth), indented=True)
        else:
            out.write(payload)
        out.close()
        out.close()
        out.close()

    # -- amdSec
    def _amd(self, out: _Out) -> None:
        pkg = self.pkg
        with out.element(mets("amdSec"), {"ID": "amdSec-aip"}):
            wrap = {"MDTYPE": "PREMIS:OBJECT", "MDTYPEVERSION": PREMIS_VERSION}
            # what _md writes, as text: once per file, so the hot path
            open_wrap = f"<{_qname(mets('mdWrap'))}{_attrs(wrap)}>"
            tech, md_wrap, xml_data = (_qname(mets(n)) for n in ("techMD", "mdWrap", "xmlData"))
            pads = (out.pad(), out.pad(1), out.pad(2), out.pad(3))
            for entry in pkg.files():
                stored_in = pkg.stored_in(entry) if pkg.stored_in else None
                obj = pm.file_object(entry, stored_in=stored_in, level=out.depth + 3)
                out.raw(
                    f'{pads[0]}<{tech} ID="{_esc(techmd_id(entry.uuid))}">'
                    f"{pads[1]}{open_wrap}{pads[2]}<{xml_data}>{pads[3]}"
                    f"{etree.tostring(obj, encoding='unicode')}"
                    f"{pads[2]}</{xml_data}>{pads[1]}</{md_wrap}>{pads[0]}</{tech}>"
                )
            if self.rights is not None:
                wrap = {"MDTYPE": "PREMIS:RIGHTS", "MDTYPEVERSION": PREMIS_VERSION}
                self._md(out, "rightsMD", RIGHTS_ID, wrap, pm.rights_element(self.rights))
            wrap = {"MDTYPE": "PREMIS:EVENT", "MDTYPEVERSION": PREMIS_VERSION}
            for event in pkg.events:
                el = pm.event_element(event, self.agent_types)
                self._md(out, "digiprovMD", xml_id("digiprov-event", event.identifier), wrap, el)
            wrap = {"MDTYPE": "PREMIS:AGENT", "MDTYPEVERSION": PREMIS_VERSION}
            for i, agent in enumerate(pkg.agents, 1):
                self._md(out, "digiprovMD", f"digiprov-agent-{i}", wrap, pm.agent_element(agent))

    # -- fileSec
    def _file_sec(self, out: _Out) -> None:
        pkg = self.pkg
        roles = [r for r in ROLES if r in self.scan.roles]
        if not roles and not pkg.tag_files:
            return
        with out.element(mets("fileSec"), {"ID": "fileSec-aip"}):
            for role in roles:
                with out.element(mets("fileGrp"), {"USE": role}):
                    for entry in pkg.files():
                        if entry.role == role:
                            self._file(out, entry)
            if pkg.tag_files:
                with out.element(mets("fileGrp"), {"USE": TAG_GROUP}):
                    for tag in pkg.tag_files:
                        self._tag_file(out, tag)

    def _file(self, out: _Out, entry: FileEntry) -> None:
        attrs = {"ID": file_id(entry.uuid), "ADMID": techmd_id(entry.uuid)}
        attrs.update(_checksum(entry.digests, entry.path))
        attrs["SIZE"] = str(int(entry.size))
        if entry.format is not None and entry.format.mime:
            attrs["MIMETYPE"] = checked(entry.format.mime, f"file {entry.path!r} MIME type")
        name = _qname(_FILE)
        out.raw(
            f"{out.pad()}<{name}{_attrs(attrs)}>"
            f"{out.pad(1)}{_leaf(_FLOCAT, _flocat(entry.bag_path))}{out.pad()}</{name}>"
        )

    def _tag_file(self, out: _Out, tag: TagFile) -> None:
        problem = path_problem(tag.path) or xml_text_problem(tag.path)
        if problem:
            raise MetsBuildError(reason=f"tag file {tag.path!r}: path {problem}")
        attrs = {"ID": xml_id("tag", tag.path)}
        attrs.update(_checksum(tag.digests, tag.path))
        attrs["SIZE"] = str(int(tag.size))
        if tag.mime:
            attrs["MIMETYPE"] = checked(tag.mime, f"tag file {tag.path!r} MIME type")
        with out.element(mets("file"), attrs):
            out.leaf(mets("FLocat"), _flocat(tag.path))

    # -- physical structMap
    def _physical(self, out: _Out) -> None:
        pkg = self.pkg
        pairs: Iterable[tuple[str, str]]
        if self.scan.in_order:
            pairs = ((e.path, file_id(e.uuid)) for e in pkg.files())
        else:
            pairs = sorted((e.path, file_id(e.uuid)) for e in pkg.files())
        with out.element(mets("structMap"), {"TYPE": "physical", "ID": "structMap-physical"}):
            out.open(mets("div"), {"TYPE": "folder", "LABEL": "data"})
            stack: list[str] = []
            div, fptr = _qname(_DIV), _qname(_FPTR)
            for path, fid in pairs:
                *folders, name = path.split("/")
                common = 0
                limit = min(len(stack), len(folders))
                while common < limit and stack[common] == folders[common]:
                    common += 1
                while len(stack) > common:
                    out.close()
                    stack.pop()
                for seg in folders[common:]:
                    out.open(mets("div"), {"TYPE": "folder", "LABEL": seg})
                    stack.append(seg)
                out.raw(
                    f'{out.pad()}<{div} TYPE="file" LABEL="{_esc(name)}">'
                    f'{out.pad(1)}<{fptr} FILEID="{_esc(fid)}"></{fptr}>{out.pad()}</{div}>'
                )
            for _ in stack:
                out.close()
            out.close()

    # -- logical structMap
    def _logical(self, out: _Out) -> None:
        pkg = self.pkg
        root_attrs = {"TYPE": "aip", "LABEL": pkg.label, "DMDID": f"{AIP_DC_ID} {AIP_ARCHIVAL_ID}"}
        if self.rights is not None:
            root_attrs["ADMID"] = RIGHTS_ID
        with (
            out.element(mets("structMap"), {"TYPE": "logical", "ID": "structMap-logical"}),
            out.element(mets("div"), root_attrs),
        ):
            self._grouped(out)
            if self.scan.covered_count < self.scan.count:
                self._unassigned(out)

    def _grouped(self, out: _Out) -> None:
        """fonds -> year -> volumes, then the items outside any volume. A volume's div
        carries its (first) volume row and holds that row's files and the volume's
        items; a further row of the same volume follows the div. The records come in
        this order from their table."""
        fonds: str | None = None
        year: str | None = None
        group: str | None = None  # the volume being written in this year, if any
        depth = 0  # divs open below the root: fonds, year, volume

        def close_to(level: int) -> None:
            nonlocal depth
            while depth > level:
                out.close()
                depth -= 1

        for placed in self.records.logical(with_files=False):
            record = placed.record
            if depth < 1 or placed.fonds != fonds:
                close_to(0)
                out.open(mets("div"), _labelled("fonds", placed.fonds))
                fonds, year, depth = placed.fonds, None, 1
            if depth < 2 or placed.year != year:
                close_to(1)
                out.open(mets("div"), _labelled("year", placed.year))
                year, group, depth = placed.year, None, 2
            if placed.volume is None:  # an item outside any volume
                close_to(2)
                self._record(out, placed.seq, record)
                continue
            if group is None or placed.volume != group:
                close_to(2)
                group = placed.volume
                attrs = _labelled("volume", placed.volume)
                if placed.heads_volume:
                    attrs["DMDID"] = _dmd_id(placed.seq)
                out.open(mets("div"), attrs)
                depth = 3
                if placed.heads_volume:
                    self._documents(out, placed.seq, record)
                    continue
            if record.level == "volume":  # a further row of the volume: after its div
                close_to(2)
            self._record(out, placed.seq, record)
        close_to(0)

    def _record(self, out: _Out, seq: int, record: Record) -> None:
        attrs = {"TYPE": record.level, "DMDID": _dmd_id(seq)}
        label = record.reference_code or record.fields.get("title", "")
        if label:
            attrs["LABEL"] = label
        number = (record.fields.get("item_number") or "").strip()
        if number:
            attrs["ORDERLABEL"] = number
            if number.isascii() and number.isdigit():
                attrs["ORDER"] = str(int(number))
        with out.element(mets("div"), attrs):
            self._documents(out, seq, record)

    def _documents(self, out: _Out, seq: int, record: Record) -> None:
        kind = "page" if any(record.fields.get(k) for k in _DIGITISED_KEYS) else "document"
        for order, (path, ident) in enumerate(self.scan.documents(seq), 1):
            attrs = {"TYPE": kind, "ORDER": str(order), "LABEL": _basename(path)}
            with out.element(mets("div"), attrs):
                out.leaf(mets("fptr"), {"FILEID": file_id(ident)})
                self._derivatives(out, ident, {ident})

    def _derivatives(self, out: _Out, source: str, seen: set[str]) -> None:
        for ident, name, role in self.scan.derived(source):
            if ident in seen:
                continue
            with out.element(mets("div"), {"TYPE": role, "LABEL": name}):
                out.leaf(mets("fptr"), {"FILEID": file_id(ident)})
                self._derivatives(out, ident, seen | {ident})

    def _unassigned(self, out: _Out) -> None:
        attrs = {"TYPE": "unassigned", "LABEL": "files not described by a record"}
        div, fptr = _qname(_DIV), _qname(_FPTR)
        with out.element(mets("div"), attrs):
            for page in batched(self.pkg.files(), SCAN_PAGE):
                uncovered = self.scan.uncovered([e.uuid for e in page])
                for entry in page:
                    if entry.uuid not in uncovered:
                        continue
                    out.raw(
                        f'{out.pad()}<{div} TYPE="document" LABEL="{_esc(entry.path)}">'
                        f'{out.pad(1)}<{fptr} FILEID="{_esc(file_id(entry.uuid))}"></{fptr}>'
                        f"{out.pad()}</{div}>"
                    )


_HDR_AGENT: dict[str, dict[str, str]] = {
    "organization": {"ROLE": "CREATOR", "TYPE": "ORGANIZATION"},
    "software": {"ROLE": "CREATOR", "TYPE": "OTHER", "OTHERTYPE": "SOFTWARE"},
    "person": {"ROLE": "OTHER", "OTHERROLE": "SUBMITTER", "TYPE": "INDIVIDUAL"},
}


def _checksum(digests: Mapping[str, str], what: str) -> dict[str, str]:
    for alg in METS_CHECKSUM_ORDER:
        if digests.get(alg):
            return {"CHECKSUM": digests[alg].lower(), "CHECKSUMTYPE": HASH_LABELS[alg]}
    if digests:
        raise MetsBuildError(reason=f"{what!r}: no digest METS can name ({', '.join(digests)})")
    return {}


def _flocat(bag_path: str) -> dict[str, str]:
    return {"LOCTYPE": "OTHER", "OTHERLOCTYPE": "SYSTEM", xlink("href"): href(bag_path)}


def _labelled(kind: str, label: str) -> dict[str, str]:
    return {"TYPE": kind, "LABEL": label} if label else {"TYPE": kind}


def _dmd_id(seq: int) -> str:
    """The dmdSec ID of the record numbered ``seq`` (1, 2, ... in sheet order)."""
    return f"dmd-rec-{seq}"
