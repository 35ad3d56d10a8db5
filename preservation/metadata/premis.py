"""PREMIS 3 elements: build them from the model's dataclasses and read them back.

One file -> one ``premis:object xsi:type="premis:file"``; one event -> one
``premis:event``; one agent -> one ``premis:agent``; the AIP's rights -> one
``premis:rights``. The METS writer wraps each in its own ``mdWrap``.

Conventions (the reader relies on them):

- object identifiers: ``UUID`` = the file's uuid, ``local path`` = its path inside the
  bag (``data/…``).
- ``format``: ``formatDesignation`` (name, version; ``unknown`` when Siegfried named
  none) and ``formatRegistry`` PRONOM/PUID; the identification basis, warning, tool and
  signature file are ``formatNote`` values prefixed ``basis: ``, ``warning: ``,
  ``tool: ``, ``tool version: ``, ``signature: ``. An unidentified file carries the single
  note ``unidentified``.
- ``originalName``: the name as received (the path when it did not change).
- a file whose bytes live in an earlier AIP version has ``storage/contentLocation`` of
  type ``AIP version`` and the version number as value.
- a migrated file has a ``derivation``/``has source`` relationship to its source's UUID.
- what opening the file found (``FileEntry.properties``: pages, pixel size, dpi,
  colour mode, compression …) is one ``arc:properties`` element (namespace
  ``urn:preservation:archival:1``) holding a JSON object, inside
  ``objectCharacteristicsExtension``.
- rights: ``rightsBasis`` Statute; one ``statuteInformation`` citing the Archives Law
  (开放状态, 保管期限) and, for classified material, one citing the State Secrets Law
  (密级, 保密期限); each value is a ``statuteNote`` written ``<中文名> [<key>]: <value>``;
  ``rightsGranted`` act ``disseminate`` with the restriction of :attr:`Rights.restriction`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from lxml import etree

from preservation.errors import MetsBuildError
from preservation.metadata.descriptive import Rights, checked
from preservation.metadata.namespaces import (
    AGENT_ROLE_AUTHORITY,
    AGENT_TYPE_AUTHORITY,
    ARCHIVAL_NS,
    HASH_AUTHORITY,
    HASH_LABELS,
    HASH_NAMES,
    LOC_VOCAB,
    PREMIS_NS,
    PREMIS_VERSION,
    RELATIONSHIP_SUBTYPE_AUTHORITY,
    RELATIONSHIP_TYPE_AUTHORITY,
    XSI_NS,
    premis,
)
from preservation.model import (
    ARCHIVAL_FIELDS,
    EVENT_TYPE_AUTHORITY,
    EVENT_TYPE_AUTHORITY_URI,
    Agent,
    Event,
    FileEntry,
    FormatInfo,
    new_uuid,
    stored_properties,
)

PREMIS_NSMAP: dict[str | None, str] = {"premis": PREMIS_NS, "xsi": XSI_NS}

UUID_TYPE = "UUID"
PATH_TYPE = "local path"
VERSION_LOCATION_TYPE = "AIP version"
UNIDENTIFIED_NOTE = "unidentified"
UNKNOWN_FORMAT_NAME = "unknown"
FORMAT_NOTES = (
    ("basis", "basis"),
    ("warning", "warning"),
    ("tool", "tool"),
    ("tool version", "tool_version"),
    ("signature", "signature"),
)
KNOWN_AGENT_ROLES = frozenset({"executing program", "implementer", "authorizer", "validator"})
KNOWN_AGENT_TYPES = frozenset({"software", "organization", "person", "hardware"})
ARCHIVES_LAW = "中华人民共和国档案法 (Archives Law of the PRC)"
SECRETS_LAW = "中华人民共和国保守国家秘密法 (Law on Guarding State Secrets)"
_NOTE = re.compile(r"^(?P<name>[^\[]*) \[(?P<key>[A-Za-z_]+)\]: (?P<value>.*)$", re.DOTALL)


def _sub(parent: Any, local: str, text: str | None = None, what: str = "", **attrs: str) -> Any:
    el = etree.SubElement(parent, premis(local))
    for k, v in attrs.items():
        el.set(k, v)
    if text is not None:
        el.text = checked(text, what or f"PREMIS {local}")
    return el


def _authority(el: Any, authority: str) -> None:
    el.set("authority", authority)
    el.set("authorityURI", LOC_VOCAB + authority)


def _root(local: str) -> Any:
    el = etree.Element(premis(local), nsmap=PREMIS_NSMAP)
    el.set("version", PREMIS_VERSION)
    return el


def iso_datetime(value: datetime, what: str) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise MetsBuildError(reason=f"{what} is a naive datetime ({value.isoformat()})")
    return value.isoformat()


# ----------------------------------------------------------------------------- objects


# The per-file object is the hot path of a 100,000-file METS: it is written as
# indented markup (every value escaped and checked) and parsed once by libxml2, which
# is several times faster than building ~30 elements one SubElement call at a time.
_OWN_MARKUP = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
)
_AUTH = 'authority="{0}" authorityURI="' + LOC_VOCAB + '{0}"'
_HASH_ATTR = " " + _AUTH.format(HASH_AUTHORITY)
_REL_TYPE_ATTR = " " + _AUTH.format(RELATIONSHIP_TYPE_AUTHORITY)
_REL_SUBTYPE_ATTR = " " + _AUTH.format(RELATIONSHIP_SUBTYPE_AUTHORITY)
_OBJECT_OPEN = (
    f'<premis:object xmlns:premis="{PREMIS_NS}" xmlns:xsi="{XSI_NS}"'
    f' version="{PREMIS_VERSION}" xsi:type="premis:file">'
)


# What opening the file found (FileEntry.properties) as one JSON object in our own
# namespace, inside objectCharacteristicsExtension (processContents="lax").
_PROPS_OPEN = f'<arc:properties xmlns:arc="{ARCHIVAL_NS}">'
_PROPS_TAG = f"{{{ARCHIVAL_NS}}}properties"


def _esc(value: str, what: str) -> str:
    """Text content: checked for characters XML cannot carry, then escaped."""
    checked(value, what)
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    if "\r" in value:  # a literal CR would come back as LF
        value = value.replace("\r", "&#13;")
    return value


class _Markup:
    """Indented markup lines for one PREMIS element tree."""

    def __init__(self, level: int) -> None:
        self.lines: list[tuple[int, str]] = []
        self.level = level

    def open(self, depth: int, local: str) -> None:
        self.lines.append((depth, f"<premis:{local}>"))

    def close(self, depth: int, local: str) -> None:
        self.lines.append((depth, f"</premis:{local}>"))

    def leaf(self, depth: int, local: str, text: str, attrs: str = "") -> None:
        self.lines.append((depth, f"<premis:{local}{attrs}>{text}</premis:{local}>"))

    def parse(self) -> Any:
        pad = ["\n" + "  " * (self.level + d) for d in range(8)]
        first = self.lines[0][1]
        return etree.fromstring(first + "".join(pad[d] + m for d, m in self.lines[1:]), _OWN_MARKUP)


def file_object(entry: FileEntry, *, stored_in: int | None = None, level: int = 0) -> Any:
    """``premis:object`` for one payload file, indented as if at depth ``level``."""
    what = f"file {entry.path!r}"
    if entry.size < 0:
        raise MetsBuildError(reason=f"{what}: negative size {entry.size}")
    m = _Markup(level)
    m.lines.append((0, _OBJECT_OPEN))
    for id_type, value in ((UUID_TYPE, entry.uuid), (PATH_TYPE, entry.bag_path)):
        m.open(1, "objectIdentifier")
        m.leaf(2, "objectIdentifierType", id_type)
        m.leaf(2, "objectIdentifierValue", _esc(value, f"{what} identifier"))
        m.close(1, "objectIdentifier")
    m.open(1, "objectCharacteristics")
    m.leaf(2, "compositionLevel", "0")
    for alg, digest in _ordered_digests(entry.digests):
        label = HASH_LABELS.get(alg.lower())
        if label is None:
            raise MetsBuildError(reason=f"{what}: unknown digest algorithm {alg!r}")
        m.open(2, "fixity")
        m.leaf(3, "messageDigestAlgorithm", label, _HASH_ATTR)
        m.leaf(3, "messageDigest", _esc(digest.lower(), f"{what} {alg} digest"))
        m.close(2, "fixity")
    m.leaf(2, "size", str(int(entry.size)))
    _format(m, entry.format, what)
    props = stored_properties(entry.properties)
    if props:
        text = json.dumps(props, sort_keys=True, separators=(",", ":"))  # ASCII: XML-safe
        m.open(2, "objectCharacteristicsExtension")
        m.lines.append((3, f"{_PROPS_OPEN}{_esc(text, f'{what} properties')}</arc:properties>"))
        m.close(2, "objectCharacteristicsExtension")
    m.close(1, "objectCharacteristics")
    m.leaf(1, "originalName", _esc(entry.original_name or entry.path, f"{what} original name"))
    if stored_in is not None:
        m.open(1, "storage")
        m.open(2, "contentLocation")
        m.leaf(3, "contentLocationType", VERSION_LOCATION_TYPE)
        m.leaf(3, "contentLocationValue", str(int(stored_in)))
        m.close(2, "contentLocation")
        m.close(1, "storage")
    if entry.derived_from:
        m.open(1, "relationship")
        m.leaf(2, "relationshipType", "derivation", _REL_TYPE_ATTR)
        m.leaf(2, "relationshipSubType", "has source", _REL_SUBTYPE_ATTR)
        m.open(2, "relatedObjectIdentifier")
        m.leaf(3, "relatedObjectIdentifierType", UUID_TYPE)
        m.leaf(3, "relatedObjectIdentifierValue", _esc(entry.derived_from, f"{what} source"))
        m.close(2, "relatedObjectIdentifier")
        m.close(1, "relationship")
    m.lines.append((0, "</premis:object>"))
    return m.parse()


_DIGEST_ORDER = {alg: i for i, alg in enumerate(HASH_LABELS)}


def _ordered_digests(digests: Mapping[str, str]) -> list[tuple[str, str]]:
    return sorted(digests.items(), key=lambda kv: _DIGEST_ORDER.get(kv[0], 99))


def _format(m: _Markup, fmt: FormatInfo | None, what: str) -> None:
    m.open(2, "format")
    m.open(3, "formatDesignation")
    if fmt is None:
        m.leaf(4, "formatName", UNKNOWN_FORMAT_NAME)
        m.close(3, "formatDesignation")
        m.leaf(3, "formatNote", UNIDENTIFIED_NOTE)
        m.close(2, "format")
        return
    m.leaf(4, "formatName", _esc(fmt.name or UNKNOWN_FORMAT_NAME, f"{what} format name"))
    if fmt.version:
        m.leaf(4, "formatVersion", _esc(fmt.version, f"{what} format version"))
    m.close(3, "formatDesignation")
    if fmt.puid:
        m.open(3, "formatRegistry")
        m.leaf(4, "formatRegistryName", "PRONOM")
        m.leaf(4, "formatRegistryKey", _esc(fmt.puid, f"{what} PUID"))
        m.close(3, "formatRegistry")
    for prefix, attr in FORMAT_NOTES:
        value = getattr(fmt, attr)
        if value:
            m.leaf(3, "formatNote", _esc(f"{prefix}: {value}", f"{what} format {attr}"))
    m.close(2, "format")


_P = f"{{{PREMIS_NS}}}"
_PLEN = len(_P)


def read_file_object(obj: Any) -> tuple[FileEntry, int | None]:
    """``(entry, stored_in_version)``; the entry's path has no ``data/`` prefix.

    One walk over the object's elements (this runs once per file of a large AIP).
    ``format.mime`` and ``role`` are not in PREMIS; the METS reader fills them from
    the fileSec.
    """
    uuid = path = original = derived_from = None
    stored_in: int | None = None
    size = 0
    digests: dict[str, str] = {}
    has_format = False
    name = version = puid = None
    notes: list[str] = []
    context = ""  # the last identifier/algorithm/location/relationship type seen
    properties: dict[str, Any] = {}
    for el in obj.iter():
        tag = el.tag
        if not isinstance(tag, str) or not tag.startswith(_P):
            if tag == _PROPS_TAG:
                try:
                    value = json.loads(el.text or "{}")
                except RecursionError:  # hostile nesting: a ValueError like bad JSON
                    value = None
                if not isinstance(value, dict):
                    raise ValueError("premis:object properties are not a JSON object")
                properties = value
            continue
        local = tag[_PLEN:]
        text = el.text or ""
        if local in ("objectIdentifierType", "contentLocationType", "relationshipSubType"):
            context = text
        elif local == "objectIdentifierValue":
            if context == UUID_TYPE and uuid is None:
                uuid = text
            elif context == PATH_TYPE and path is None:
                path = text[5:] if text.startswith("data/") else text
        elif local == "messageDigestAlgorithm":
            context = HASH_NAMES.get(text, text.lower())
        elif local == "messageDigest":
            digests[context] = text
        elif local == "size":
            size = int(text or "0")
        elif local == "format":
            has_format = True
        elif local == "formatName":
            name = text
        elif local == "formatVersion":
            version = text
        elif local == "formatRegistryKey":
            puid = text
        elif local == "formatNote":
            notes.append(text)
        elif local == "originalName":
            original = text
        elif local == "contentLocationValue" and context == VERSION_LOCATION_TYPE:
            stored_in = int(text)
        elif local == "relatedObjectIdentifierValue" and context == "has source":
            derived_from = text
    if uuid is None or path is None:
        raise ValueError("premis:object without a UUID and a local path identifier")
    entry = FileEntry(
        path=path,
        size=size,
        digests=digests,
        original_name=original if original and original != path else None,
        format=_format_info(name, version, puid, notes) if has_format else None,
        uuid=uuid,
        derived_from=derived_from,
        properties=properties,
    )
    return entry, stored_in


def _format_info(
    name: str | None, version: str | None, puid: str | None, notes: list[str]
) -> FormatInfo | None:
    if notes == [UNIDENTIFIED_NOTE]:
        return None
    values: dict[str, str] = {}
    for note in notes:
        for prefix, attr in FORMAT_NOTES:
            if note.startswith(prefix + ": ") and attr not in values:
                values[attr] = note[len(prefix) + 2 :]
                break
    fmt = FormatInfo(
        puid=puid or None,
        mime=None,
        name=None if name in (None, UNKNOWN_FORMAT_NAME) else name,
        version=version or None,
        basis=values.get("basis"),
        warning=values.get("warning"),
        tool_version=values.get("tool_version"),
        signature=values.get("signature"),
    )
    if "tool" in values:
        fmt.tool = values["tool"]
    return fmt


# ----------------------------------------------------------------------------- events


def event_element(event: Event, agent_types: Mapping[str, str]) -> Any:
    """``premis:event``; ``agent_types`` maps agent identifier -> identifier type."""
    what = f"event {event.identifier}"
    el = _root("event")
    ident = _sub(el, "eventIdentifier")
    _sub(ident, "eventIdentifierType", UUID_TYPE)
    _sub(ident, "eventIdentifierValue", event.identifier, f"{what} identifier")
    etype = _sub(el, "eventType", event.type, f"{what} type")
    etype.set("authority", EVENT_TYPE_AUTHORITY)
    etype.set("authorityURI", EVENT_TYPE_AUTHORITY_URI)
    _sub(el, "eventDateTime", iso_datetime(event.datetime, f"{what} date"))
    if event.detail:
        info = _sub(el, "eventDetailInformation")
        _sub(info, "eventDetail", event.detail, f"{what} detail")
    outcome = _sub(el, "eventOutcomeInformation")
    _sub(outcome, "eventOutcome", event.outcome, f"{what} outcome")
    if event.outcome_detail:
        detail = _sub(outcome, "eventOutcomeDetail")
        _sub(detail, "eventOutcomeDetailNote", event.outcome_detail, f"{what} outcome detail")
    for agent_id, role in event.agents:
        link = _sub(el, "linkingAgentIdentifier")
        _sub(link, "linkingAgentIdentifierType", agent_types.get(agent_id, "local"))
        _sub(link, "linkingAgentIdentifierValue", agent_id, f"{what} agent")
        if role:
            role_el = _sub(link, "linkingAgentRole", role, f"{what} agent role")
            if role in KNOWN_AGENT_ROLES:
                _authority(role_el, AGENT_ROLE_AUTHORITY)
    for object_id in event.objects:
        link = _sub(el, "linkingObjectIdentifier")
        _sub(link, "linkingObjectIdentifierType", UUID_TYPE)
        _sub(link, "linkingObjectIdentifierValue", object_id, f"{what} object")
    return el


def read_event(el: Any) -> Event:
    ident = el.find(premis("eventIdentifier"))
    identifier = _text(ident, "eventIdentifierValue") if ident is not None else ""
    detail = el.findtext(f"{premis('eventDetailInformation')}/{premis('eventDetail')}") or ""
    outcome_el = el.find(premis("eventOutcomeInformation"))
    outcome = outcome_detail = ""
    if outcome_el is not None:
        outcome = outcome_el.findtext(premis("eventOutcome")) or ""
        outcome_detail = (
            outcome_el.findtext(
                f"{premis('eventOutcomeDetail')}/{premis('eventOutcomeDetailNote')}"
            )
            or ""
        )
    agents = [
        (
            _text(link, "linkingAgentIdentifierValue"),
            link.findtext(premis("linkingAgentRole")) or "",
        )
        for link in el.iterchildren(premis("linkingAgentIdentifier"))
    ]
    objects = [
        _text(link, "linkingObjectIdentifierValue")
        for link in el.iterchildren(premis("linkingObjectIdentifier"))
    ]
    return Event(
        type=_text(el, "eventType"),
        outcome=cast(Any, outcome),
        detail=detail,
        outcome_detail=outcome_detail,
        datetime=datetime.fromisoformat(_text(el, "eventDateTime")),
        identifier=identifier,
        agents=agents,
        objects=objects,
    )


# ----------------------------------------------------------------------------- agents


def agent_element(agent: Agent) -> Any:
    what = f"agent {agent.identifier!r}"
    el = _root("agent")
    ident = _sub(el, "agentIdentifier")
    _sub(ident, "agentIdentifierType", agent.identifier_type)
    _sub(ident, "agentIdentifierValue", agent.identifier, f"{what} identifier")
    _sub(el, "agentName", agent.name, f"{what} name")
    atype = _sub(el, "agentType", agent.type)
    if agent.type in KNOWN_AGENT_TYPES:
        _authority(atype, AGENT_TYPE_AUTHORITY)
    if agent.version:
        _sub(el, "agentVersion", agent.version, f"{what} version")
    if agent.note:
        _sub(el, "agentNote", agent.note, f"{what} note")
    return el


def read_agent(el: Any) -> Agent:
    ident = el.find(premis("agentIdentifier"))
    return Agent(
        identifier=_text(ident, "agentIdentifierValue") if ident is not None else "",
        name=el.findtext(premis("agentName")) or "",
        type=cast(Any, el.findtext(premis("agentType")) or "software"),
        version=el.findtext(premis("agentVersion")),
        note=el.findtext(premis("agentNote")),
    )


# ----------------------------------------------------------------------------- rights


def rights_element(rights: Rights) -> Any:
    el = _root("rights")
    statement = _sub(el, "rightsStatement")
    ident = _sub(statement, "rightsStatementIdentifier")
    _sub(ident, "rightsStatementIdentifierType", UUID_TYPE)
    _sub(ident, "rightsStatementIdentifierValue", rights.identifier, "rights identifier")
    _sub(statement, "rightsBasis", "Statute")
    groups = (
        (ARCHIVES_LAW, ("open_status", "retention"), True),
        (SECRETS_LAW, ("security_level", "secrecy_term"), False),
    )
    for citation, keys, always in groups:
        notes = [(k, getattr(rights, k)) for k in keys if getattr(rights, k)]
        if not notes and not always:
            continue
        info = _sub(statement, "statuteInformation")
        _sub(info, "statuteJurisdiction", "CN")
        _sub(info, "statuteCitation", citation)
        for key, value in notes:
            _sub(info, "statuteNote", f"{ARCHIVAL_FIELDS[key]} [{key}]: {value}", f"rights {key}")
    granted = _sub(statement, "rightsGranted")
    _sub(granted, "act", "disseminate")
    _sub(granted, "restriction", rights.restriction)
    summary = "; ".join(f"{ARCHIVAL_FIELDS[k]}: {v}" for k, v in rights.fields().items())
    if summary:
        _sub(granted, "rightsGrantedNote", summary, "rights summary")
    return el


def read_rights(el: Any) -> Rights:
    statement = el.find(premis("rightsStatement"))
    if statement is None:
        return Rights()
    ident = statement.find(premis("rightsStatementIdentifier"))
    values: dict[str, str] = {}
    for note in statement.iterfind(f"{premis('statuteInformation')}/{premis('statuteNote')}"):
        m = _NOTE.match(note.text or "")
        if m and m.group("key") in Rights.KEYS:
            values[m.group("key")] = m.group("value")
    identifier = _text(ident, "rightsStatementIdentifierValue") if ident is not None else ""
    return Rights(identifier=identifier or new_uuid(), **values)


def _text(parent: Any, local: str) -> str:
    return str(parent.findtext(premis(local)) or "")
